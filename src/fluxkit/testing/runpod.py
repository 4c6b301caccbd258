"""RunPod's serverless queue API, emulated: the client side (``/run``, ``/runsync``,
``/status``, ``/stream``, ``/cancel``, ``/retry``, ``/purge-queue``, ``/health``) and the worker
side (``job-take``, ``job-stop``, ``job-done``, ``job-stream``), so the **real**
``runpod.serverless.start`` worker loop can take its jobs.

=======  ===========================================  =========================================
POST     /v2/{endpoint}/run | /runsync                 ``{"input", "policy"?, "s3Config"?}``
GET|POST /v2/{endpoint}/status/{id}                    ``{"id","status","delayTime",...}``
GET|POST /v2/{endpoint}/stream/{id}                    ``{"status","stream":[{"output"}]}`` (new chunks)
POST     /v2/{endpoint}/cancel/{id}                    ``{"id","status":"CANCELLED"}``
GET      /v2/{endpoint}/health                         ``{"jobs":{...},"workers":{...}}``
GET      /v2/job-take/{worker}?job_in_progress=        204 or ``{"id","input",...}`` (long poll)
GET      /v2/job-stop/{worker}                         204 or ``{"jobsToStop":[ids]}`` (long poll)
POST     /v2/job-done/{worker}/{id}?isStream=          result, error or ``IN_PROGRESS`` progress
POST     /v2/job-stream/{worker}/{id}                  one streamed chunk
=======  ===========================================  =========================================

Two ways to run jobs:

* ``RunPodEmulator()`` — a built-in stand-in worker, driven by the clock (``script.queue_seconds``
  as the queue/cold-start delay, ``script.run_seconds`` over ``script.steps`` steps); its output
  has the fluxkit worker's shape, with deterministic fake images as data URIs;
* ``RunPodEmulator(workers=True)`` — jobs wait until a worker takes them: point a real worker at
  it with :meth:`RunPodEmulator.worker_env`.

``policy.executionTimeout`` and ``ttl`` are honoured (``TIMED_OUT``; an expired job answers 404,
as on RunPod), and both are recorded on each job for tests to check.
"""

from __future__ import annotations

import base64
import itertools
import json
from dataclasses import dataclass, field
from typing import Any

from fluxkit._core import _media
from fluxkit.testing._emulator import Defer, Emulator, EmuRequest, EmuResponse, route
from fluxkit.testing._render import render_fake_image

__all__ = ["RunPodEmulator", "RunPodJob"]

_EID = r"(?P<endpoint>[\w.-]+)"
_FINAL = frozenset({"COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT"})
_MAX_EXECUTION = 600_000
_MAX_TTL = 86_400_000


@dataclass
class RunPodJob:
    """One job as the emulator holds it."""

    id: str
    input: dict[str, Any]
    created: float
    policy: dict[str, Any] = field(default_factory=dict)
    s3_config: dict[str, Any] | None = None
    status: str = "IN_QUEUE"
    worker: str | None = None
    taken_at: float | None = None
    finished_at: float | None = None
    output: Any = None
    error: str | None = None
    stream: list[dict[str, Any]] = field(default_factory=list)
    stream_read: int = 0
    stop_sent: bool = False

    @property
    def execution_timeout(self) -> float:
        return float(self.policy.get("executionTimeout", _MAX_EXECUTION)) / 1000

    @property
    def ttl(self) -> float:
        return float(self.policy.get("ttl", _MAX_TTL)) / 1000


