"""The ``runpod`` backend: a RunPod serverless endpoint through its queue API.

```python
import fluxkit

gen = fluxkit.Generator("runpod", endpoint_id="abc123")       # key from RUNPOD_API_KEY
result = gen.generate("a red fox", seed=7, n=2, loras=["hf://me/tok-lora"])
```

By default it speaks the input and output of fluxkit's own worker (``python -m fluxkit.worker``,
see the deploy docs); any other worker plugs in through ``input_builder``/``output_parser``.

How a call runs (https://docs.runpod.io/serverless/endpoints/operation-reference):

1. ``POST {base}/{endpoint_id}/run`` with ``{"input", "policy"}``. ``policy.executionTimeout``
   and ``policy.ttl`` are set from the time left before the call's deadline (merged into the body
   by the driver at send time), so RunPod kills the job even if this process is gone;
2. the job id is accepted at once: from then on a deadline, a cancelled task or Ctrl-C sends
   ``POST /cancel/{id}``, and nothing is ever resubmitted;
3. ``GET /status/{id}`` (or ``/stream/{id}`` with ``progress="stream"``) on a backing-off
   schedule: ``IN_QUEUE`` is ``Queued``; the first ``IN_PROGRESS`` is ``Started`` plus a ``Log``
   with the ``delayTime`` RunPod reports (the queue wait, cold start included); progress payloads
   ``{"step", "of"}`` are ``Step`` events;
4. ``COMPLETED``: images from data URIs are decoded; S3 URLs are fetched like any provider URL.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from typing import Any, Literal

from fluxkit._capabilities import Capabilities
from fluxkit._config import Secret
from fluxkit._core import Flow, HttpRequest, HttpResponse, PollSchedule, Wait, accept, send
from fluxkit._core._errors import error_from_response
from fluxkit._core._media import decode_data_uri, image_size, sniff_format
from fluxkit._events import Log, Queued, Started, Step
from fluxkit._exceptions import (
    ConfigurationError,
    JobCancelledError,
    JobFailedError,
    ResponseFormatError,
)
from fluxkit._warnings import ProviderNotice
from fluxkit.backends._base import Call, CallOutput, HttpBackend, ImageOutput
from fluxkit.worker._limits import WorkerLimits

__all__ = [
    "CAPABILITIES",
    "MODEL_ALIASES",
    "InputBuilder",
    "OutputParser",
    "RunPodBackend",
    "backend_class",
    "fluxkit_worker_input",
    "parse_images",
    "policy_for",
]

WORKER_MODEL = "fluxkit-worker"
CAPABILITIES: Mapping[str, Capabilities] = {"*": WorkerLimits().capabilities()}
MODEL_ALIASES: Mapping[str, str] = {}
FINAL = frozenset({"COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT"})

InputBuilder = Callable[[Call], dict[str, Any]]
"""Builds a job's ``input`` from a fluxkit call."""
OutputParser = Callable[[Any, Call], list[ImageOutput]]
"""Reads a COMPLETED job's ``output`` into images."""

# RunPod's policy bounds (send-requests.mdx): executionTimeout 5 s to 7 days, ttl 10 s to 7 days.
_MIN_EXECUTION_MS, _MIN_TTL_MS, _MAX_MS = 5_000, 10_000, 604_800_000


def policy_for(seconds_left: float) -> dict[str, Any]:
    """RunPod's server-side deadline for a call with ``seconds_left``: the job may neither wait
    (``ttl``, queue included) nor run (``executionTimeout``) past it."""
    ms = max(1, math.ceil(seconds_left * 1000))
    return {
        "policy": {
            "executionTimeout": min(_MAX_MS, max(_MIN_EXECUTION_MS, ms)),
            "ttl": min(_MAX_MS, max(_MIN_TTL_MS, ms)),
        }
    }


