"""The worker's input schema: fluxkit's request fields plus the names other FLUX workers use.

Every problem becomes a :class:`WorkerInputError` naming the field (never the value of a
credential), which the handler returns as the job's error.

Example:
    ```python
    from fluxkit.worker.schema import parse_input

    job_input = parse_input({"prompt": "a fox", "num_inference_steps": 4, "num_images": 2})
    job_input.steps, job_input.n            # (4, 2)
    ```
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
)

__all__ = ["LoraInput", "OutputMode", "S3Input", "WorkerInput", "WorkerInputError", "parse_input"]

OutputMode = Literal["base64", "s3", "both"]
_SECRET_FIELDS = frozenset({"hf_token", "aws_access_key_id", "aws_secret_access_key"})


class WorkerInputError(ValueError):
    """The job's input is malformed; ``field`` names where (``"loras[0].scale"``)."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"invalid input: {field}: {message}")


class LoraInput(BaseModel):
    """One per-request LoRA: ``hf://owner/repo[/file]``, ``owner/repo``, or an https URL."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    source: str = Field(validation_alias=AliasChoices("source", "path", "repo", "url"))
    scale: float = Field(
        default=1.0, ge=-4.0, le=4.0, validation_alias=AliasChoices("scale", "weight")
    )
    weight_name: str | None = None


class S3Input(BaseModel):
    """RunPod's own ``s3Config`` (the keys ``runpod.serverless.utils.rp_upload`` takes)."""

    model_config = ConfigDict(extra="ignore")

    accessId: SecretStr | None = None
    accessSecret: SecretStr | None = None
    bucketName: str | None = None
    endpointUrl: str | None = None


class WorkerInput(BaseModel):
    """A job's ``input``. Field names follow fluxkit; the aliases are the names common
    self-hosted FLUX workers use (``num_inference_steps``, ``custom_lora_repo``, ...)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, hide_input_in_errors=True)

    prompt: str = Field(min_length=1)
    size: str | tuple[int, int] | None = None
    width: int | None = None
    height: int | None = None
    steps: int | None = Field(
        default=None, validation_alias=AliasChoices("steps", "num_inference_steps")
    )
    guidance: float | None = Field(
        default=None, validation_alias=AliasChoices("guidance", "guidance_scale")
    )
    seed: int | None = None
    n: int = Field(default=1, validation_alias=AliasChoices("n", "num_images", "num_outputs"))
    loras: list[LoraInput | str] = Field(default_factory=list)
    custom_lora_repo: str | None = None
    custom_lora_weight_name: str | None = None
    lora_scale: float | None = None
    image: str | None = None
    strength: float | None = None
    reference_image: str | None = None
    reference_strength: float | None = None
    output_format: Literal["png", "jpeg", "webp"] = "png"
    output: OutputMode | None = None
    model: str | None = None
    extra: dict[str, Any] = Field(default_factory=dict)
    hf_token: SecretStr | None = None
    aws_access_key_id: SecretStr | None = None
    aws_secret_access_key: SecretStr | None = None
    s3_bucket: str | None = None
    s3_prefix: str | None = None
    s3_region: str | None = None
    s3_endpoint_url: str | None = None
    s3Config: S3Input | None = None

    @field_validator("image", "reference_image")
    @classmethod
    def _image_reference(cls, value: str | None) -> str | None:
        # A path would read the worker's own disk: only URLs and inline data are taken.
        if value is None or value.startswith(("https://", "data:")):
            return value
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("an https:// URL, a data URI or base64 image bytes") from None
        return value

    def lora_list(self) -> list[LoraInput]:
        """Every per-request LoRA: ``loras`` then the ``custom_lora_repo`` shorthand."""
        items = [LoraInput(source=x) if isinstance(x, str) else x for x in self.loras]
        if self.custom_lora_repo:
            items.append(
                LoraInput(
                    source=self.custom_lora_repo,
                    scale=1.0 if self.lora_scale is None else self.lora_scale,
                    weight_name=self.custom_lora_weight_name,
                )
            )
        return items

    def secrets(self) -> list[str]:
        """The credential values the request carries (for redaction)."""
        found = [
            value.get_secret_value()
            for value in (self.hf_token, self.aws_access_key_id, self.aws_secret_access_key)
            if value is not None
        ]
        if self.s3Config is not None:
            found += [
                value.get_secret_value()
                for value in (self.s3Config.accessId, self.s3Config.accessSecret)
                if value is not None
            ]
        return [value for value in found if value]


def raw_secrets(job: Any) -> tuple[list[str], list[str]]:
    """(secrets, access key ids) a raw job carries in ``input`` or ``s3Config``, even when the
    input fails validation (for redaction)."""
    secrets: list[str] = []
    key_ids: list[str] = []
    if not isinstance(job, Mapping):
        return secrets, key_ids
    raw = job.get("input")
    configs = [job.get("s3Config")]
    if isinstance(raw, Mapping):
        for key in _SECRET_FIELDS:
            value = raw.get(key)
            if isinstance(value, str) and value:
                (key_ids if key == "aws_access_key_id" else secrets).append(value)
        configs.append(raw.get("s3Config"))
    for config in configs:
        if isinstance(config, Mapping):
            for key in ("accessId", "accessSecret"):
                value = config.get(key)
                if isinstance(value, str) and value:
                    (key_ids if key == "accessId" else secrets).append(value)
    return secrets, key_ids


def parse_input(raw: Any) -> WorkerInput:
    """Validate a job's ``input``.

    Raises:
        WorkerInputError: the first problem, naming the field; values are never echoed.
    """
    if not isinstance(raw, Mapping):
        raise WorkerInputError("input", f"expected a JSON object, got {type(raw).__name__}")
    try:
        return WorkerInput.model_validate(dict(raw))
    except ValidationError as exc:
        first = exc.errors(include_input=False, include_url=False)[0]
        parts: list[str] = []
        for part in first["loc"]:
            if isinstance(part, int):
                parts[-1:] = [f"{parts[-1] if parts else ''}[{part}]"]
            else:
                parts.append(str(part))
        field = ".".join(parts) or "input"
        if first.get("type") == "extra_forbidden":
            raise WorkerInputError(field, "unknown field") from None
        raise WorkerInputError(field, str(first.get("msg", "invalid"))) from None
