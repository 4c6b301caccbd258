"""fal's queue protocol, the parts that are parsing: tickets, statuses, SSE, results (pure).

Protocol: https://fal.ai/docs/documentation/model-apis/inference/queue and
https://fal.ai/docs/inference-api/queue/status-stream.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from fluxkit._core import HttpResponse
from fluxkit._core._errors import error_from_response, provider_message
from fluxkit._events import Event, Log, Queued, Started, Step
from fluxkit._exceptions import (
    JobCancelledError,
    JobFailedError,
    ProviderError,
    ResponseFormatError,
)
from fluxkit.backends._base import ImageOutput
from fluxkit.backends._steps import step_of

__all__ = [
    "FINAL",
    "QueueTicket",
    "StatusEvents",
    "job_error",
    "new_logs",
    "parse_images",
    "parse_sse",
    "ticket_from_submit",
]

FINAL = "COMPLETED"
_NAMESPACES = ("workflows", "comfy")
# Hosts fal itself answers with; their URLs are moved onto a custom base_url (a gateway).
_FAL_QUEUE_HOSTS = frozenset({"queue.fal.run", "queue.falrun.com"})


@dataclass(frozen=True)
class QueueTicket:
    """Where one accepted request lives: the URLs fal returned on submit."""

    request_id: str
    status_url: str
    response_url: str
    cancel_url: str


def _app_base(endpoint: str) -> str:
    """``owner/app`` of an endpoint id (``workflows/owner/app`` for namespaced ones)."""
    parts = endpoint.strip("/").split("/")
    keep = 3 if parts[0] in _NAMESPACES else 2
    return "/".join(parts[:keep])


def _rebase(url: str | None, base_url: str, fallback: str) -> str:
    if not url:
        return fallback
    if url.startswith(base_url + "/"):
        return url
    parts = urlsplit(url)
    if parts.hostname in _FAL_QUEUE_HOSTS:
        # Keep every later call on the configured root (a proxy or gateway), not fal's host.
        return base_url + parts.path + (f"?{parts.query}" if parts.query else "")
    return url


def ticket_from_submit(body: Any, endpoint: str, base_url: str) -> QueueTicket:
    """The ticket from a submit answer.

    fal returns absolute ``status_url``/``response_url``/``cancel_url``; they drop the endpoint's
    sub-path (``fal-ai/flux/dev`` polls under ``fal-ai/flux/requests/...``), so fluxkit uses
    what fal returns and only rebuilds them, the same way, when an answer lacks them.
    """
    if not isinstance(body, dict) or not body.get("request_id"):
        raise ResponseFormatError("submit answer has no request_id", backend="fal", body=body)
    request_id = str(body["request_id"])
    root = f"{base_url}/{_app_base(endpoint)}/requests/{request_id}"
    return QueueTicket(
        request_id=request_id,
        status_url=_rebase(body.get("status_url"), base_url, f"{root}/status"),
        response_url=_rebase(body.get("response_url"), base_url, root),
        cancel_url=_rebase(body.get("cancel_url"), base_url, f"{root}/cancel"),
    )


class StatusEvents:
    """Turns successive fal statuses into events: position changes, start, new log lines.

    Log lines that report sampler progress (a tqdm bar, ``step 3/28``) become ``Step`` events
    instead of ``Log`` lines, as Replicate's do; they are still kept in ``logs``.
    """

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        self.position: int | None = None
        self.announced = False
        self.started = False
        self.logs: list[str] = []
        self.step = 0
        self._seen: set[tuple[str, str]] = set()

    def events(self, status: dict[str, Any]) -> list[Event]:
        found: list[Event] = []
        state = status.get("status")
        if state == "IN_QUEUE":
            position = status.get("queue_position")
            if not self.announced or position != self.position:
                self.announced, self.position = True, position
                found.append(Queued(position, request_id=self.request_id))
        elif not self.started:
            self.started = True
            found.append(Started(request_id=self.request_id))
        for message in new_logs(status, self._seen):
            self.logs.append(message)
            progress = step_of(message)
            if progress is None:
                found.append(Log(message))
                continue
            current, total = progress
            found.extend(Step(i, total) for i in range(self.step + 1, current + 1))
            self.step = max(self.step, current)
        return found


def parse_sse(content: bytes) -> list[dict[str, Any]]:
    """The JSON ``data:`` payloads of a Server-Sent Events body, in order.

    Comment lines (fal's 15 s keep-alives) and non-JSON payloads are skipped; multi-line data
    is joined as the SSE spec says.
    """
    events: list[dict[str, Any]] = []
    data: list[str] = []
    for raw in content.decode("utf-8", errors="replace").splitlines() + [""]:
        if raw.startswith("data:"):
            data.append(raw[5:].removeprefix(" "))
        elif raw == "" and data:
            try:
                event = json.loads("\n".join(data))
            except ValueError:
                event = None
            if isinstance(event, dict):
                events.append(event)
            data = []
    return events


def new_logs(status: dict[str, Any], seen: set[tuple[str, str]]) -> list[str]:
    """Log messages of ``status`` not reported yet (fal repeats the whole list each time)."""
    fresh: list[str] = []
    logs: Iterable[Any] = status.get("logs") or ()
    for entry in logs:
        if isinstance(entry, dict):
            message = str(entry.get("message", ""))
            key = (str(entry.get("timestamp", "")), message)
        else:
            message = str(entry)
            key = ("", message)
        if key not in seen:
            seen.add(key)
            fresh.append(message)
    return fresh


def job_error(
    status: dict[str, Any], result: HttpResponse | None, request_id: str, logs: list[str]
) -> ProviderError:
    """The error for a request that COMPLETED with an ``error`` or whose result is an error.

    A model's validation error comes back from the result endpoint as the model's own 422
    (``detail``: a list naming the field) and maps to ``ProviderRejectedError``; cancellation
    maps to ``JobCancelledError``; anything else to ``JobFailedError``.
    """
    error_type = str(status.get("error_type") or "")
    message = status.get("error")
    if result is not None and not result.ok:
        if result.status_code in (400, 401, 403, 422, 429) and "cancel" not in error_type:
            return error_from_response("fal", result, request_id=request_id)
        body = _decoded(result)
        message = message or provider_message(body)[0]
        error_type = error_type or str(
            (body.get("error_type") if isinstance(body, dict) else None)
            or result.header("x-fal-error-type")
            or ""
        )
    text = str(message or "the request failed")
    code = result.status_code if result is not None and not result.ok else None
    if "cancel" in error_type or "cancelled" in text.lower():
        return JobCancelledError(
            f"cancelled at the provider: {text}",
            backend="fal",
            request_id=request_id,
            status_code=code,
            provider_message=text,
        )
    suffix = f" ({error_type})" if error_type else ""
    return JobFailedError(
        f"job failed: {text}{suffix}",
        backend="fal",
        request_id=request_id,
        logs=logs,
        status_code=code,
        provider_message=text,
        body=status,
    )


def _decoded(response: HttpResponse) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text


def parse_images(result: Any, request_id: str) -> list[ImageOutput]:
    """The images of a FLUX result: ``images[{url, width, height, content_type}]``, one
    ``seed`` for the call and ``has_nsfw_concepts[i]`` per image (fal FLUX output types)."""
    try:
        entries = result["images"]
        flags = result.get("has_nsfw_concepts") or []
        seed = result.get("seed")
        images = []
        for index, entry in enumerate(entries):
            content_type = str(entry.get("content_type") or "image/jpeg")
            images.append(
                ImageOutput(
                    seed=int(seed) if seed is not None else None,
                    width=int(entry.get("width") or 0),
                    height=int(entry.get("height") or 0),
                    format=content_type.split("/")[-1].replace("jpg", "jpeg"),
                    url=str(entry["url"]),
                    nsfw=bool(flags[index]) if index < len(flags) else False,
                )
            )
        return images
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ResponseFormatError(
            f"unreadable fal result: {exc!r}", backend="fal", request_id=request_id, body=result
        ) from exc