def fluxkit_worker_input(call: Call) -> dict[str, Any]:
    """The ``input`` fluxkit's worker takes for ``call`` (its pydantic schema's field names)."""
    request = call.request
    body: dict[str, Any] = {
        "prompt": request.prompt,
        "width": request.width,
        "height": request.height,
        "seed": call.seeds[0],
        "n": len(call.seeds),
        "output_format": request.output_format,
    }
    if request.steps is not None:
        body["steps"] = request.steps
    if request.guidance is not None:
        body["guidance"] = request.guidance
    if request.model:
        body["model"] = request.model
    if request.loras:
        body["loras"] = [
            {"source": lora.source, "scale": lora.scale, "weight_name": lora.weight_name}
            for lora in request.loras
        ]
    for name in ("image", "reference_image"):
        image = getattr(request, name)
        if image is not None:
            if image.url:
                body[name] = image.url
            elif image.data is not None:
                from fluxkit._core._media import data_uri

                body[name] = data_uri(image.data, image.mime)
    if request.strength is not None or request.image is not None:
        body["strength"] = request.effective_strength
    if request.reference_strength is not None:
        body["reference_strength"] = request.reference_strength
    body.update(request.extra)
    return body


def parse_images(output: Any, call: Call) -> list[ImageOutput]:
    """Images from a worker's output: fluxkit's ``{"images": [{"image"|"url", "seed", ...}]}``,
    and the common shapes ``{"images": ["data:..."|"https://..."|base64]}``, ``{"image": ...}``
    and ``{"image_url": ...}``.

    Raises:
        ResponseFormatError: no image could be found.
    """
    if isinstance(output, list):  # a streaming worker's aggregate: the result is the last item
        results = [item for item in output if isinstance(item, dict) and "images" in item]
        output = results[-1] if results else None
    items: list[Any] = []
    if isinstance(output, dict):
        if isinstance(output.get("images"), list):
            items = output["images"]
        elif "image" in output or "image_url" in output:
            items = [output.get("image") or output.get("image_url")]
    elif isinstance(output, str):
        items = [output]
    images = []
    fmt = call.request.output_format
    for index, item in enumerate(items):
        seed = call.seeds[index] if index < len(call.seeds) else None
        entry = item if isinstance(item, dict) else {"image": item}
        if isinstance(entry.get("seed"), int):
            seed = entry["seed"]
        width = int(entry.get("width") or call.request.width)
        height = int(entry.get("height") or call.request.height)
        kind = str(entry.get("format") or fmt)
        reference = entry.get("image") or entry.get("data")
        url = entry.get("url") or entry.get("s3_url")
        data: bytes | None = None
        if isinstance(reference, str) and reference.startswith("data:"):
            data = decode_data_uri(reference)[0]
        elif isinstance(reference, str) and reference.startswith(("https://", "http://")):
            url = url or reference
        elif isinstance(reference, str) and reference:
            import base64
            import binascii

            try:
                data = base64.b64decode(reference, validate=True)
            except (binascii.Error, ValueError):
                data = None
        if data is not None:
            kind = sniff_format(data) or kind
            try:
                width, height = image_size(data)
            except Exception:
                pass
            images.append(ImageOutput(seed, width, height, kind, data=data))
        elif isinstance(url, str) and url:
            images.append(ImageOutput(seed, width, height, kind, url=url))
    if not images:
        raise ResponseFormatError(
            "the worker's output holds no image", backend="runpod", body=output
        )
    return images


