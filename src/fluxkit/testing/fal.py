"""fal.ai, emulated: the queue API and fal storage, as ``fluxkit.backends.fal`` and ``fal_client``
speak them.

=======  ===============================================  =======================================
POST     /{owner}/{app}[/{path}]                          submit -> 200 ``{request_id, status_url,
                                                          response_url, cancel_url, queue_position}``
GET      /{owner}/{app}/requests/{id}/status[?logs=1]     202 IN_QUEUE / IN_PROGRESS, 200 COMPLETED
GET      /{owner}/{app}/requests/{id}/status/stream       SSE, answered when the request completes
GET      /{owner}/{app}/requests/{id}                     the model's answer (images or its error)
PUT      /{owner}/{app}/requests/{id}/cancel              202 CANCELLATION_REQUESTED, 400
                                                          ALREADY_COMPLETED, 404 NOT_FOUND
POST     /storage/auth/token?storage_type=fal-cdn-v3      CDN token ``{token, token_type, base_url}``
POST     /files/upload                                    CDN upload -> ``{access_url}``
POST     /storage/upload/initiate?storage_type=gcs        ``{upload_url, file_url}``; then PUT
GET      /files/{name}                                    stored uploads and rendered images
POST     /fal-ai/flux-lora-fast-training                  training (``images_data_url``); logs
POST     /fal-ai/flux-lora-portrait-trainer               ``step N/T loss=...``; result
                                                          ``{diffusers_lora_file, config_file}``
=======  ===============================================  =======================================

Status, result and cancel URLs drop the endpoint's sub-path, as fal's do. Queue routes want
``Authorization: Key <api_key>`` when the emulator has an ``api_key``.

Assumed where fal's documentation is silent: a cancelled request reports ``COMPLETED`` with
``error``/``error_type: request_cancelled`` and its result is a 400; cancel of a finished request
answers 400; the SSE stream carries the status at open time and every change after it (the
real stream pushes them live; here the body arrives whole when the request completes, or after
``stream_timeout`` like a proxy cutting a long connection).
"""

from __future__ import annotations

import itertools
import json
import re
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fluxkit._core import _media
from fluxkit._types import SIZE_PRESETS
from fluxkit.testing._emulator import Defer, Emulator, EmuRequest, EmuResponse, route
from fluxkit.testing._jobs import EmulatedJob
from fluxkit.testing._render import render_fake_image
from fluxkit.testing._training import FAL_TRAINING_ENDPOINTS, flux_lora_bytes, training_log_lines

__all__ = ["FalEmulator"]

_APP = r"/(?P<app>(?:workflows/|comfy/)?[\w.-]+/[\w.-]+)/requests/(?P<request_id>[\w-]+)"
_RATIOS = {
    "21:9": (21, 9),
    "16:9": (16, 9),
    "4:3": (4, 3),
    "3:2": (3, 2),
    "1:1": (1, 1),
    "2:3": (2, 3),
    "3:4": (3, 4),
    "9:16": (9, 16),
    "9:21": (9, 21),
}
_LARGE_RESULT, _SHORT_RETENTION, _LONG_RETENTION = 10_000, 360.0, 3600.0
_STREAM_TICK = 0.25


@dataclass
class _Outcome:
    """How a scripted job ends: the result endpoint's status and body, the status's error."""

    status: int
    body: Any
    error: str
    error_type: str | None = None


@dataclass
class FalJob(EmulatedJob):
    """An accepted fal request (clock-driven, see `EmulatedJob`)."""

    endpoint: str = ""
    app: str = ""
    outcome: _Outcome | None = None


