"""The request and result model shared by every backend.

``GenerationRequest`` is validated once, when built, and raises `InvalidRequestError`
(a ``ValueError``) naming the field, the value and the allowed range. Backend-specific limits
(how many LoRAs, which sizes) are checked later, in ``_capabilities``, still before any network
call.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from fluxkit._exceptions import InvalidRequestError
from fluxkit._images import InputImage
from fluxkit._results import GeneratedImage, GenerationResult, Timings

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

__all__ = [
    "SIZE_PRESETS",
    "GeneratedImage",
    "GenerationRequest",
    "GenerationResult",
    "ImageLike",
    "InputImage",
    "LoRA",
    "OutputFormat",
    "SizePreset",
    "Timings",
]

SizePreset = Literal[
    "square_hd", "square", "portrait_4_3", "portrait_16_9", "landscape_4_3", "landscape_16_9"
]

SIZE_PRESETS: Mapping[str, tuple[int, int]] = {
    "square_hd": (1024, 1024),
    "square": (512, 512),
    "portrait_4_3": (768, 1024),
    "portrait_16_9": (576, 1024),
    "landscape_4_3": (1024, 768),
    "landscape_16_9": (1024, 576),
}

OutputFormat = Literal["png", "jpeg", "webp"]

ImageLike = Union[str, os.PathLike[str], bytes, "Image.Image", "np.ndarray[Any, Any]", InputImage]
"""What fluxkit accepts as an input image: a path, a URL, encoded bytes, a PIL image or an array."""

MIN_SIDE, MAX_SIDE, SIDE_MULTIPLE = 256, 2048, 16
MAX_SEED = 2**32 - 1

_ALLOWED: Mapping[str, str] = {
    "prompt": "a non-empty string",
    "width": f"a multiple of {SIDE_MULTIPLE} from {MIN_SIDE} to {MAX_SIDE}",
    "height": f"a multiple of {SIDE_MULTIPLE} from {MIN_SIDE} to {MAX_SIDE}",
    "steps": "an integer from 1 to 100",
    "guidance": "a number from 0 to 20",
    "seed": f"an integer from 0 to {MAX_SEED}, or None for random",
    "n": "an integer from 1 to 16",
    "strength": "a number from 0 to 1 (needs image=)",
    "reference_strength": "a number from 0 to 1 (needs reference_image=)",
    "output_format": "'png', 'jpeg' or 'webp'",
    "model": "a model alias (flux-dev, flux-schnell, flux-pro, ...) or a provider model id",
    "scale": "a number from -4 to 4",
    "source": "hf://owner/repo[/file.safetensors][@revision], an https:// URL or a local path",
    "size": f"a preset ({', '.join(SIZE_PRESETS)}) or (width, height)",
    "extra": "a mapping of JSON values (str, number, bool, None, list, dict)",
    "loras": "a LoRA, a source string, (source, scale) or a list of them",
    "image": "a path, an https:// URL, encoded image bytes, a PIL image or a uint8 numpy array",
    "reference_image": "a path, an https:// URL, encoded image bytes, a PIL image or an array",
    "weight_name": "a relative path to a .safetensors file in the repo",
    "trigger_words": "a list of strings",
}

_PICKLE_SUFFIXES = (".bin", ".ckpt", ".pt", ".pth", ".pkl", ".pickle")
_HF_SOURCE = re.compile(
    r"^hf://(?P<repo>[\w.-]+/[\w.-]+)(?:/(?P<file>[^@]+?))?(?:@(?P<revision>[\w./-]+))?$"
)


def _looks_like_hub_repo(value: str) -> bool:
    """``owner/repo`` pasted from the Hub, rather than a relative path.

    Hub names never start with ``.`` or ``-`` and a repo is not called ``*.safetensors``, so
    ``./missing.safetensors`` or ``loras/tok.safetensors`` stay paths (and are checked as files)
    instead of silently becoming Hub references.
    """
    if not re.fullmatch(r"[\w][\w.-]*/[\w][\w.-]*", value) or value.endswith(".safetensors"):
        return False
    try:
        return not Path(value).exists()
    except OSError:  # a component longer than the file system allows
        return True


def _allowed(field: str) -> str:
    return _ALLOWED.get(field.rsplit(".", 1)[-1].split("[")[0], "see the GenerationRequest docs")


def _as_invalid_request(error: ValidationError, prefix: str = "") -> InvalidRequestError:
    """The first pydantic error as an InvalidRequestError naming field, value and range."""
    first = error.errors()[0]
    original = (first.get("ctx") or {}).get("error")
    if isinstance(original, InvalidRequestError):
        return original
    parts: list[str] = []
    for part in first["loc"]:
        if isinstance(part, int):
            parts[-1:] = [f"{parts[-1] if parts else ''}[{part}]"]
        else:
            parts.append(str(part))
    field = prefix + ".".join(parts) if parts else (prefix.rstrip(".") or "request")
    reason = str(first.get("msg", "")) or None
    if first.get("type") == "extra_forbidden":
        return InvalidRequestError(
            field,
            first.get("input"),
            "a GenerationRequest field (backend options go in extra=)",
            reason="unknown argument",
        )
    return InvalidRequestError(field, first.get("input"), _allowed(field), reason=reason)


class LoRA(BaseModel):
    """A LoRA to apply, by reference, with its strength.

    Sources are normalised once and translated by each backend:

    * ``hf://owner/repo`` or ``hf://owner/repo/path/file.safetensors`` (optionally ``@revision``)
    * ``https://...`` — any direct download URL
    * a local ``.safetensors`` path (local backend, or uploaded by hosted backends that can)

    Example:
        ```python
        import fluxkit

        lora = fluxkit.LoRA("hf://me/tok-lora/lora.safetensors", scale=0.9)
        lora.repo_id, lora.filename      # ("me/tok-lora", "lora.safetensors")
        ```

    Pickle formats (``.bin``, ``.ckpt``, ``.pt``) are refused: loading them can run arbitrary code.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: str
    scale: float = Field(default=1.0, ge=-4.0, le=4.0)
    weight_name: str | None = None
    trigger_words: tuple[str, ...] = ()

    def __init__(
        self,
        source: str | os.PathLike[str],
        scale: float = 1.0,
        weight_name: str | None = None,
        trigger_words: Sequence[str] = (),
    ) -> None:
        if isinstance(source, os.PathLike):
            try:
                source = os.fspath(source)
            except Exception:
                raise InvalidRequestError("lora.source", source, _ALLOWED["source"]) from None
        if isinstance(trigger_words, str):
            trigger_words = (trigger_words,)
        elif isinstance(trigger_words, Sequence):
            trigger_words = tuple(trigger_words)
        try:
            super().__init__(
                source=source, scale=scale, weight_name=weight_name, trigger_words=trigger_words
            )
        except ValidationError as exc:
            raise _as_invalid_request(exc, "lora.") from None

    @field_validator("scale", mode="before")
    @classmethod
    def _finite_scale(cls, value: Any) -> Any:
        if isinstance(value, bool) or (isinstance(value, float) and not math.isfinite(value)):
            raise InvalidRequestError("lora.scale", value, _ALLOWED["scale"])
        return value

    @field_validator("weight_name")
    @classmethod
    def _check_weight_name(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if value.lower().endswith(_PICKLE_SUFFIXES):
            raise InvalidRequestError(
                "lora.weight_name",
                value,
                "a .safetensors file",
                reason="pickle formats can execute code when loaded; convert to safetensors",
            )
        parts = value.replace("\\", "/").split("/")
        # a file inside the repo or directory: no escaping it with .. or an absolute path
        if not value.endswith(".safetensors") or ".." in parts or not all(parts) or "\0" in value:
            raise InvalidRequestError(
                "lora.weight_name", value, "a relative path to a .safetensors file in the repo"
            )
        return value

    @field_validator("source")
    @classmethod
    def _check_source(cls, value: str) -> str:
        value = value.strip()
        if "\0" in value or any(ord(ch) < 32 for ch in value):
            raise InvalidRequestError(
                "lora.source", value, _ALLOWED["source"], reason="control characters"
            )
        if not value:
            raise InvalidRequestError("lora.source", value, _ALLOWED["source"])
        lowered = value.split("?")[0].split("@")[0].lower()
        if lowered.endswith(_PICKLE_SUFFIXES):
            raise InvalidRequestError(
                "lora.source",
                value,
                "a .safetensors file",
                reason="pickle formats can execute code when loaded; convert to safetensors",
            )
        if value.startswith("hf://"):
            if not _HF_SOURCE.match(value):
                raise InvalidRequestError("lora.source", value, _ALLOWED["source"])
        elif value.startswith("http://"):
            raise InvalidRequestError("lora.source", value, "an https:// URL", reason="not https")
        elif value.startswith(("https://", "data:")):
            pass
        elif "://" in value:
            raise InvalidRequestError("lora.source", value, _ALLOWED["source"])
        elif _looks_like_hub_repo(value):
            # "owner/repo" as people paste it from the Hub
            value = f"hf://{value}"
        else:
            try:
                value = str(Path(value).expanduser())
            except RuntimeError:  # "~nosuchuser/..."
                raise InvalidRequestError(
                    "lora.source", value, _ALLOWED["source"], reason="unknown user in ~ path"
                ) from None
        return value

    @property
    def kind(self) -> Literal["hf", "url", "path"]:
        if self.source.startswith("hf://"):
            return "hf"
        if self.source.startswith(("https://", "data:")):
            return "url"
        return "path"

    def _hf_parts(self) -> tuple[str, str | None, str | None]:
        match = _HF_SOURCE.match(self.source)
        assert match is not None
        return match["repo"], match["file"], match["revision"]

    @property
    def repo_id(self) -> str | None:
        """``owner/repo`` for Hub sources."""
        return self._hf_parts()[0] if self.kind == "hf" else None

    @property
    def revision(self) -> str | None:
        return self._hf_parts()[2] if self.kind == "hf" else None

    @property
    def filename(self) -> str | None:
        """The weight file inside the repo (``weight_name`` wins), or the URL/path basename."""
        if self.weight_name:
            return self.weight_name
        if self.kind == "hf":
            return self._hf_parts()[1]
        return self.source.split("?")[0].rstrip("/").rsplit("/", 1)[-1] or None

    @property
    def url(self) -> str | None:
        """A direct download URL: Hub sources resolve to ``huggingface.co/.../resolve/...``.

        None for a Hub repo without a file name (the file must be discovered) and local paths.
        """
        if self.kind == "url":
            return self.source
        if self.kind == "hf" and self.filename:
            return (
                f"https://huggingface.co/{self.repo_id}/resolve/"
                f"{self.revision or 'main'}/{self.filename}"
            )
        return None

    def __repr__(self) -> str:
        extra = f", weight_name={self.weight_name!r}" if self.weight_name else ""
        return f"LoRA({self.source!r}, scale={self.scale:g}{extra})"


def _coerce_image(field: str, value: Any) -> InputImage | None:
    if value is None:
        return None
    return InputImage.from_any(value, field=field)


class GenerationRequest(BaseModel):
    """One generation request, backend-independent and immutable.

    Build it directly or let ``Generator.generate()`` build it from keyword arguments:

    ```python
    import fluxkit

    request = fluxkit.GenerationRequest(
        prompt="portrait of tok person", size="portrait_4_3", steps=28, seed=7, n=2,
        loras=[fluxkit.LoRA("hf://me/tok-lora/lora.safetensors", scale=0.9)],
    )
    request.width, request.height   # (768, 1024)
    ```

    Sizes come from ``size`` (a preset name or ``(width, height)``) or ``width``/``height``;
    each side is a multiple of 16 from 256 to 2048. ``steps``/``guidance`` left as None take the
    model's default. ``num_inference_steps`` and ``guidance_scale`` are accepted as aliases.
    """

    model_config = ConfigDict(
        frozen=True, extra="forbid", arbitrary_types_allowed=True, populate_by_name=True
    )

    prompt: str = Field(min_length=1)
    width: int = 1024
    height: int = 1024
    steps: int | None = Field(default=None, ge=1, le=100, alias="num_inference_steps")
    guidance: float | None = Field(default=None, ge=0.0, le=20.0, alias="guidance_scale")
    seed: int | None = Field(default=None, ge=0, le=MAX_SEED)
    n: int = Field(default=1, ge=1, le=16)
    loras: tuple[LoRA, ...] = ()
    image: InputImage | None = None
    strength: float | None = Field(default=None, ge=0.0, le=1.0)
    reference_image: InputImage | None = None
    reference_strength: float | None = Field(default=None, ge=0.0, le=1.0)
    output_format: OutputFormat = "png"
    model: str | None = None
    extra: Mapping[str, Any] = Field(default_factory=dict)

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise _as_invalid_request(exc) from None

    @model_validator(mode="before")
    @classmethod
    def _resolve_size(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        size = data.pop("size", None)
        if size is not None:
            if "width" in data or "height" in data:
                raise InvalidRequestError(
                    "size", size, "either size= or width=/height=", reason="both given"
                )
            if isinstance(size, str):
                if size not in SIZE_PRESETS:
                    raise InvalidRequestError("size", size, _ALLOWED["size"])
                data["width"], data["height"] = SIZE_PRESETS[size]
            elif isinstance(size, Sequence) and len(size) == 2:
                data["width"], data["height"] = size
            else:
                raise InvalidRequestError("size", size, _ALLOWED["size"])
        for name in ("image", "reference_image"):
            data[name] = _coerce_image(name, data.get(name))
        return data

    @field_validator("prompt")
    @classmethod
    def _check_prompt(cls, value: str) -> str:
        if not value.strip():
            raise InvalidRequestError("prompt", value, _ALLOWED["prompt"])
        return value

    @field_validator("width", "height", mode="before")
    @classmethod
    def _check_side(cls, value: Any, info: Any) -> int:
        name = info.field_name
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                raise InvalidRequestError(name, value, _ALLOWED[name])
        if not MIN_SIDE <= value <= MAX_SIDE or value % SIDE_MULTIPLE:
            raise InvalidRequestError(name, value, _ALLOWED[name])
        return int(value)

    @field_validator("steps", "seed", "n", mode="before")
    @classmethod
    def _no_bool_or_fraction(cls, value: Any, info: Any) -> Any:
        name = info.field_name
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise InvalidRequestError(name, value, _ALLOWED[name])
        return value

    @field_validator("guidance", "strength", "reference_strength", mode="before")
    @classmethod
    def _finite(cls, value: Any, info: Any) -> Any:
        if isinstance(value, bool) or (isinstance(value, float) and not math.isfinite(value)):
            raise InvalidRequestError(info.field_name, value, _ALLOWED[info.field_name])
        return value

    @field_validator("extra")
    @classmethod
    def _json_extra(cls, value: Mapping[str, Any]) -> Mapping[str, Any]:
        # extra= is merged into the provider's JSON body: a value that cannot be sent must
        # fail here, not after the request is built (or half the calls are paid for)
        try:
            json.dumps(dict(value), allow_nan=False)
        except (TypeError, ValueError, RecursionError) as exc:
            raise InvalidRequestError(
                "extra",
                value,
                "a mapping of JSON values (str, number, bool, None, list, dict)",
                reason=str(exc)[:80],
            ) from None
        return value

    @field_validator("loras", mode="before")
    @classmethod
    def _coerce_loras(cls, value: Any) -> Any:
        if value is None:
            return ()
        if isinstance(value, LoRA | str | os.PathLike):
            value = [value]
        if not isinstance(value, Sequence | set | frozenset) or isinstance(value, bytes):
            raise InvalidRequestError("loras", value, "a LoRA, a source string or a list of them")
        items = []
        for index, item in enumerate(value):
            if isinstance(item, str | os.PathLike):
                item = LoRA(item)
            elif isinstance(item, Mapping):
                keys = {"source", "scale", "weight_name", "trigger_words"}
                if not set(item) <= keys or "source" not in item:
                    raise InvalidRequestError(
                        f"loras[{index}]",
                        dict(item),
                        f"a mapping with source and {keys - {'source'}}",
                    )
                item = LoRA(**item)
            elif isinstance(item, tuple) and len(item) == 2:
                item = LoRA(item[0], scale=item[1])
            elif not isinstance(item, LoRA):
                raise InvalidRequestError(
                    f"loras[{index}]", item, "a LoRA, a source string or (source, scale)"
                )
            items.append(item)
        return tuple(items)

    @model_validator(mode="after")
    def _check_pairs(self) -> GenerationRequest:
        if self.strength is not None and self.image is None:
            raise InvalidRequestError("strength", self.strength, _ALLOWED["strength"])
        if self.reference_strength is not None and self.reference_image is None:
            raise InvalidRequestError(
                "reference_strength", self.reference_strength, _ALLOWED["reference_strength"]
            )
        return self

    @property
    def size(self) -> tuple[int, int]:
        return (self.width, self.height)

    @property
    def effective_strength(self) -> float | None:
        """img2img strength with its default (0.75) when an init image is given."""
        if self.image is None:
            return None
        return 0.75 if self.strength is None else self.strength

    def evolve(self, **changes: Any) -> GenerationRequest:
        """A copy with trusted changes, not validated again (fluxkit's own bookkeeping:
        capability defaults, seeds, per-call ``n``). Use `replace` for user input."""
        return self.model_copy(update=changes)

    def replace(self, **changes: Any) -> GenerationRequest:
        """A copy with some fields changed, validated again."""
        data = self.model_dump(exclude_defaults=False, by_alias=False)
        data.update(
            {"loras": self.loras, "image": self.image, "reference_image": self.reference_image}
        )
        data.update(changes)
        return GenerationRequest(**data)