class RunPodBackend(HttpBackend):
    """A RunPod serverless endpoint.

    Args:
        endpoint_id: the endpoint's id (default ``RUNPOD_ENDPOINT_ID``).
        api_key: default ``RUNPOD_API_KEY``.
        base_url: the API root (default ``https://api.runpod.ai/v2``), e.g. an emulator.
        limits: the worker's limits (match its ``FLUXKIT_MAX_*`` environment); requests beyond
            them fail before anything is submitted.
        input_builder: builds a custom worker's ``input`` from a call (default: fluxkit's).
        output_parser: reads a custom worker's ``output`` (default: :func:`parse_images`).
        progress: ``"status"`` (default: progress from ``/status``, fluxkit's worker sends it
            with ``progress_update``) or ``"stream"`` (poll ``/stream``: a streaming worker).
        s3_config: RunPod's ``s3Config`` ``{accessId, accessSecret, bucketName, endpointUrl}``
            passed to the worker; credentials are kept as :class:`fluxkit.Secret`.
        low_priority: ``policy.lowPriority`` (the job never triggers a scale-up).
        poll: polling schedule for status checks.
    """

    name = "runpod"
    env_vars = ("RUNPOD_API_KEY",)
    default_base_url = "https://api.runpod.ai/v2"
    capabilities_table = CAPABILITIES
    model_aliases = MODEL_ALIASES
    default_model = WORKER_MODEL

    def __init__(
        self,
        *,
        endpoint_id: str | None = None,
        api_key: str | Secret | None = None,
        base_url: str | None = None,
        model: str | None = None,
        environ: Mapping[str, str] | None = None,
        limits: WorkerLimits | None = None,
        input_builder: InputBuilder | None = None,
        output_parser: OutputParser | None = None,
        progress: Literal["status", "stream"] = "status",
        s3_config: Mapping[str, str | Secret] | None = None,
        low_priority: bool = False,
        poll: PollSchedule | None = None,
    ) -> None:
        super().__init__(api_key=api_key, base_url=base_url, model=model, environ=environ)
        import os

        env = os.environ if environ is None else environ
        endpoint = endpoint_id or env.get("RUNPOD_ENDPOINT_ID", "").strip()
        if not endpoint:
            raise ConfigurationError(
                "the runpod backend needs endpoint_id= (or RUNPOD_ENDPOINT_ID): the id shown "
                "on your serverless endpoint's page"
            )
        if progress not in ("status", "stream"):
            raise ConfigurationError(f"progress={progress!r}: expected 'status' or 'stream'")
        self.endpoint_id = endpoint
        self.limits = limits or WorkerLimits()
        self.input_builder = input_builder or fluxkit_worker_input
        self.output_parser = output_parser or parse_images
        self.progress = progress
        self.s3_config = _wrap_s3(s3_config)
        self.low_priority = low_priority
        self.poll = poll or PollSchedule(initial=0.1, factor=1.5, ceiling=2.0)

    def capabilities(self, model: str) -> Capabilities:
        """The worker's limits (``limits=``), whatever the model: the endpoint decides it."""
        return self.limits.capabilities()

    @property
    def _root(self) -> str:
        return f"{self.base_url}/{self.endpoint_id}"

    def _headers(self) -> dict[str, str | Secret]:
        assert self.api_key is not None
        return {"authorization": self.api_key.prefixed("Bearer ")}

    # -- requests (pure) ---------------------------------------------------------------------

    def run_request(self, call: Call) -> HttpRequest:
        """``POST /run``; the deadline's policy is merged in by the driver at send time."""
        body: dict[str, Any] = {"input": self.input_builder(call)}
        if self.low_priority:
            body["policy"] = {"lowPriority": True}
        if self.s3_config:
            body["s3Config"] = dict(self.s3_config)
        return HttpRequest(
            "POST",
            f"{self._root}/run",
            headers=self._headers(),
            json=body,
            retry="submit",
            raise_for_status=False,
            timeout=30.0,
            deadline_json=policy_for,
        )

    def cancel_request(self, job_id: str) -> HttpRequest:
        return HttpRequest(
            "POST",
            f"{self._root}/cancel/{job_id}",
            headers=self._headers(),
            retry="never",
            raise_for_status=False,
        )

    # -- the flow ----------------------------------------------------------------------------

    def flow(self, call: Call) -> Flow[CallOutput]:
        created = yield from send(self.run_request(call))
        if not created.ok:
            raise error_from_response(self.name, created)
        job = _job_of(created)
        job_id = str(job["id"])
        yield from accept(job_id, self.cancel_request(job_id))
        return (yield from self._follow(call, job_id, job))

    def follow(self, call: Call, request_id: str) -> Flow[CallOutput]:
        """Collect a job submitted earlier (by id) without submitting anything."""
        yield from accept(request_id, self.cancel_request(request_id))
        return (yield from self._follow(call, request_id, {"id": request_id, "status": "IN_QUEUE"}))

    def _follow(self, call: Call, job_id: str, job: dict[str, Any]) -> Flow[CallOutput]:
        watcher = _Watcher(job_id)
        intervals = self.poll.intervals()
        streamed: list[Any] = []
        while True:
            for event in watcher.observe(job):
                yield event
            if job.get("status") in FINAL:
                if self.progress == "stream" and job.get("status") == "COMPLETED":
                    if "output" not in job:
                        polled = yield from send(self._get(f"status/{job_id}"))
                        job = _job_of(polled)
                    if not job.get("output") and streamed:
                        job["output"] = streamed
                return self._outcome(call, job, watcher)
            yield Wait(next(intervals))
            if self.progress == "stream":
                polled = yield from send(self._get(f"stream/{job_id}"))
                body = _job_of(polled, need_id=False)
                chunks = [c.get("output") for c in body.get("stream") or [] if isinstance(c, dict)]
                streamed += chunks
                for chunk in chunks:
                    for event in watcher.progress(chunk):
                        yield event
                job = {"id": job_id, "status": body.get("status"), **_timing(body)}
            else:
                polled = yield from send(self._get(f"status/{job_id}"))
                job = _job_of(polled)

    def _get(self, path: str) -> HttpRequest:
        return HttpRequest("GET", f"{self._root}/{path}", headers=self._headers())

    def _outcome(self, call: Call, job: dict[str, Any], watcher: _Watcher) -> CallOutput:
        job_id, status = str(job.get("id")), job.get("status")
        queued = _seconds(job.get("delayTime"))
        running = _seconds(job.get("executionTime"))
        if status == "FAILED":
            raise JobFailedError(
                _error_text(job.get("error")),
                backend=self.name,
                request_id=job_id,
                logs=watcher.lines,
            )
        if status == "CANCELLED":
            raise JobCancelledError("the job was cancelled", backend=self.name, request_id=job_id)
        if status == "TIMED_OUT":
            raise JobFailedError(
                "the job ran past its executionTimeout at RunPod (policy, from the deadline)",
                backend=self.name,
                request_id=job_id,
            )
        output = job.get("output")
        try:
            images = self.output_parser(output, call)
        except ResponseFormatError as exc:
            exc.request_id = job_id
            raise
        warnings: list[Warning] = []
        if isinstance(output, dict):
            for text in output.get("warnings") or []:
                warnings.append(ProviderNotice(f"runpod worker: {text}"))
        return CallOutput(images, job_id, warnings, queued, running)