class RunPodEmulator(Emulator):
    """RunPod serverless, emulated.

    Example:
        ```python
        from fluxkit.testing import RunPodEmulator

        emu = RunPodEmulator()                       # built-in stand-in worker
        gen = emu.generator()                        # Generator("runpod", endpoint_id=..., ...)
        gen.generate("a fox", seed=1, size=(256, 256))

        emu = RunPodEmulator(workers=True)           # jobs go to real workers
        with emu.serve() as url:
            env = emu.worker_env(url)                # RUNPOD_WEBHOOK_GET_JOB=... for the worker
        ```

    Attributes:
        jobs: every job, by id. cancelled: ids a cancel request reached.
        workers_seen: worker ids that polled for jobs.
    """

    base_url = "http://runpod.emulator.fluxkit.local/v2"
    backend = "runpod"

    def __init__(
        self,
        *,
        api_key: str = "emulator-key",
        endpoint_id: str = "fluxkit-endpoint",
        workers: bool = False,
        long_poll: float = 0.5,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.api_key = api_key
        self.endpoint_id = endpoint_id
        self.workers = workers
        self.long_poll = long_poll
        self.jobs: dict[str, RunPodJob] = {}
        self.cancelled: set[str] = set()
        self.workers_seen: set[str] = set()
        self._ids = itertools.count(1)

    # -- helpers ------------------------------------------------------------------------------

    def _generator_options(self, options: dict[str, Any]) -> dict[str, Any]:
        options.setdefault("endpoint_id", self.endpoint_id)
        return super()._generator_options(options)

    def worker_env(self, url: str, *, worker_id: str = "emu-worker-1") -> dict[str, str]:
        """Environment variables that point a real ``runpod`` worker loop at this emulator
        (``url`` is what :meth:`serve` yielded)."""
        return {
            "RUNPOD_WEBHOOK_GET_JOB": f"{url}/v2/job-take/$ID?token=emu",
            "RUNPOD_WEBHOOK_POST_OUTPUT": f"{url}/v2/job-done/$RUNPOD_POD_ID/$ID?token=emu",
            "RUNPOD_WEBHOOK_POST_STREAM": f"{url}/v2/job-stream/$RUNPOD_POD_ID/$ID?token=emu",
            "RUNPOD_POD_ID": worker_id,
            "RUNPOD_SKIP_AUTO_SYSTEM_CHECKS": "true",  # else it dials 8.8.8.8:53
            "RUNPOD_SKIP_GPU_CHECK": "true",
        }

    def _authorised(self, request: EmuRequest) -> bool:
        header = (request.header("authorization") or "").strip()
        return header in (f"Bearer {self.api_key}", self.api_key)

    def _job(self, job_id: str) -> RunPodJob | None:
        job = self.jobs.get(job_id)
        if job is None:
            return None
        self._advance(job)
        now = self.clock()
        if job.status == "IN_QUEUE" and now - job.created >= job.ttl:
            del self.jobs[job_id]  # RunPod: an expired job is gone (404)
            return None
        return job

    def _advance(self, job: RunPodJob) -> None:
        """Move a job along the clock: the stand-in worker, and executionTimeout."""
        now = self.clock()
        if job.status in _FINAL:
            return
        if not self.workers:
            self._simulate(job, now)
        if (
            job.status == "IN_PROGRESS"
            and job.taken_at is not None
            and now - job.taken_at >= job.execution_timeout
        ):
            job.status, job.finished_at = "TIMED_OUT", now
            job.error = "job timed out (policy.executionTimeout)"

    def _simulate(self, job: RunPodJob, now: float) -> None:
        script = self.script
        start = job.created + script.queue_seconds
        if now < start:
            return
        if job.taken_at is None:
            job.status, job.taken_at, job.worker = "IN_PROGRESS", start, "stand-in"
        steps = max(1, script.steps)
        elapsed = now - job.taken_at
        if script.run_seconds > 0 and elapsed < script.run_seconds:
            done = min(steps, int(steps * elapsed / script.run_seconds))
            if elapsed >= job.execution_timeout:
                return
            for step in range(len(job.stream) + 1, done + 1):
                job.stream.append({"output": {"step": step, "of": steps}})
            if done:
                job.output = {"step": done, "of": steps}
            return
        if job.execution_timeout < script.run_seconds:
            return  # it dies at executionTimeout instead (see _advance)
        for step in range(len(job.stream) + 1, steps + 1):
            job.stream.append({"output": {"step": step, "of": steps}})
        failure = script.take_job_failure()
        job.finished_at = job.taken_at + script.run_seconds
        if failure:
            job.status, job.error, job.output = "FAILED", failure, None
        else:
            job.status, job.output = "COMPLETED", self._fake_output(job)

    def _fake_output(self, job: RunPodJob) -> dict[str, Any]:
        spec = job.input
        size = spec.get("size")
        width = int(spec.get("width") or (size[0] if isinstance(size, list) else 1024))
        height = int(spec.get("height") or (size[1] if isinstance(size, list) else 1024))
        seed = int(spec.get("seed") or 0)
        count = int(spec.get("n") or spec.get("num_images") or 1)
        fmt = str(spec.get("output_format") or "png")
        images = []
        for index in range(count):
            picture = render_fake_image(str(spec.get("prompt", "")), seed + index, width, height)
            data = _media.encode_image(picture, fmt)
            mime = "image/jpeg" if fmt == "jpeg" else f"image/{fmt}"
            images.append(
                {
                    "seed": seed + index,
                    "width": width,
                    "height": height,
                    "format": fmt,
                    "image": f"data:{mime};base64,{base64.b64encode(data).decode()}",
                }
            )
        return {"images": images, "seeds": [i["seed"] for i in images], "metrics": {}}

    def _status_body(self, job: RunPodJob) -> dict[str, Any]:
        now = self.clock()
        body: dict[str, Any] = {"id": job.id, "status": job.status}
        if job.taken_at is not None:
            body["delayTime"] = int((job.taken_at - job.created) * 1000)
            end = job.finished_at if job.finished_at is not None else now
            body["executionTime"] = int((end - job.taken_at) * 1000)
        if job.worker is not None:
            body["workerId"] = job.worker
        if job.output is not None:
            body["output"] = job.output
        if job.error is not None:
            body["error"] = job.error
        return body

    # -- client API ---------------------------------------------------------------------------

    def _submit(self, request: EmuRequest, endpoint: str) -> RunPodJob | EmuResponse:
        if not self._authorised(request):
            return EmuResponse(401, body=b"Unauthorized")
        if endpoint != self.endpoint_id:
            return EmuResponse(404, json={"error": f"endpoint {endpoint} not found"})
        try:
            body = request.json()
        except ValueError:
            return EmuResponse(400, json={"error": "invalid JSON body"})
        if not isinstance(body, dict) or not isinstance(body.get("input"), dict):
            return EmuResponse(400, json={"error": "input is required and must be an object"})
        policy = body.get("policy") or {}
        timeout, ttl = policy.get("executionTimeout"), policy.get("ttl")
        if timeout is not None and not (isinstance(timeout, int) and 5000 <= timeout <= 604800000):
            return EmuResponse(400, json={"error": "policy.executionTimeout: 5000 to 604800000 ms"})
        if ttl is not None and not (isinstance(ttl, int) and 10000 <= ttl <= 604800000):
            return EmuResponse(400, json={"error": "policy.ttl: 10000 to 604800000 ms"})
        job_id = f"{next(self._ids):08d}-emu-{self.endpoint_id}-u1"
        job = RunPodJob(
            job_id,
            body["input"],
            self.clock(),
            policy=dict(policy),
            s3_config=body.get("s3Config"),
        )
        self.jobs[job_id] = job
        return job

    @route("POST", rf"/v2/{_EID}/run")
    def run(self, request: EmuRequest, endpoint: str) -> EmuResponse:
        job = self._submit(request, endpoint)
        if isinstance(job, EmuResponse):
            return job
        return EmuResponse(200, json={"id": job.id, "status": "IN_QUEUE"})

    @route("POST", rf"/v2/{_EID}/runsync")
    def runsync(self, request: EmuRequest, endpoint: str) -> EmuResponse | Defer:
        job = self._submit(request, endpoint)
        if isinstance(job, EmuResponse):
            return job
        wait = min(300.0, max(1.0, float(request.query.get("wait", 90000)) / 1000))
        until = self.clock() + wait

        def answer() -> EmuResponse | Defer:
            with self.lock:
                current = self._job(job.id)
                if current is None:
                    return EmuResponse(404, json={"error": "request does not exist"})
                if current.status in _FINAL or self.clock() >= until:
                    return EmuResponse(200, json=self._status_body(current))
            return Defer(0.02, answer)

        return answer()

    @route("GET", rf"/v2/{_EID}/status/(?P<job_id>[\w.-]+)")
    def status(self, request: EmuRequest, endpoint: str, job_id: str) -> EmuResponse:
        return self._status(request, job_id)

    def _status(self, request: EmuRequest, job_id: str) -> EmuResponse:
        if not self._authorised(request):
            return EmuResponse(401, body=b"Unauthorized")
        job = self._job(job_id)
        if job is None:
            return EmuResponse(404, json={"error": "request does not exist"})
        return EmuResponse(200, json=self._status_body(job))

    @route("POST", rf"/v2/{_EID}/status/(?P<job_id>[\w.-]+)")
    def status_post(self, request: EmuRequest, endpoint: str, job_id: str) -> EmuResponse:
        return self._status(request, job_id)

    @route("GET", rf"/v2/{_EID}/stream/(?P<job_id>[\w.-]+)")
    def stream(self, request: EmuRequest, endpoint: str, job_id: str) -> EmuResponse:
        return self._stream(request, job_id)

    def _stream(self, request: EmuRequest, job_id: str) -> EmuResponse:
        if not self._authorised(request):
            return EmuResponse(401, body=b"Unauthorized")
        job = self._job(job_id)
        if job is None:
            return EmuResponse(404, json={"error": "request does not exist"})
        chunks = job.stream[job.stream_read :]
        job.stream_read = len(job.stream)
        return EmuResponse(200, json={"id": job.id, "status": job.status, "stream": chunks})

    @route("POST", rf"/v2/{_EID}/stream/(?P<job_id>[\w.-]+)")
    def stream_post(self, request: EmuRequest, endpoint: str, job_id: str) -> EmuResponse:
        return self._stream(request, job_id)

    @route("POST", rf"/v2/{_EID}/cancel/(?P<job_id>[\w.-]+)")
    def cancel(self, request: EmuRequest, endpoint: str, job_id: str) -> EmuResponse:
        if not self._authorised(request):
            return EmuResponse(401, body=b"Unauthorized")
        job = self._job(job_id)
        if job is None:
            return EmuResponse(404, json={"error": "request does not exist"})
        self.cancelled.add(job_id)
        if job.status not in _FINAL:
            job.status, job.finished_at = "CANCELLED", self.clock()
        return EmuResponse(200, json={"id": job.id, "status": job.status})

    @route("POST", rf"/v2/{_EID}/retry/(?P<job_id>[\w.-]+)")
    def retry(self, request: EmuRequest, endpoint: str, job_id: str) -> EmuResponse:
        job = self._job(job_id)
        if job is None or job.status not in ("FAILED", "TIMED_OUT"):
            return EmuResponse(400, json={"error": "only FAILED or TIMED_OUT jobs can be retried"})
        job.status, job.taken_at, job.finished_at, job.error, job.output = (
            "IN_QUEUE",
            None,
            None,
            None,
            None,
        )
        job.created, job.stream, job.stream_read, job.stop_sent = self.clock(), [], 0, False
        return EmuResponse(200, json={"id": job.id, "status": "IN_QUEUE"})

    @route("POST", rf"/v2/{_EID}/purge-queue")
    def purge_queue(self, request: EmuRequest, endpoint: str) -> EmuResponse:
        queued = [j for j in self.jobs.values() if j.status == "IN_QUEUE"]
        for job in queued:
            del self.jobs[job.id]
        return EmuResponse(200, json={"removed": len(queued), "status": "completed"})

    @route("GET", rf"/v2/{_EID}/health")
    def health(self, request: EmuRequest, endpoint: str) -> EmuResponse:
        if not self._authorised(request):
            return EmuResponse(401, body=b"Unauthorized")
        counts = {"completed": 0, "failed": 0, "inProgress": 0, "inQueue": 0, "retried": 0}
        for job in list(self.jobs.values()):
            self._advance(job)
            key = {"COMPLETED": "completed", "IN_PROGRESS": "inProgress", "IN_QUEUE": "inQueue"}
            counts[key.get(job.status, "failed")] += 1
        running = len({j.worker for j in self.jobs.values() if j.status == "IN_PROGRESS"})
        idle = max(0, len(self.workers_seen) - running)
        return EmuResponse(
            200, json={"jobs": counts, "workers": {"idle": idle, "running": running}}
        )

    # -- worker API ---------------------------------------------------------------------------

    @route("GET", r"/v2/job-take/(?P<worker>[\w.-]+)")
    def job_take(self, request: EmuRequest, worker: str) -> EmuResponse | Defer:
        self.workers_seen.add(worker)
        until = self.clock() + self.long_poll

        def answer() -> EmuResponse | Defer:
            with self.lock:
                for job in list(self.jobs.values()):
                    self._job(job.id)
                    if job.status == "IN_QUEUE" and job.id in self.jobs:
                        job.status, job.worker, job.taken_at = "IN_PROGRESS", worker, self.clock()
                        body: dict[str, Any] = {"id": job.id, "input": job.input}
                        if job.s3_config:
                            body["s3Config"] = job.s3_config
                        return EmuResponse(200, json=body)
            if self.clock() >= until:
                return EmuResponse(204)
            return Defer(0.02, answer)

        return answer()

    @route("GET", r"/v2/job-stop/(?P<worker>[\w.-]+)")
    def job_stop(self, request: EmuRequest, worker: str) -> EmuResponse | Defer:
        until = self.clock() + self.long_poll

        def answer() -> EmuResponse | Defer:
            with self.lock:
                stop = []
                for job in self.jobs.values():
                    self._advance(job)
                    if (
                        job.worker == worker
                        and job.status in ("CANCELLED", "TIMED_OUT")
                        and not job.stop_sent
                    ):
                        job.stop_sent = True
                        stop.append(job.id)
                if stop:
                    return EmuResponse(200, json={"jobsToStop": stop})
            if self.clock() >= until:
                return EmuResponse(204)
            return Defer(0.02, answer)

        return answer()

    @route("POST", r"/v2/job-done/(?P<worker>[\w.-]+)/(?P<job_id>[\w.-]+)")
    def job_done(self, request: EmuRequest, worker: str, job_id: str) -> EmuResponse:
        job = self.jobs.get(job_id)
        if job is None:
            return EmuResponse(404, json={"error": "no such job"})
        try:
            body = json.loads(request.body or b"{}")  # raw JSON, sent as form-urlencoded
        except ValueError:
            return EmuResponse(400, json={"error": "body is not JSON"})
        if job.status in _FINAL:
            return EmuResponse(200, json={})  # late progress, or a stopped job's leftovers
        if body.get("status") == "IN_PROGRESS":
            current = job.output if isinstance(job.output, dict) else {}
            progress = body.get("output")
            # progress_update posts from a new thread per call: keep the furthest step
            if not (
                isinstance(progress, dict)
                and isinstance(current.get("step"), int)
                and isinstance(progress.get("step"), int)
                and progress["step"] < current["step"]
            ):
                job.output = progress
            return EmuResponse(200, json={})
        job.finished_at = self.clock()
        if body.get("error"):
            job.status, job.error = "FAILED", str(body["error"])
            job.output = body.get("output")
        else:
            job.status, job.output = "COMPLETED", body.get("output")
        return EmuResponse(200, json={})

    @route("POST", r"/v2/job-stream/(?P<worker>[\w.-]+)/(?P<job_id>[\w.-]+)")
    def job_stream(self, request: EmuRequest, worker: str, job_id: str) -> EmuResponse:
        job = self.jobs.get(job_id)
        if job is None:
            return EmuResponse(404, json={"error": "no such job"})
        try:
            body = json.loads(request.body or b"{}")
        except ValueError:
            return EmuResponse(400, json={"error": "body is not JSON"})
        if job.status not in _FINAL:
            job.stream.append({"output": body.get("output")})
        return EmuResponse(200, json={})
