"""fal's FLUX LoRA trainers through the queue API, as flows (pure).

* ``fal-ai/flux-lora-fast-training``: ``images_data_url``, ``trigger_word``, ``steps``,
  ``create_masks``, ``is_style``, ``is_input_format_already_preprocessed``,
  ``data_archive_format``;
* ``fal-ai/flux-lora-portrait-trainer``: ``images_data_url``, ``trigger_phrase``, ``steps``,
  ``learning_rate`` (1e-6 to 1e-3), ``multiresolution_training``, ``subject_crop``,
  ``create_masks``, ``resume_from_checkpoint``, ``data_archive_format``.

Both answer ``{diffusers_lora_file: File, config_file: File}`` (fal-js ``zod.gen.ts``, see
``training-apis.md`` §5.1). The archive goes to fal storage the way ``fal_client`` uploads (CDN
token, then the GCS fallback), once per content hash through the upload cache.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fluxkit._config import Secret
from fluxkit._core import Accepted, Flow, HttpRequest, send
from fluxkit._exceptions import InvalidRequestError, ResponseFormatError
from fluxkit._uploads import UploadCache
from fluxkit.backends._fal._queue import job_error, new_logs, ticket_from_submit
from fluxkit.training._hosted import HostedTrainer, download
from fluxkit.training._model import TrainingSnapshot, TrainingStatus

__all__ = ["FAL_TRAINERS", "FalTrainer"]

FAST = "fal-ai/flux-lora-fast-training"
PORTRAIT = "fal-ai/flux-lora-portrait-trainer"
_COMMON = {"images_data_url", "steps", "create_masks", "data_archive_format"}
FAL_TRAINERS: dict[str, dict[str, Any]] = {
    FAST: {
        "trigger": "trigger_word",
        "fields": _COMMON | {"trigger_word", "is_style", "is_input_format_already_preprocessed"},
        "ranges": {"steps": (1, 10000)},
    },
    PORTRAIT: {
        "trigger": "trigger_phrase",
        "fields": _COMMON
        | {
            "trigger_phrase",
            "learning_rate",
            "multiresolution_training",
            "subject_crop",
            "resume_from_checkpoint",
        },
        "ranges": {"steps": (1, 10000), "learning_rate": (1e-6, 1e-3)},
    },
}
_ALIASES = {"fast": FAST, "portrait": PORTRAIT}
_STATUS: dict[str, TrainingStatus] = {"IN_QUEUE": "queued", "IN_PROGRESS": "running"}


class FalTrainer(HostedTrainer):
    """fal's trainers. ``model``: ``fast`` (default), ``portrait`` or an endpoint id."""

    name = "fal"

    def __init__(
        self,
        *,
        api_key: Secret,
        base_url: str,
        rest_url: str,
        cdn_url: str,
        model: str | None,
        upload_cache: UploadCache,
    ) -> None:
        self.model = _ALIASES.get(model or "fast", model or FAST)
        if self.model not in FAL_TRAINERS:
            raise InvalidRequestError("model", model, " | ".join([*_ALIASES, *FAL_TRAINERS]))
        self.api_key = api_key
        self.base_url, self.rest_url, self.cdn_url = base_url, rest_url, cdn_url
        self.upload_cache = upload_cache
        self.spec = FAL_TRAINERS[self.model]

    def _headers(self) -> dict[str, str | Secret]:
        return {"authorization": self.api_key.prefixed("Key ")}

    def build_input(self, archive_url: str, options: Mapping[str, Any]) -> dict[str, Any]:
        """The endpoint's input from fluxkit's options; unknown fields and ranges refused."""
        body: dict[str, Any] = {"images_data_url": archive_url}
        for key, value in options.items():
            if value is None:
                continue
            if key == "trigger_word":
                key = self.spec["trigger"]
            if key not in self.spec["fields"]:
                allowed = sorted(k for k in self.spec["fields"] if k != "images_data_url")
                raise InvalidRequestError(
                    key, value, ", ".join(allowed), reason=f"not an input of {self.model}"
                )
            low, high = self.spec["ranges"].get(key, (None, None))
            if low is not None and not low <= value <= high:
                raise InvalidRequestError(key, value, f"{low}-{high}")
            body[key] = value
        return body

    def prepare(self, archive: bytes, sha256: str, options: Mapping[str, Any]) -> Flow[Any]:
        self.build_input("pending", options)  # refuse bad options before uploading anything
        url = yield from self._upload(archive, sha256)
        return self.build_input(url, options)

    def _upload(self, archive: bytes, sha256: str) -> Flow[str]:
        key = f"fal-archive@{self.cdn_url}-{sha256}"
        cached = self.upload_cache.get(key)
        if cached is not None:
            return cached
        name = f"{sha256[:16]}.zip"
        token = yield from send(
            HttpRequest(
                "POST",
                f"{self.rest_url}/storage/auth/token",
                headers={**self._headers(), "content-type": "application/json"},
                params={"storage_type": "fal-cdn-v3"},
                json={},
                retry="never",
                raise_for_status=False,
            )
        )
        body = token.json() if token.ok else None
        url: str | None = None
        if isinstance(body, dict) and body.get("token"):
            uploaded = yield from send(
                HttpRequest(
                    "POST",
                    f"{self.cdn_url}/files/upload",
                    content=archive,
                    headers={
                        "authorization": Secret(
                            f"{body.get('token_type', 'Bearer')} {body['token']}"
                        ),
                        "content-type": "application/zip",
                        "x-fal-file-name": name,
                    },
                    retry="never",
                    raise_for_status=False,
                    timeout=300.0,
                )
            )
            answer = uploaded.json() if uploaded.ok else None
            found = answer.get("access_url") if isinstance(answer, dict) else None
            url = found if isinstance(found, str) and found else None
        if url is None:  # fal-client's fallback repository
            initiated = (
                yield from send(
                    HttpRequest(
                        "POST",
                        f"{self.rest_url}/storage/upload/initiate",
                        headers={**self._headers(), "content-type": "application/json"},
                        params={"storage_type": "gcs"},
                        json={"file_name": name, "content_type": "application/zip"},
                    )
                )
            ).json()
            try:
                upload_url, url = str(initiated["upload_url"]), str(initiated["file_url"])
            except (KeyError, TypeError) as exc:
                raise ResponseFormatError(
                    f"unreadable upload initiation: {exc!r}", backend="fal", body=initiated
                ) from exc
            yield from send(
                HttpRequest(
                    "PUT",
                    upload_url,
                    content=archive,
                    headers={"content-type": "application/zip"},
                    timeout=300.0,
                )
            )
        self.upload_cache.put(key, url)
        return url

    def submit(self, body: Any) -> Flow[str]:
        answer = (
            yield from send(
                HttpRequest(
                    "POST",
                    f"{self.base_url}/{self.model}",
                    headers=self._headers(),
                    json=body,
                    retry="submit",
                )
            )
        ).json()
        ticket = ticket_from_submit(answer, self.model, self.base_url)
        yield Accepted(ticket.request_id, self.cancel_request(ticket.request_id))
        return ticket.request_id

    def cancel_request(self, job_id: str) -> HttpRequest:
        ticket = ticket_from_submit({"request_id": job_id}, self.model, self.base_url)
        return HttpRequest(
            "PUT", ticket.cancel_url, headers=self._headers(), retry="never", raise_for_status=False
        )

    def snapshot(self, job_id: str) -> Flow[TrainingSnapshot]:
        ticket = ticket_from_submit({"request_id": job_id}, self.model, self.base_url)
        status = (
            yield from send(
                HttpRequest("GET", ticket.status_url, headers=self._headers(), params={"logs": "1"})
            )
        ).json()
        logs = tuple(new_logs(status, set()))
        state = status.get("status") if isinstance(status, dict) else None
        if state in _STATUS:
            position = status.get("queue_position")
            return TrainingSnapshot(
                _STATUS[state],
                logs=logs,
                position=position if isinstance(position, int) else None,
            )
        if state != "COMPLETED":
            raise ResponseFormatError(f"unknown status {state!r}", backend="fal", body=status)
        metrics = status.get("metrics") or {}
        seconds = metrics.get("inference_time")
        run = float(seconds) if isinstance(seconds, int | float) else None
        if status.get("error"):
            error = job_error(status, None, job_id, list(logs))
            kind: TrainingStatus = (
                "canceled" if "cancel" in str(status.get("error_type", "")) else "failed"
            )
            return TrainingSnapshot(kind, logs=logs, error=str(error.provider_message))
        result = yield from send(
            HttpRequest("GET", ticket.response_url, headers=self._headers(), raise_for_status=False)
        )
        if not result.ok:
            error = job_error(status, result, job_id, list(logs))
            kind = "canceled" if "cancel" in str(error).lower() else "failed"
            return TrainingSnapshot(kind, logs=logs, error=str(error.provider_message or error))
        return TrainingSnapshot("succeeded", logs=logs, output=result.json(), run_seconds=run)

    def weights(self, job_id: str, snapshot: TrainingSnapshot) -> Flow[dict[str, bytes]]:
        output = snapshot.output
        try:
            lora_url = str(output["diffusers_lora_file"]["url"])
        except (KeyError, TypeError) as exc:
            raise ResponseFormatError(
                "training result has no diffusers_lora_file", backend="fal", body=output
            ) from exc
        files = {
            "lora.safetensors": (
                yield from download(lora_url, backend="fal", job_id=job_id, what="LoRA weights")
            )
        }
        config = (output.get("config_file") or {}).get("url")
        if isinstance(config, str) and config:
            files["config.json"] = yield from download(
                config, backend="fal", job_id=job_id, what="config file"
            )
        return files