class _Watcher:
    """Turns successive job views into events: Queued, Started (+ the delay), Step."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        self.queued = False
        self.started = False
        self.step = 0
        self.total: int | None = None
        self.lines: list[str] = []

    def observe(self, job: dict[str, Any]) -> list[Any]:
        status = job.get("status")
        events: list[Any] = []
        if status == "IN_QUEUE" and not self.queued:
            self.queued = True
            events.append(Queued(None, request_id=self.job_id))
        if status in ("IN_PROGRESS", "COMPLETED") and not self.started:
            self.started = True
            events.append(Started(request_id=self.job_id))
            delay = _seconds(job.get("delayTime"))
            if delay is not None:
                line = (
                    f"a worker took the job after {delay:.1f} s in the queue (cold start included)"
                )
                self.lines.append(line)
                events.append(Log(line))
        if status == "IN_PROGRESS":
            events += self.progress(job.get("output"))
        if status == "COMPLETED" and self.total is not None and self.step < self.total:
            events += self.progress({"step": self.total, "of": self.total})
        return events

    def progress(self, payload: Any) -> list[Any]:
        if not (isinstance(payload, dict) and isinstance(payload.get("step"), int)):
            return []
        total = payload.get("of")
        current = payload["step"]
        events = []
        if isinstance(total, int):
            self.total = total
            for step in range(self.step + 1, current + 1):
                events.append(Step(step, total))
        self.step = max(self.step, current)
        return events


def _job_of(response: HttpResponse, *, need_id: bool = True) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = response.text
    if not isinstance(body, dict) or (need_id and not isinstance(body.get("id"), str)):
        raise ResponseFormatError(
            "expected a RunPod job object",
            backend="runpod",
            body=body,
            status_code=response.status_code,
        )
    return body


def _timing(body: dict[str, Any]) -> dict[str, Any]:
    return {k: body[k] for k in ("delayTime", "executionTime") if k in body}


def _seconds(ms: Any) -> float | None:
    return float(ms) / 1000 if isinstance(ms, int | float) else None


def _error_text(error: Any) -> str:
    """RunPod's error: a handler exception arrives as a JSON string with ``error_message``."""
    if isinstance(error, str):
        try:
            decoded = json.loads(error)
        except ValueError:
            return error or "the job failed"
        if isinstance(decoded, dict) and decoded.get("error_message"):
            return f"{decoded.get('error_type', 'error')}: {decoded['error_message']}"
        return error
    return json.dumps(error) if error else "the job failed"


def _wrap_s3(config: Mapping[str, str | Secret] | None) -> dict[str, str | Secret] | None:
    if not config:
        return None
    wrapped: dict[str, str | Secret] = {}
    for key, value in config.items():
        if key in ("accessId", "accessSecret") and isinstance(value, str):
            value = Secret(value)
        wrapped[key] = value
    return wrapped


backend_class = RunPodBackend
