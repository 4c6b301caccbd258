"""The ``fal`` backend: fal.ai's queue API (submit, status stream, result, cancel).

```python
import fluxkit

gen = fluxkit.Generator("fal")                  # key from FAL_KEY (or FAL_KEY_ID + FAL_KEY_SECRET)
result = gen.generate(
    "portrait of tok person, oil painting", size="portrait_4_3", seed=7, n=2,
    loras=[fluxkit.LoRA("hf://me/tok-lora/lora.safetensors", scale=0.9)],
)                                               # LoRAs: sent to fal-ai/flux-lora automatically
result.seeds                                    # (7, 8): one call per image, each with its seed
```

How a call runs (https://fal.ai/docs/documentation/model-apis/inference/queue):

1. input images above the inline limit are uploaded to fal storage once per content hash;
2. ``POST {base_url}/{endpoint}`` -> ``request_id`` and the ``status_url``/``response_url``/
   ``cancel_url`` to use from then on (they drop the endpoint's sub-path);
3. while the request waits behind others, ``GET status_url?logs=1`` on a backing-off schedule
   gives ``Queued(position)`` events; once it is next or running, one
   ``GET status_url/stream?logs=1`` (Server-Sent Events; fal closes it after ``COMPLETED``) wakes
   the flow the moment the job ends, without polling. Logs become ``Log`` events;
4. the result is fetched at once: fal keeps results of 10 KB or more for only 6 minutes; a
   fetch that still fails after retries is `ResultUnavailableError` (with the URL), never
   "job failed";
5. a deadline or a cancelled task sends ``PUT cancel_url``; the submission also carries
   ``X-Fal-Request-Timeout`` (the time left), so a job still queued at the deadline dies at fal
   even if this process is gone.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any

from fluxkit._config import Secret, resolve_secret
from fluxkit._core import Flow, HttpRequest, HttpResponse, PollSchedule, Wait, accept, send
from fluxkit._core._errors import error_from_response
from fluxkit._exceptions import MissingCredentialsError, ResultUnavailableError
from fluxkit._images import InputImage
from fluxkit._types import GenerationRequest
from fluxkit._uploads import UploadCache, image_reference
from fluxkit.backends._base import Call, CallOutput, HttpBackend
from fluxkit.backends._fal._models import CAPABILITIES, DEV, MODEL_ALIASES, endpoint_for
from fluxkit.backends._fal._payload import fal_input, lora_path
from fluxkit.backends._fal._queue import (
    FINAL,
    QueueTicket,
    StatusEvents,
    job_error,
    parse_images,
    parse_sse,
    ticket_from_submit,
)
from fluxkit.backends._fal._storage import FalStorage

__all__ = ["CAPABILITIES", "MODEL_ALIASES", "FalBackend", "backend_class"]

_REST_URL = "https://rest.fal.ai"
_CDN_URL = "https://v3.fal.media"
_QUEUED_POLL = PollSchedule(initial=0.25, factor=1.5, ceiling=2.0)
"""Polling while other requests are ahead: positions change slowly, pickup is not at stake."""
_FALLBACK_POLL = PollSchedule(initial=0.02, factor=1.5, ceiling=1.0)
"""Polling when the status stream is unavailable (a gateway without it)."""
_STREAM_TIMEOUT = 60.0
"""Read timeout of the status stream: fal sends a keep-alive comment every 15 s."""
_PROCESS_UPLOADS = UploadCache()
"""The default upload cache, shared by every FalBackend of the process."""


class FalBackend(HttpBackend):
    """fal.ai's FLUX endpoints through the queue API.

    Args:
        api_key: a fal key; defaults to ``FAL_KEY``, then ``FAL_KEY_ID`` + ``FAL_KEY_SECRET``.
        base_url: the queue root (default ``https://queue.fal.run``), e.g. a gateway or an
            emulator. With a custom root, uploads go to the same root unless ``rest_url`` /
            ``cdn_url`` say otherwise.
        model: default endpoint: an alias (``flux-dev``, ``flux-schnell``, ``flux-pro``,
            ``flux-pro-ultra``) or any fal endpoint id.
        upload_cache: where uploaded input images are remembered (default: one per process).
        stream_status: wait on the SSE status stream (default); False polls instead.
    """

    name = "fal"
    env_vars = ("FAL_KEY",)
    default_base_url = "https://queue.fal.run"
    capabilities_table = CAPABILITIES
    model_aliases = MODEL_ALIASES
    default_model = DEV

    def __init__(
        self,
        *,
        api_key: str | Secret | None = None,
        base_url: str | None = None,
        model: str | None = None,
        environ: Mapping[str, str] | None = None,
        upload_cache: UploadCache | None = None,
        rest_url: str | None = None,
        cdn_url: str | None = None,
        stream_status: bool = True,
    ) -> None:
        super().__init__(api_key=api_key, base_url=base_url, model=model, environ=environ)
        custom_root = self.base_url != self.default_base_url
        self.rest_url = (rest_url or (self.base_url if custom_root else _REST_URL)).rstrip("/")
        self.cdn_url = (cdn_url or (self.base_url if custom_root else _CDN_URL)).rstrip("/")
        self.upload_cache = _PROCESS_UPLOADS if upload_cache is None else upload_cache
        self.stream_status = stream_status

    def resolve_credentials(
        self, api_key: str | Secret | None, environ: Mapping[str, str] | None
    ) -> Secret | None:
        # fal-client's order: FAL_KEY, else FAL_KEY_ID + FAL_KEY_SECRET joined "id:secret"
        # (fal_client/auth.py, fetch_auth_credentials).
        found = resolve_secret(
            api_key, env_vars=self.env_vars, backend=self.name, environ=environ, required=False
        )
        if found is not None:
            return found
        env = os.environ if environ is None else environ
        key_id, secret = env.get("FAL_KEY_ID", "").strip(), env.get("FAL_KEY_SECRET", "").strip()
        if key_id and secret:
            return Secret(f"{key_id}:{secret}")
        raise MissingCredentialsError(
            self.name, env_vars=("FAL_KEY", "FAL_KEY_ID + FAL_KEY_SECRET")
        )

    def resolve_model(self, request: GenerationRequest) -> str:
        """The endpoint: LoRAs switch flux-dev to flux-lora, an init image to image-to-image."""
        return endpoint_for(request.model or self.model or self.default_model, request)

    def _headers(self) -> dict[str, str | Secret]:
        assert self.api_key is not None
        return {"authorization": self.api_key.prefixed("Key ")}

    # -- the flow ------------------------------------------------------------------------

    def flow(self, call: Call) -> Flow[CallOutput]:
        request, headers = call.request, self._headers()
        for lora in request.loras:
            lora_path(lora)  # an untranslatable LoRA fails before anything is sent
        image_url = reference_url = None
        if request.image is not None:
            image_url = yield from self._image_reference(request.image)
        if request.reference_image is not None:
            reference_url = yield from self._image_reference(request.reference_image)
        body, warnings = fal_input(call, image_url=image_url, reference_url=reference_url)
        submitted = (
            yield from send(
                HttpRequest(
                    "POST",
                    f"{self.base_url}/{call.model}",
                    headers=headers,
                    json=body,
                    retry="submit",
                    deadline_headers=start_deadline,
                )
            )
        ).json()
        ticket = ticket_from_submit(submitted, call.model, self.base_url)
        yield from accept(
            ticket.request_id,
            HttpRequest(
                "PUT",
                ticket.cancel_url,
                headers=headers,
                retry="never",
                raise_for_status=False,
            ),
        )
        return (
            yield from self._collect(ticket, headers, {"status": "IN_QUEUE", **submitted}, warnings)
        )

    def follow(self, call: Call, request_id: str) -> Flow[CallOutput]:
        """Collect a request fal accepted earlier (by id): follow it and fetch its result."""
        headers = self._headers()
        ticket = ticket_from_submit({"request_id": request_id}, call.model, self.base_url)
        yield from accept(
            ticket.request_id,
            HttpRequest(
                "PUT", ticket.cancel_url, headers=headers, retry="never", raise_for_status=False
            ),
        )
        return (yield from self._collect(ticket, headers, {"status": "IN_QUEUE"}, []))

    def _collect(
        self,
        ticket: QueueTicket,
        headers: Mapping[str, str | Secret],
        status: dict[str, Any],
        warnings: list[Warning],
    ) -> Flow[CallOutput]:
        tracker = StatusEvents(ticket.request_id)
        status = yield from self._follow(ticket, headers, status, tracker)
        # Fetched at once: fal keeps results of 10 KB or more for only 6 minutes
        # (https://fal.ai/docs/inference-api/queue/result). A failed request's result replays
        # the model's error, so it is read once, never retried.
        failed = bool(status.get("error"))
        result = yield from send(
            HttpRequest(
                "GET",
                ticket.response_url,
                headers=headers,
                raise_for_status=False,
                retry="never" if failed else "idempotent",
            )
        )
        if not failed and _infrastructure_failure(result):
            # The job COMPLETED without an error: the output exists and is paid for. A 5xx
            # (after the driver's retries) is fal's storage or gateway, not the job.
            raise ResultUnavailableError(
                f"the job completed but its result could not be fetched (HTTP "
                f"{result.status_code})",
                backend=self.name,
                request_id=ticket.request_id,
                status_code=result.status_code,
                urls=[ticket.response_url],
            )
        if failed or not result.ok:
            raise job_error(status, result, ticket.request_id, tracker.logs)
        output = result.json()
        metrics = status.get("metrics") or {}
        timings = output.get("timings") if isinstance(output, dict) else None
        running = metrics.get("inference_time") or (timings or {}).get("inference")
        return CallOutput(
            parse_images(output, ticket.request_id),
            request_id=ticket.request_id,
            warnings=warnings,
            running_seconds=float(running) if running else None,
        )

    def _follow(
        self,
        ticket: QueueTicket,
        headers: Mapping[str, str | Secret],
        status: dict[str, Any],
        tracker: StatusEvents,
    ) -> Flow[dict[str, Any]]:
        """Follow the request until COMPLETED: poll while others are ahead, then stream."""
        for event in tracker.events(status):
            yield event
        streaming = self.stream_status
        schedule = _QUEUED_POLL.intervals()
        poll_now = status.get("queue_position") is None
        while status.get("status") != FINAL:
            waiting = status.get("status") == "IN_QUEUE" and status.get("queue_position") != 0
            if streaming and not (waiting or poll_now):
                answer = yield from send(
                    HttpRequest(
                        "GET",
                        f"{ticket.status_url}/stream",
                        params={"logs": "1"},
                        headers={**headers, "accept": "text/event-stream"},
                        timeout=_STREAM_TIMEOUT,
                        raise_for_status=False,
                    )
                )
                if answer.status_code in (401, 403):
                    raise error_from_response(self.name, answer, request_id=ticket.request_id)
                updates = parse_sse(answer.content) if answer.ok else []
                for update in updates:
                    for event in tracker.events(update):
                        yield event
                if not updates:  # no stream here (a gateway without it): poll instead
                    streaming, schedule = False, _FALLBACK_POLL.intervals()
                    continue
                status = updates[-1]
                if status.get("status") != FINAL:  # the stream was cut early: breathe, reopen
                    yield Wait(_FALLBACK_POLL.initial)
                continue
            if not poll_now:
                yield Wait(next(schedule))
            poll_now = False
            status = (
                yield from send(
                    HttpRequest(
                        "GET",
                        ticket.status_url,
                        headers=headers,
                        params={"logs": "1"},
                    )
                )
            ).json()
            for event in tracker.events(status):
                yield event
        return status

    def _image_reference(self, image: InputImage) -> Flow[str]:
        """URL as is, small images inline, larger ones uploaded once per content hash."""
        storage = FalStorage(self.rest_url, self.cdn_url, self._headers())
        provider = "fal" if self.cdn_url == _CDN_URL else f"fal@{self.cdn_url}"
        return image_reference(
            image, provider=provider, cache=self.upload_cache, upload=storage.upload
        )


def start_deadline(seconds_left: float) -> dict[str, str]:
    """``X-Fal-Request-Timeout``: fal drops the request if it has not *started* by then, so a
    job queued past the caller's deadline dies at fal even if the caller is gone. fal wants
    more than 1 s."""
    return {"x-fal-request-timeout": str(max(2, math.ceil(seconds_left)))}


def _infrastructure_failure(result: HttpResponse) -> bool:
    """A result answer that is fal's infrastructure failing, not the model's own error."""
    if result.ok or result.status_code < 500:
        return False
    # A model's own failure replays with its error_type (e.g. 500 + a model error body);
    # gateway and storage failures come without one, or as fal infrastructure error types.
    try:
        body = result.json()
    except ValueError:
        body = None
    error_type = body.get("error_type") if isinstance(body, dict) else None
    return not error_type or result.header("x-fal-error-type") is not None


backend_class = FalBackend
