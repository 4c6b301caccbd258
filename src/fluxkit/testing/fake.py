"""fluxkit's own queue-style provider, emulated: the server side of the ``fake`` backend.

Protocol (JSON over HTTP, ``Authorization: Bearer <key>`` when the emulator has ``api_key``):

=======  ====================================  ==============================================
POST     /v1/generations                       submit -> 202 ``{id, status, queue_position}``;
                                               a repeated ``Idempotency-Key`` answers the
                                               job it created (no second job)
GET      /v1/generations/{id}?wait=S           status; long-polls up to S s for a change;
                                               the COMPLETED status carries ``result`` inline
GET      /v1/generations/{id}/result           the result again (base64 or URL), else 409
POST     /v1/generations/{id}/cancel           cancel -> 200, or 409 when already finished
GET      /files/{name}                         image bytes for URL results
=======  ====================================  ==============================================

Statuses: ``IN_QUEUE``, ``IN_PROGRESS``, ``COMPLETED``, ``FAILED``, ``CANCELLED``.
"""

from __future__ import annotations

import base64
import itertools
from typing import Any

from fluxkit._core import _media
from fluxkit.testing._emulator import Defer, Emulator, EmuRequest, EmuResponse, route
from fluxkit.testing._jobs import EmulatedJob
from fluxkit.testing._render import render_fake_image

__all__ = ["FakeProviderEmulator"]

_STATUS = {
    "queued": "IN_QUEUE",
    "running": "IN_PROGRESS",
    "completed": "COMPLETED",
    "failed": "FAILED",
    "cancelled": "CANCELLED",
}
_MAX_WAIT = 10.0
_RENDER_CACHE = 64


