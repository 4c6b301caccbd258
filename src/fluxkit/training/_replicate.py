"""Replicate's trainings API for ``ostris/flux-dev-lora-trainer``, as flows (pure).

* ``GET /v1/models/ostris/flux-dev-lora-trainer`` -> ``latest_version`` (id + Cog OpenAPI):
  the ``TrainingInput`` schema is read at run time and options are validated against it;
* ``GET /v1/models/{destination}``; a 404 creates it (``POST /v1/models``, private);
* ``POST /v1/files`` (multipart ``content``) for the dataset zip;
* ``POST /v1/models/{owner}/{name}/versions/{version}/trainings`` ``{destination, input}``;
* ``GET /v1/trainings/{id}``, ``POST /v1/trainings/{id}/cancel``;
* ``output.weights``: a ``.tar`` holding ``output/flux_train_replicate/lora.safetensors``.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Mapping
from typing import Any

from fluxkit._config import Secret
from fluxkit._core import Accepted, Flow, HttpRequest, send
from fluxkit._core._errors import error_from_response
from fluxkit._exceptions import InvalidRequestError, ResponseFormatError
from fluxkit._uploads import UploadCache
from fluxkit.backends._replicate._files import file_url, multipart
from fluxkit.training._hosted import HostedTrainer, download
from fluxkit.training._logs import split_lines
from fluxkit.training._model import TrainingSnapshot

__all__ = ["TRAINER", "ReplicateTrainer", "validate_input", "weights_from_tar"]

TRAINER = "ostris/flux-dev-lora-trainer"
_STATUS = {
    "starting": "starting",
    "processing": "running",
    "succeeded": "succeeded",
    "failed": "failed",
    "canceled": "canceled",
    "aborted": "canceled",
}
_ALIASES = {"rank": "lora_rank"}
_MAX_WEIGHTS = 2 * 1024**3


class ReplicateTrainer(HostedTrainer):
    """``destination``: ``owner/name`` of the model the LoRA versions go to (created if missing,
    private unless ``visibility="public"``)."""

    name = "replicate"

    def __init__(
        self,
        *,
        api_key: Secret,
        base_url: str,
        model: str | None,
        destination: str | None,
        upload_cache: UploadCache,
        visibility: str = "private",
        hardware: str = "gpu-h100",
    ) -> None:
        self.model = model or TRAINER
        self.api_key = api_key
        self.base_url = base_url
        self.destination = destination
        self.upload_cache = upload_cache
        self.visibility = visibility
        self.hardware = hardware
        self.version: str | None = None

    def _headers(self) -> dict[str, str | Secret]:
        return {"authorization": self.api_key.prefixed("Bearer ")}

    def _json_headers(self) -> dict[str, str | Secret]:
        return {**self._headers(), "content-type": "application/json"}

    def prepare(self, archive: bytes, sha256: str, options: Mapping[str, Any]) -> Flow[Any]:
        if not self.destination or "/" not in self.destination:
            raise InvalidRequestError(
                "destination", self.destination, "'owner/name' of a Replicate model"
            )
        model = (
            yield from send(
                HttpRequest(
                    "GET", f"{self.base_url}/v1/models/{self.model}", headers=self._headers()
                )
            )
        ).json()
        version = (model or {}).get("latest_version") or {}
        if not version.get("id"):
            raise ResponseFormatError(
                f"{self.model} has no latest version", backend=self.name, body=model
            )
        self.version = str(version["id"])
        given = {_ALIASES.get(k, k): v for k, v in options.items() if v is not None}
        validate_input(given, version.get("openapi_schema") or {}, self.model)
        yield from self._ensure_destination()
        given["input_images"] = yield from self._upload(archive, sha256)
        return {"version": self.version, "destination": self.destination, "input": given}

    def _ensure_destination(self) -> Flow[None]:
        assert self.destination is not None
        found = yield from send(
            HttpRequest(
                "GET",
                f"{self.base_url}/v1/models/{self.destination}",
                headers=self._headers(),
                raise_for_status=False,
            )
        )
        if found.ok:
            return
        if found.status_code != 404:
            raise error_from_response(self.name, found)
        owner, name = self.destination.split("/", 1)
        created = yield from send(
            HttpRequest(
                "POST",
                f"{self.base_url}/v1/models",
                headers=self._json_headers(),
                json={
                    "owner": owner,
                    "name": name,
                    "visibility": self.visibility,
                    "hardware": self.hardware,
                    "description": "FLUX.1 LoRA trained with fluxkit",
                },
                retry="never",
                raise_for_status=False,
            )
        )
        if not created.ok and created.status_code != 409:  # 409: created meanwhile
            raise error_from_response(self.name, created)

    def _upload(self, archive: bytes, sha256: str) -> Flow[str]:
        key = f"replicate-archive@{self.base_url}-{sha256}"
        cached = self.upload_cache.get(key)
        if cached is not None:
            return cached
        body, content_type = multipart("content", f"{sha256[:16]}.zip", archive, "application/zip")
        answer = yield from send(
            HttpRequest(
                "POST",
                f"{self.base_url}/v1/files",
                headers={**self._headers(), "content-type": content_type},
                content=body,
                retry="idempotent",
                timeout=300.0,
            )
        )
        url = file_url(answer, self.name)
        self.upload_cache.put(key, url)
        return url

    def submit(self, body: Any) -> Flow[str]:
        answer = (
            yield from send(
                HttpRequest(
                    "POST",
                    f"{self.base_url}/v1/models/{self.model}/versions/{body['version']}/trainings",
                    headers=self._json_headers(),
                    json={"destination": body["destination"], "input": body["input"]},
                    retry="submit",
                )
            )
        ).json()
        if not isinstance(answer, dict) or not answer.get("id"):
            raise ResponseFormatError("training answer has no id", backend=self.name, body=answer)
        job_id = str(answer["id"])
        yield Accepted(job_id, self.cancel_request(job_id))
        return job_id

    def cancel_request(self, job_id: str) -> HttpRequest:
        return HttpRequest(
            "POST",
            f"{self.base_url}/v1/trainings/{job_id}/cancel",
            headers=self._headers(),
            retry="never",
            raise_for_status=False,
        )

    def snapshot(self, job_id: str) -> Flow[TrainingSnapshot]:
        body = (
            yield from send(
                HttpRequest(
                    "GET", f"{self.base_url}/v1/trainings/{job_id}", headers=self._headers()
                )
            )
        ).json()
        if not isinstance(body, dict) or body.get("status") not in _STATUS:
            raise ResponseFormatError("unreadable training", backend=self.name, body=body)
        metrics = body.get("metrics") or {}
        seconds = metrics.get("predict_time")
        return TrainingSnapshot(
            _STATUS[body["status"]],  # type: ignore[arg-type]
            logs=tuple(split_lines(str(body.get("logs") or ""))),
            error=str(body["error"]) if body.get("error") else None,
            output=body.get("output"),
            run_seconds=float(seconds) if isinstance(seconds, int | float) else None,
        )

    def weights(self, job_id: str, snapshot: TrainingSnapshot) -> Flow[dict[str, bytes]]:
        output = snapshot.output
        url = output.get("weights") if isinstance(output, dict) else None
        if not isinstance(url, str) or not url:
            raise ResponseFormatError(
                "training output has no weights URL", backend=self.name, body=output
            )
        tar = yield from download(url, backend=self.name, job_id=job_id, what="weights .tar")
        return weights_from_tar(tar, job_id)


def validate_input(given: Mapping[str, Any], schema: Mapping[str, Any], model: str) -> None:
    """Check ``given`` against the version's ``TrainingInput`` (names, types, ranges, enums)."""
    components = schema.get("components") or {}
    spec = (components.get("schemas") or {}).get("TrainingInput")
    if not isinstance(spec, dict):
        return  # no schema published: the provider will judge
    properties: dict[str, Any] = spec.get("properties") or {}
    for key, value in given.items():
        field = properties.get(key)
        if field is None:
            raise InvalidRequestError(
                key, value, ", ".join(sorted(properties)), reason=f"not an input of {model}"
            )
        kind = field.get("type")
        if kind == "integer" and not (isinstance(value, int) and not isinstance(value, bool)):
            raise InvalidRequestError(key, value, "an integer")
        if kind == "number" and not isinstance(value, int | float):
            raise InvalidRequestError(key, value, "a number")
        if kind == "boolean" and not isinstance(value, bool):
            raise InvalidRequestError(key, value, "true or false")
        if kind == "string" and not isinstance(value, str | Secret):
            raise InvalidRequestError(key, value, "a string")
        low, high = field.get("minimum"), field.get("maximum")
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if number and ((low is not None and value < low) or (high is not None and value > high)):
            raise InvalidRequestError(key, value, f"{low}-{high}")
        if "enum" in field and value not in field["enum"]:
            raise InvalidRequestError(key, value, " | ".join(map(str, field["enum"])))
    for key in spec.get("required") or ():
        if key not in given and key != "input_images":
            raise InvalidRequestError(key, None, "a value", reason=f"required by {model}")


def weights_from_tar(data: bytes, job_id: str) -> dict[str, bytes]:
    """``lora.safetensors`` (and ``config.yaml`` when present) read from the trainer's ``.tar``,
    in memory: nothing is extracted to disk, so hostile member names cannot escape."""
    files: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as archive:
            members = [m for m in archive.getmembers() if m.isfile()]
            tensors = [m for m in members if m.name.endswith(".safetensors")]
            tensors.sort(key=lambda m: (not m.name.endswith("/lora.safetensors"), m.name))
            if tensors and tensors[0].size <= _MAX_WEIGHTS:
                handle = archive.extractfile(tensors[0])
                if handle is not None:
                    files["lora.safetensors"] = handle.read()
            for member in members:
                if member.name.endswith("config.yaml") and member.size < 1 << 20:
                    handle = archive.extractfile(member)
                    if handle is not None:
                        files["config.yaml"] = handle.read()
    except tarfile.TarError as exc:
        raise ResponseFormatError(
            f"the weights are not a readable .tar: {exc}", backend="replicate", request_id=job_id
        ) from exc
    if "lora.safetensors" not in files:
        raise ResponseFormatError(
            "the weights .tar holds no .safetensors file", backend="replicate", request_id=job_id
        )
    return files