class FalEmulator(Emulator):
    """fal's queue and storage. Scripting: ``emu.script`` plus the methods below.

    Example:
        ```python
        import fluxkit
        from fluxkit.testing import FalEmulator

        emu = FalEmulator()
        emu.script.run_seconds = 0.05                # every job runs 50 ms
        emu.script.fail_next(429, path=r"^/fal-ai", method="POST", retry_after=0.01)
        gen = emu.generator()  # Generator("fal", transport=emu.transport(), ...)
        result = gen.generate("a fox", size=(256, 256), seed=3)
        len(emu.requests(r"^/fal-ai/flux/dev$", method="POST"))   # 2: a 429, then accepted
        ```

    Attributes:
        jobs: every request accepted, by request id.
        cancel_requests: ids every cancel call named; ``cancelled``: those it stopped.
        files: uploaded and rendered files by name; ``uploads`` counts uploads.
        queue_position: the position new requests start at (counts down over queue_seconds).
        cancel_running: whether a running request stops when cancelled (fal: the app decides).
        stream_timeout: seconds after which the SSE stream closes unfinished.
        retention: seconds results are kept; None: fal's rule (6 min from 10 KB, else 1 h).
    """

    base_url = "http://fal.emulator.local"
    backend = "fal"

    def __init__(self, *, api_key: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.api_key = api_key
        self.queue_position = 0
        self.cancel_running = True
        self.stream_timeout = 20.0
        self.retention: float | None = None
        self.jobs: dict[str, FalJob] = {}
        self.cancel_requests: list[str] = []
        self.cancelled: set[str] = set()
        self.files: dict[str, bytes] = {}
        self.uploads = 0
        self.training_lora: bytes | None = None
        """The LoRA file trainings return (default: a FLUX.1-shaped one)."""
        self.file_ttl: float | None = None
        """Seconds training output files stay downloadable (fal storage URLs expire)."""
        self._file_born: dict[str, float] = {}
        self._outcomes: list[_Outcome] = []
        self._slow: list[float] = []
        self._tokens: set[str] = set()
        self._renders: OrderedDict[tuple[Any, ...], bytes] = OrderedDict()
        self._ids = itertools.count(1)
        self._epoch = time.time() - self.clock()

    # -- scripting -----------------------------------------------------------------------

    def slow_jobs(self, count: int, run_seconds: float) -> None:
        """The next ``count`` requests run ``run_seconds`` instead of ``script.run_seconds``."""
        self._slow.extend([run_seconds] * count)

    def fail_jobs_with(
        self, status: int = 500, body: Any = None, *, count: int = 1, error_type: str | None = None
    ) -> None:
        """The next ``count`` requests complete with an error; their result answers ``status``."""
        body = body if body is not None else {"detail": "scripted model failure"}
        error = body.get("detail") if isinstance(body, dict) else str(body)
        text = error if isinstance(error, str) else json.dumps(error)
        self._outcomes.extend([_Outcome(status, body, text, error_type)] * count)

    def reject_jobs(self, field: str, message: str = "field required", *, count: int = 1) -> None:
        """The model refuses the next requests' input: a 422 naming ``field`` at result time."""
        detail = [{"loc": ["body", field], "msg": message, "type": "value_error"}]
        self.fail_jobs_with(422, {"detail": detail}, count=count)

    # -- helpers -------------------------------------------------------------------------

    def _unauthorised(self, request: EmuRequest) -> EmuResponse | None:
        if self.api_key is None or request.header("authorization") == f"Key {self.api_key}":
            return None
        return EmuResponse(401, json={"detail": "Invalid Key authorization header"})

    def _root(self, request: EmuRequest) -> str:
        return f"http://{request.header('host') or 'fal.emulator.local'}"

    def _job(self, request_id: str) -> FalJob | None:
        return self.jobs.get(request_id)

    def _timestamp(self, at: float) -> str:
        return datetime.fromtimestamp(self._epoch + at, UTC).isoformat()

    def _logs(self, job: FalJob, now: float) -> list[dict[str, Any]]:
        if job.state(now) == "queued":
            return []
        step = job.run_seconds / job.steps if job.steps else 0.0
        if job.endpoint in FAL_TRAINING_ENDPOINTS:
            trained = training_log_lines(job.step(now), job.steps, style="fal")
            return [
                {
                    "message": m,
                    "level": "INFO",
                    "source": "user",
                    "timestamp": self._timestamp(job.started_at + step * i),
                }
                for i, m in enumerate(trained)
            ]
        # The sampler's tqdm bar, one log entry per step, as fal's FLUX apps print it.
        lines = [(job.started_at, "Starting FLUX inference")] + [
            (job.started_at + i * step, _tqdm_line(i, job.steps, step))
            for i in range(1, job.step(now) + 1)
        ]
        return [
            {
                "message": message,
                "level": "INFO",
                "source": "user",
                "timestamp": self._timestamp(at),
            }
            for at, message in lines
        ]

    def _status_body(self, job: FalJob, root: str, logs: bool) -> dict[str, Any]:
        now = self.clock()
        state = job.state(now)
        body: dict[str, Any] = {
            "request_id": job.id,
            "response_url": f"{root}/{job.app}/requests/{job.id}",
            "logs": self._logs(job, now) if logs else None,
        }
        if state == "queued":
            body.update(status="IN_QUEUE", queue_position=job.position(now))
        elif state == "running":
            body["status"] = "IN_PROGRESS"
        else:
            body.update(status="COMPLETED", metrics={"inference_time": job.run_seconds})
            if state == "cancelled":
                body.update(error="Request cancelled by the user", error_type="request_cancelled")
            elif job.outcome is not None:
                body.update(error=job.outcome.error, error_type=job.outcome.error_type)
        return body

    def _size(self, payload: dict[str, Any], init: Any) -> tuple[int, int]:
        size = payload.get("image_size")
        if isinstance(size, str) and size in SIZE_PRESETS:
            return SIZE_PRESETS[size]
        if isinstance(size, dict):
            return int(size.get("width", 512)), int(size.get("height", 512))
        if payload.get("aspect_ratio") in _RATIOS:
            w, h = _RATIOS[payload["aspect_ratio"]]
            return (512, 512 * h // w // 16 * 16) if w >= h else (512 * w // h // 16 * 16, 512)
        return init.size if init is not None else SIZE_PRESETS["landscape_4_3"]

    def _input_image(self, reference: Any) -> bytes | None:
        if not isinstance(reference, str):
            return None
        if reference.startswith("data:"):
            return _media.decode_data_uri(reference)[0]
        name = reference.split("/files/", 1)[-1] if "/files/" in reference else None
        return self.files.get(name) if name else None

    def _render(self, job: FalJob, root: str) -> dict[str, Any]:
        payload = job.payload
        data = self._input_image(payload.get("image_url"))
        init = _media.open_image(data) if data else None
        width, height = self._size(payload, init)
        seed = int(payload.get("seed", 0)) % 2**32
        fmt = "png" if payload.get("output_format") == "png" else "jpeg"
        loras = tuple(
            (str(x["path"]), float(x.get("scale", 1.0))) for x in payload.get("loras", [])
        )
        strength = float(payload.get("strength", 0.95))
        nsfw = "nsfw" in str(payload.get("prompt", "")).lower()
        images = []
        for index in range(int(payload.get("num_images", 1))):
            key = (payload.get("prompt"), seed + index, width, height, loras, data, strength, fmt)
            encoded = self._renders.get(key)
            if encoded is None:
                picture = render_fake_image(
                    str(payload.get("prompt")),
                    (seed + index) % 2**32,
                    width,
                    height,
                    loras=loras,
                    init_image=init,
                    strength=strength,
                )
                encoded = _media.encode_image(picture, fmt)
                with self.lock:
                    self._renders[key] = encoded
                    while len(self._renders) > 64:
                        self._renders.popitem(last=False)
            name = f"{job.id}-{index}.{'jpg' if fmt == 'jpeg' else 'png'}"
            self.files[name] = encoded
            url = _media.data_uri(encoded) if payload.get("sync_mode") else f"{root}/files/{name}"
            images.append(
                {
                    "url": url,
                    "width": width,
                    "height": height,
                    "content_type": f"image/{fmt}",
                    "file_name": name,
                    "file_size": len(encoded),
                }
            )
        return {
            "images": images,
            "seed": seed,
            "has_nsfw_concepts": [nsfw] * len(images),
            "prompt": payload.get("prompt"),
            "timings": {"inference": job.run_seconds},
        }

    # -- queue routes --------------------------------------------------------------------

    @route("POST", r"/(?!storage/|files/)(?P<endpoint>[\w.-]+(?:/[\w.-]+)+)")
    def submit(self, request: EmuRequest, endpoint: str) -> EmuResponse:
        if (denied := self._unauthorised(request)) is not None:
            return denied
        parts = endpoint.split("/")
        app = "/".join(parts[: 3 if parts[0] in ("workflows", "comfy") else 2])
        number = next(self._ids)
        request_id = f"{number:08x}-0000-4000-8000-{number:012x}"
        payload = request.json()
        outcome = self._outcomes.pop(0) if self._outcomes else None
        if outcome is None and (message := self.script.take_job_failure()) is not None:
            outcome = _Outcome(500, {"detail": message}, message)
        needed = "images_data_url" if endpoint in FAL_TRAINING_ENDPOINTS else "prompt"
        if outcome is None and not (isinstance(payload, dict) and payload.get(needed)):
            detail = [{"loc": ["body", needed], "msg": "field required", "type": "missing"}]
            outcome = _Outcome(422, {"detail": detail}, "field required")
        job = FalJob(
            request_id,
            payload if isinstance(payload, dict) else {},
            self.clock(),
            self.script.queue_seconds,
            self._slow.pop(0) if self._slow else self.script.run_seconds,
            steps=int(payload.get("steps") or 1000)
            if endpoint in FAL_TRAINING_ENDPOINTS and isinstance(payload, dict)
            else self.script.steps,
            initial_position=self.queue_position,
            failure=outcome.error if outcome else None,
            endpoint=endpoint,
            app=app,
            outcome=outcome,
        )
        self.jobs[request_id] = job
        base = f"{self._root(request)}/{app}/requests/{request_id}"
        return EmuResponse(
            200,
            headers={"x-fal-request-id": request_id},
            json={
                "status": "IN_QUEUE",
                "request_id": request_id,
                "response_url": base,
                "status_url": f"{base}/status",
                "cancel_url": f"{base}/cancel",
                "queue_position": job.position(self.clock()),
            },
        )

    @route("GET", _APP + r"/status")
    def status(self, request: EmuRequest, app: str, request_id: str) -> EmuResponse:
        if (denied := self._unauthorised(request)) is not None:
            return denied
        job = self._job(request_id)
        if job is None or job.app != app:
            return EmuResponse(404, json={"detail": "Request not found"})
        body = self._status_body(job, self._root(request), _wants_logs(request))
        code = 200 if body["status"] == "COMPLETED" else 202
        return EmuResponse(code, json=body, headers={"x-fal-request-id": request_id})

    @route("GET", _APP + r"/status/stream")
    def status_stream(self, request: EmuRequest, app: str, request_id: str) -> EmuResponse | Defer:
        if (denied := self._unauthorised(request)) is not None:
            return denied
        job = self._job(request_id)
        if job is None or job.app != app:
            return EmuResponse(404, json={"detail": "Request not found"})
        root, logs, opened = self._root(request), _wants_logs(request), self.clock()
        sent = [self._status_body(job, root, logs)]

        def resume() -> EmuResponse | Defer:
            with self.lock:
                now = self.clock()
                current = self._status_body(job, root, logs)
            if current != sent[-1]:
                sent.append(current)
            if current["status"] == "COMPLETED" or now - opened >= self.stream_timeout:
                text = "".join(f"data: {json.dumps(event)}\n\n" for event in sent)
                return EmuResponse(
                    200,
                    body=text.encode(),
                    headers={
                        "content-type": "text/event-stream",
                        "x-fal-request-id": request_id,
                    },
                )
            change = job.next_change(now)
            wake = min(change if change is not None else now, opened + self.stream_timeout)
            return Defer(min(_STREAM_TICK, max(0.0, wake - now)) + 0.0005, resume)

        return resume()

    @route("GET", _APP)
    def result(self, request: EmuRequest, app: str, request_id: str) -> EmuResponse | Defer:
        if (denied := self._unauthorised(request)) is not None:
            return denied
        job, now = self._job(request_id), self.clock()
        if job is None or job.app != app:
            return EmuResponse(404, json={"detail": "Request not found"})
        state = job.state(now)
        if state in ("queued", "running"):
            return EmuResponse(400, json={"detail": "Request is still in progress"})
        if state == "cancelled":
            return EmuResponse(
                400, json={"detail": "Request was cancelled", "error_type": "request_cancelled"}
            )
        if job.outcome is not None:
            return EmuResponse(
                job.outcome.status, json=job.outcome.body, headers={"x-fal-request-id": request_id}
            )
        if job.result is not None:
            size = len(json.dumps(job.result))
            kept = self.retention or (
                _SHORT_RETENTION if size >= _LARGE_RESULT else _LONG_RETENTION
            )
            if now > job.finished_at + kept:
                return EmuResponse(404, json={"detail": "Request not found"})
            return EmuResponse(200, json=job.result, headers={"x-fal-request-id": request_id})
        root = self._root(request)

        def render() -> EmuResponse:  # outside the emulator's lock: rendering takes milliseconds
            training = job.endpoint in FAL_TRAINING_ENDPOINTS
            job.result = self._trained(job, root) if training else self._render(job, root)
            return EmuResponse(200, json=job.result, headers={"x-fal-request-id": request_id})

        return Defer(0.0, render)

    @route("PUT", _APP + r"/cancel")
    def cancel(self, request: EmuRequest, app: str, request_id: str) -> EmuResponse:
        if (denied := self._unauthorised(request)) is not None:
            return denied
        self.cancel_requests.append(request_id)
        job, now = self._job(request_id), self.clock()
        if job is None or job.app != app:
            return EmuResponse(404, json={"status": "NOT_FOUND"})
        state = job.state(now)
        if state in ("completed", "failed", "cancelled"):  # a cancelled request is COMPLETED too
            return EmuResponse(400, json={"status": "ALREADY_COMPLETED"})
        if state == "queued" or (state == "running" and self.cancel_running):
            job.cancelled_at = now
            self.cancelled.add(request_id)
        return EmuResponse(202, json={"status": "CANCELLATION_REQUESTED"})

    # -- storage routes ------------------------------------------------------------------

    @route("POST", r"/storage/auth/token")
    def storage_token(self, request: EmuRequest) -> EmuResponse:
        if (denied := self._unauthorised(request)) is not None:
            return denied
        token = f"cdn-{next(self._ids):06d}"
        self._tokens.add(token)
        return EmuResponse(
            200,
            json={
                "token": token,
                "token_type": "Bearer",
                "base_url": self._root(request),
                "expires_at": self._timestamp(self.clock() + 3600),
            },
        )

    @route("POST", r"/files/upload")
    def cdn_upload(self, request: EmuRequest) -> EmuResponse:
        scheme, _, token = (request.header("authorization") or "").partition(" ")
        if scheme != "Bearer" or token not in self._tokens:
            return EmuResponse(401, json={"detail": "Invalid CDN token"})
        return EmuResponse(200, json={"access_url": self._store(request, request.body)})

    @route("POST", r"/storage/upload/initiate")
    def storage_initiate(self, request: EmuRequest) -> EmuResponse:
        if (denied := self._unauthorised(request)) is not None:
            return denied
        spec = request.json() or {}
        given = re.sub(r"[^\w.-]", "_", str(spec.get("file_name") or "upload.bin"))
        name = f"{next(self._ids):06d}-{given}"
        root = self._root(request)
        return EmuResponse(
            200,
            json={
                "upload_url": f"{root}/storage/upload/put/{name}",
                "file_url": f"{root}/files/{name}",
            },
        )

    @route("PUT", r"/storage/upload/put/(?P<name>[\w.-]+)")
    def storage_put(self, request: EmuRequest, name: str) -> EmuResponse:
        self.files[name] = request.body
        self.uploads += 1
        return EmuResponse(200)

    @route("GET", r"/files/(?P<name>[\w.-]+)")
    def file(self, request: EmuRequest, name: str) -> EmuResponse:
        data = self.files.get(name)
        born = self._file_born.get(name)
        if born is not None and self.file_ttl is not None and self.clock() > born + self.file_ttl:
            data = None  # an expired storage URL
        if data is None:
            return EmuResponse(404, json={"detail": "File not found"})
        return EmuResponse(200, body=data, headers={"content-type": _media.mime_type(data)})

    def _trained(self, job: FalJob, root: str) -> dict[str, Any]:
        """A finished training's result: the LoRA and its config, on (expiring) storage."""
        lora = self.training_lora if self.training_lora is not None else flux_lora_bytes()
        trigger = job.payload.get(FAL_TRAINING_ENDPOINTS[job.endpoint])
        config = json.dumps({"steps": job.steps, "trigger": trigger}).encode()
        files = {}
        for key, name, data, kind in (
            ("diffusers_lora_file", f"{job.id}-lora.safetensors", lora, "application/octet-stream"),
            ("config_file", f"{job.id}-config.json", config, "application/json"),
        ):
            self.files[name] = data
            self._file_born[name] = self.clock()
            files[key] = {
                "url": f"{root}/files/{name}",
                "content_type": kind,
                "file_name": name.split("-", 5)[-1],
                "file_size": len(data),
            }
        return files

    def _store(self, request: EmuRequest, data: bytes) -> str:
        given = re.sub(r"[^\w.-]", "_", request.header("x-fal-file-name") or "upload.bin")
        name = f"{next(self._ids):06d}-{given}"
        self.files[name] = data
        self.uploads += 1
        return f"{self._root(request)}/files/{name}"


def _tqdm_line(i: int, total: int, seconds_per_step: float) -> str:
    """``" 50%|█████     | 1/2 [00:00<00:00, 4.00it/s]"``: a sampler's progress line."""
    filled = 10 * i // total
    rate = 1 / seconds_per_step if seconds_per_step > 0 else 0.0
    return f"{100 * i // total:3d}%|{'█' * filled}{' ' * (10 - filled)}| {i}/{total} [00:00<00:00, {rate:.2f}it/s]"


def _wants_logs(request: EmuRequest) -> bool:
    return request.query.get("logs", "").lower() in ("1", "true")