class FakeProviderEmulator(Emulator):
    """The fake provider. Scripting: ``emu.script`` (latency, queue/run time, failures).

    Example:
        ```python
        import fluxkit
        from fluxkit.testing import FakeProviderEmulator

        emu = FakeProviderEmulator()
        emu.script.fail_next(429, count=2, retry_after=0.01)   # a rate-limit burst
        gen = fluxkit.Generator("fake", transport=emu.transport())
        gen.generate("a fox", seed=1)
        len(emu.requests("/v1/generations$", method="POST"))  # 3: two 429s, then accepted
        ```

    Attributes:
        jobs: every job accepted, by id.
        cancelled: ids of jobs a cancel request reached.
        return_urls: answer with image URLs (served by ``/files``) instead of base64.
    """

    base_url = "http://fake.fluxkit.local"
    backend = "fake"

    def __init__(
        self, *, api_key: str | None = None, return_urls: bool = False, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.api_key = api_key
        self.return_urls = return_urls
        self.jobs: dict[str, EmulatedJob] = {}
        self.cancelled: set[str] = set()
        self.files: dict[str, bytes] = {}
        # identical requests render once: the emulator's CPU should go to the protocol
        self._rendered: dict[tuple[Any, ...], bytes] = {}
        self._ids = itertools.count(1)
        self._by_key: dict[str, str] = {}

    # -- helpers -------------------------------------------------------------------------

    def _unauthorised(self, request: EmuRequest) -> EmuResponse | None:
        if self.api_key is None:
            return None
        if request.header("authorization") != f"Bearer {self.api_key}":
            return EmuResponse(401, json={"detail": "invalid API key"})
        return None

    def _status_body(self, job: EmulatedJob) -> dict[str, Any]:
        now = self.clock()
        state = job.state(now)
        body: dict[str, Any] = {
            "id": job.id,
            "status": _STATUS[state],
            "queue_position": job.position(now),
            "progress": {"step": job.step(now), "total": job.steps},
            "logs": list(job.logs)
            + ([f"step {job.step(now)}/{job.steps}"] if state == "running" else []),
        }
        if state == "failed":
            body["error"] = job.failure
        return body

    def _render(self, job: EmulatedJob, host: str) -> list[dict[str, Any]]:
        payload = job.payload
        init = None
        if payload.get("image"):
            init = _media.open_image(_media.decode_data_uri(payload["image"])[0])
        loras = [(item["path"], float(item.get("scale", 1.0))) for item in payload.get("loras", [])]
        images = []
        for index in range(int(payload.get("num_images", 1))):
            seed = (int(payload["seed"]) + index) % 2**32
            fmt = payload.get("output_format", "png")
            width, height = int(payload["width"]), int(payload["height"])
            key = (
                payload["prompt"],
                seed,
                width,
                height,
                tuple(loras),
                payload.get("image"),
                payload.get("strength"),
                fmt,
            )
            data = self._rendered.get(key)
            if data is None:
                picture = render_fake_image(
                    payload["prompt"],
                    seed,
                    width,
                    height,
                    loras=loras,
                    init_image=init,
                    strength=float(payload.get("strength", 0.75)),
                )
                data = self._rendered[key] = _media.encode_image(picture, fmt)
                if len(self._rendered) > _RENDER_CACHE:
                    self._rendered.pop(next(iter(self._rendered)))
            entry: dict[str, Any] = {
                "seed": seed,
                "width": width,
                "height": height,
                "content_type": _media.mime_type(data),
                "has_nsfw_concepts": "nsfw" in payload["prompt"].lower(),
            }
            if self.return_urls:
                name = f"{job.id}-{index}.{'jpg' if fmt == 'jpeg' else fmt}"
                self.files[name] = data
                entry["url"] = f"http://{host}/files/{name}"
            else:
                entry["b64"] = base64.b64encode(data).decode()
            images.append(entry)
        return images

    # -- routes --------------------------------------------------------------------------

    @route("POST", r"/v1/generations")
    def submit(self, request: EmuRequest) -> EmuResponse:
        if (denied := self._unauthorised(request)) is not None:
            return denied
        payload = request.json() or {}
        missing = [key for key in ("prompt", "width", "height", "seed") if key not in payload]
        if missing:
            return EmuResponse(
                422,
                json={
                    "detail": [
                        {"loc": ["body", key], "msg": "field required", "type": "missing"}
                        for key in missing
                    ]
                },
            )
        key = request.header("idempotency-key")
        if key is not None and key in self._by_key:
            known = self.jobs[self._by_key[key]]
            return EmuResponse(
                202,
                json={"id": known.id, "status": "IN_QUEUE", "queue_position": 0},
            )
        job_id = f"fake-{next(self._ids):06d}"
        if key is not None:
            self._by_key[key] = job_id
        now = self.clock()
        # jobs still queued: only the recent ones can be, so scan from the newest backwards
        waiting = 0
        if self.script.queue_seconds > 0:
            for job in reversed(self.jobs.values()):
                if job.created + job.queue_seconds <= now:
                    break
                waiting += job.state(now) == "queued"
        job = EmulatedJob(
            job_id,
            payload,
            self.clock(),
            self.script.queue_seconds,
            self.script.run_seconds,
            steps=int(payload.get("steps") or self.script.steps),
            initial_position=waiting,
            failure=self.script.take_job_failure(),
        )
        job.logs.append(f"accepted {job_id}")
        self.jobs[job_id] = job
        return EmuResponse(
            202,
            json={
                "id": job_id,
                "status": "IN_QUEUE",
                "queue_position": job.position(self.clock()),
            },
        )

    @route("GET", r"/v1/generations/(?P<job_id>[\w-]+)")
    def status(self, request: EmuRequest, job_id: str) -> EmuResponse | Defer:
        if (denied := self._unauthorised(request)) is not None:
            return denied
        job = self.jobs.get(job_id)
        if job is None:
            return EmuResponse(404, json={"detail": f"job {job_id} not found"})
        wait = min(_MAX_WAIT, float(request.query.get("wait", 0) or 0))
        deadline = self.clock() + wait
        seen = self._status_body(job)

        def answer() -> EmuResponse | Defer:
            with self.lock:
                current = self._status_body(job)
            change = job.next_change(self.clock())
            if current != seen or change is None or self.clock() >= deadline:
                if current["status"] == "COMPLETED":
                    # the final status carries the result: one round trip fewer per job
                    current["result"] = self._result(job, request)
                return EmuResponse(200, json=current)
            return Defer(max(0.0, min(change, deadline) - self.clock()) + 0.0001, answer)

        return answer()

    @route("GET", r"/v1/generations/(?P<job_id>[\w-]+)/result")
    def result(self, request: EmuRequest, job_id: str) -> EmuResponse:
        if (denied := self._unauthorised(request)) is not None:
            return denied
        job = self.jobs.get(job_id)
        if job is None:
            return EmuResponse(404, json={"detail": f"job {job_id} not found"})
        state = job.state(self.clock())
        if state != "completed":
            return EmuResponse(409, json={"detail": f"job {job_id} is {_STATUS[state]}"})
        return EmuResponse(200, json=self._result(job, request))

    def _result(self, job: EmulatedJob, request: EmuRequest) -> Any:
        with self.lock:
            if job.result is None:
                host = request.header("host") or "fake.fluxkit.local"
                job.result = {
                    "images": self._render(job, host),
                    "timings": {"inference": job.run_seconds},
                }
            return job.result

    @route("POST", r"/v1/generations/(?P<job_id>[\w-]+)/cancel")
    def cancel(self, request: EmuRequest, job_id: str) -> EmuResponse:
        if (denied := self._unauthorised(request)) is not None:
            return denied
        job = self.jobs.get(job_id)
        if job is None:
            return EmuResponse(404, json={"detail": f"job {job_id} not found"})
        if job.state(self.clock()) in ("completed", "failed"):
            return EmuResponse(409, json={"detail": "job already finished"})
        job.cancelled_at = self.clock()
        self.cancelled.add(job_id)
        return EmuResponse(200, json={"id": job_id, "status": "CANCELLED"})

    @route("GET", r"/files/(?P<name>[\w.-]+)")
    def file(self, request: EmuRequest, name: str) -> EmuResponse:
        data = self.files.get(name)
        if data is None:
            return EmuResponse(404, json={"detail": "no such file"})
        return EmuResponse(200, body=data, headers={"content-type": _media.mime_type(data)})
