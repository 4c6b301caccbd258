"""The only code in fluxkit that sends HTTP, sleeps and retries.

:func:`run_flow` (``httpx.Client``, ``time``) and :func:`arun_flow` (``httpx.AsyncClient``,
``anyio``) run a backend's flow step by step. They differ only where I/O differs; every decision
(retry or not, how long to wait, which error) is made by shared pure helpers below.

Rules they enforce:

* the deadline covers every step (queueing, running, downloading) — each request's socket
  timeout and each sleep is cut to what is left;
* a submission (``retry="submit"``) is retried only on answers that prove it was not accepted;
  after the flow yields :class:`Accepted` nothing is ever resubmitted — flows poll;
* on deadline, on ``cancel_event`` (sync) or when the async task is cancelled, the accepted job's
  cancel request is sent (best effort, bounded) so the provider stops billing, then the error is
  raised.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import anyio
import httpx

from fluxkit._core import Accepted, HttpRequest, HttpResponse, RetryPolicy, Wait
from fluxkit._core._errors import error_from_response
from fluxkit._events import Retrying
from fluxkit._exceptions import (
    DeadlineExceeded,
    JobCancelledError,
    ProviderError,
    ProviderUnavailableError,
)

__all__ = ["Deadline", "FlowContext", "FlowOutcome", "arun_flow", "run_flow"]

T = TypeVar("T")

DEFAULT_REQUEST_TIMEOUT = 60.0
_CANCEL_TIMEOUT = 5.0


@dataclass(frozen=True)
class Deadline:
    """A whole-call deadline on the monotonic clock."""

    timeout: float
    at: float

    @classmethod
    def after(cls, timeout: float | None) -> Deadline | None:
        return None if timeout is None else cls(timeout, time.monotonic() + timeout)

    def remaining(self) -> float:
        return self.at - time.monotonic()


@dataclass
class FlowContext:
    """What a driver needs besides the flow: who it runs for, and the limits."""

    backend: str
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    deadline: Deadline | None = None
    on_event: Callable[[Any], None] | None = None
    job: int = 0
    cancel_event: threading.Event | None = None
    """Sync only: set from another thread to cancel (used when a sibling call fails)."""


@dataclass
class FlowOutcome(Generic[T]):
    value: T
    request_id: str | None
    queued_seconds: float | None
    running_seconds: float | None


class _State:
    """Bookkeeping shared by both drivers: acceptance, timings, events."""

    def __init__(self, ctx: FlowContext) -> None:
        self.ctx = ctx
        self.accepted: Accepted | None = None
        self.started_at = time.monotonic()
        self.accepted_at: float | None = None
        self.running_at: float | None = None

    @property
    def request_id(self) -> str | None:
        return self.accepted.request_id if self.accepted else None

    def observe(self, step: Any) -> None:
        """A step that needs no I/O: an acceptance or a progress event."""
        if isinstance(step, Accepted):
            self.accepted = step
            self.accepted_at = time.monotonic()
        else:
            self.emit(step)

    def emit(self, event: Any) -> None:
        from fluxkit._events import Started, Step

        if isinstance(event, Started | Step) and self.running_at is None:
            self.running_at = time.monotonic()
        if self.ctx.on_event is not None:
            if hasattr(event, "job") and event.job != self.ctx.job:
                event = _with_job(event, self.ctx.job)
            self.ctx.on_event(event)

    def outcome(self, value: T) -> FlowOutcome[T]:
        end = time.monotonic()
        begin = self.accepted_at or self.started_at
        if self.running_at is None:
            return FlowOutcome(value, self.request_id, None, end - begin)
        return FlowOutcome(value, self.request_id, self.running_at - begin, end - self.running_at)

    def deadline_error(self, cancelled: bool) -> DeadlineExceeded:
        assert self.ctx.deadline is not None
        return DeadlineExceeded(
            self.ctx.deadline.timeout,
            backend=self.ctx.backend,
            request_id=self.request_id,
            cancelled=cancelled,
        )

    def time_left(self) -> float | None:
        return None if self.ctx.deadline is None else self.ctx.deadline.remaining()

    def socket_timeout(self, request: HttpRequest) -> float:
        wanted = request.timeout or DEFAULT_REQUEST_TIMEOUT
        left = self.time_left()
        return wanted if left is None else max(0.001, min(wanted, left))


def _with_job(event: Any, job: int) -> Any:
    from dataclasses import replace

    return replace(event, job=job)


def _build(
    client: httpx.Client | httpx.AsyncClient, request: HttpRequest, timeout: float
) -> httpx.Request:
    return client.build_request(
        request.method,
        request.url,
        headers=dict(request.headers),
        json=request.json if request.content is None else None,
        content=request.content,
        params=dict(request.params) if request.params else None,
        timeout=timeout,
    )


def _wire(response: httpx.Response, content: bytes) -> HttpResponse:
    headers = {key.lower(): value for key, value in response.headers.items()}
    return HttpResponse(response.status_code, headers, content, str(response.url))


@dataclass
class _Retry:
    delay: float
    reason: str


def _after_response(
    state: _State, request: HttpRequest, response: HttpResponse, attempt: int
) -> _Retry | HttpResponse:
    """Decide what a response means: hand it to the flow, retry it, or raise the mapped error."""
    policy = state.ctx.policy
    if not response.ok and policy.should_retry_status(response.status_code, request.retry, attempt):
        delay = policy.delay(attempt, response.headers, now=time.time())
        left = state.time_left()
        if delay is not None and (left is None or delay < left):
            return _Retry(delay, f"HTTP {response.status_code}")
    if not response.ok and request.raise_for_status:
        raise error_from_response(
            state.ctx.backend, response, request_id=state.request_id, now=time.time()
        )
    return response


def _after_network_error(
    state: _State, request: HttpRequest, exc: httpx.TransportError, attempt: int
) -> _Retry:
    """Retry a transport failure, or raise: deadline first, then 'unavailable'."""
    left = state.time_left()
    if isinstance(exc, httpx.TimeoutException) and left is not None and left <= 0.01:
        raise _DeadlineHit
    sent = not isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
    policy = state.ctx.policy
    if policy.should_retry_network(request.retry, attempt, sent=sent):
        delay = policy.delay(attempt)
        if delay is not None and (left is None or delay < left):
            return _Retry(delay, type(exc).__name__)
    raise ProviderUnavailableError(
        f"{type(exc).__name__} talking to {request.url.split('?')[0]}: {exc}",
        backend=state.ctx.backend,
        request_id=state.request_id,
    ) from exc


class _DeadlineHit(Exception):
    """Internal: the deadline passed; the driver cancels the job and raises DeadlineExceeded."""


class _CancelRequested(Exception):
    """Internal: ``cancel_event`` was set."""


def _flow_result(stop: StopIteration) -> Any:
    return stop.value


# --- sync --------------------------------------------------------------------------------------


def run_flow(flow: Any, client: httpx.Client, ctx: FlowContext) -> FlowOutcome[Any]:
    """Run ``flow`` to completion with a blocking client. Needs no event loop."""
    state = _State(ctx)
    reply: HttpResponse | None = None
    try:
        while True:
            try:
                step = flow.send(reply)
            except StopIteration as stop:
                return state.outcome(_flow_result(stop))
            reply = None
            if isinstance(step, HttpRequest):
                _check_sync(state)
                reply = _send_sync(client, step, state)
            elif isinstance(step, Wait):
                _check_sync(state)
                _sleep_sync(step.seconds, state)
            else:
                state.observe(step)
    except _DeadlineHit:
        cancelled = _cancel_sync(client, state)
        raise state.deadline_error(cancelled) from None
    except _CancelRequested:
        _cancel_sync(client, state)
        raise JobCancelledError(
            "cancelled", backend=ctx.backend, request_id=state.request_id
        ) from None
    except ProviderError as exc:
        if exc.request_id is None:
            exc.request_id = state.request_id
        raise
    finally:
        flow.close()


def _check_deadline(state: _State) -> None:
    left = state.time_left()
    if left is not None and left <= 0:
        raise _DeadlineHit


def _check_sync(state: _State) -> None:
    if state.ctx.cancel_event is not None and state.ctx.cancel_event.is_set():
        raise _CancelRequested
    _check_deadline(state)


def _sleep_sync(seconds: float, state: _State) -> None:
    left = state.time_left()
    if left is not None and seconds >= left:
        _interruptible_sleep(max(0.0, left), state)
        raise _DeadlineHit
    _interruptible_sleep(seconds, state)


def _interruptible_sleep(seconds: float, state: _State) -> None:
    event = state.ctx.cancel_event
    if event is None:
        time.sleep(seconds)
    elif event.wait(seconds):
        raise _CancelRequested


def _send_sync(client: httpx.Client, request: HttpRequest, state: _State) -> HttpResponse:
    attempt = 0
    while True:
        try:
            response = client.send(_build(client, request, state.socket_timeout(request)))
            try:
                wire = _wire(response, response.read())
            finally:
                response.close()
            decision: _Retry | HttpResponse = _after_response(state, request, wire, attempt)
        except httpx.TransportError as exc:
            decision = _after_network_error(state, request, exc, attempt)
        if isinstance(decision, HttpResponse):
            return decision
        state.emit(Retrying(attempt + 1, decision.delay, decision.reason))
        _sleep_sync(decision.delay, state)
        attempt += 1


def _cancel_sync(client: httpx.Client, state: _State) -> bool:
    """Best-effort cancel of the accepted job; True when the provider acknowledged it."""
    if state.accepted is None or state.accepted.cancel is None:
        return False
    try:
        response = client.send(_build(client, state.accepted.cancel, _CANCEL_TIMEOUT))
        response.close()
    except httpx.HTTPError:
        return False
    return response.is_success


# --- async -------------------------------------------------------------------------------------


async def arun_flow(flow: Any, client: httpx.AsyncClient, ctx: FlowContext) -> FlowOutcome[Any]:
    """Run ``flow`` with an async client; cancelling the task cancels the job at the provider."""
    state = _State(ctx)
    reply: HttpResponse | None = None
    try:
        while True:
            try:
                step = flow.send(reply)
            except StopIteration as stop:
                return state.outcome(_flow_result(stop))
            reply = None
            if isinstance(step, HttpRequest):
                _check_deadline(state)
                if step.retry == "submit":
                    # Shielded: if the task is cancelled while a job is being created, wait for
                    # the answer so the job's id is known and it can be cancelled at once.
                    with anyio.CancelScope(shield=True):
                        reply = await _send_async(client, step, state)
                else:
                    reply = await _send_async(client, step, state)
            elif isinstance(step, Wait):
                _check_deadline(state)
                await _sleep_async(step.seconds, state)
            else:
                state.observe(step)
    except _DeadlineHit:
        cancelled = await _cancel_async(client, state)
        raise state.deadline_error(cancelled) from None
    except anyio.get_cancelled_exc_class():
        await _cancel_async(client, state)
        raise
    except ProviderError as exc:
        if exc.request_id is None:
            exc.request_id = state.request_id
        raise
    finally:
        flow.close()


async def _sleep_async(seconds: float, state: _State) -> None:
    left = state.time_left()
    if left is not None and seconds >= left:
        await anyio.sleep(max(0.0, left))
        raise _DeadlineHit
    await anyio.sleep(seconds)


async def _send_async(
    client: httpx.AsyncClient, request: HttpRequest, state: _State
) -> HttpResponse:
    attempt = 0
    while True:
        try:
            response = await client.send(_build(client, request, state.socket_timeout(request)))
            try:
                wire = _wire(response, await response.aread())
            finally:
                await response.aclose()
            decision: _Retry | HttpResponse = _after_response(state, request, wire, attempt)
        except httpx.TransportError as exc:
            decision = _after_network_error(state, request, exc, attempt)
        if isinstance(decision, HttpResponse):
            return decision
        state.emit(Retrying(attempt + 1, decision.delay, decision.reason))
        await _sleep_async(decision.delay, state)
        attempt += 1


async def _cancel_async(client: httpx.AsyncClient, state: _State) -> bool:
    if state.accepted is None or state.accepted.cancel is None:
        return False
    # Shielded: the task is being cancelled, yet the provider must still hear about it.
    with anyio.CancelScope(shield=True), anyio.move_on_after(_CANCEL_TIMEOUT):
        try:
            response = await client.send(_build(client, state.accepted.cancel, _CANCEL_TIMEOUT))
            await response.aclose()
        except httpx.HTTPError:
            return False
        return response.is_success
    return False
