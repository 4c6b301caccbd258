"""The only code in fluxkit that sends HTTP, sleeps and retries.

`run_flow` (``httpx.Client``, ``time``) and `arun_flow` (``httpx.AsyncClient``,
``anyio``) run a backend's flow step by step. They differ only where I/O differs; every decision
(retry or not, how long to wait, which error) is made by shared pure helpers below.

The money rules they enforce, for every backend:

* **never orphaned** — once the flow yields `Accepted`, every way out that is not the
  job's own end (deadline, ``cancel_event``, a cancelled task — asyncio, anyio or trio —,
  ``KeyboardInterrupt``, a closed stream) sends the job's cancel request before the error
  propagates. A submission already in flight when the cancellation comes is allowed to finish
  (bounded by `SUBMIT_GRACE`) so the job's id is known and it can be cancelled;
* **never submitted twice** — a submission is resent only where the provider provably refused
  it (429, 503, a connection that never opened). A 502/504 (a gateway's) or a connection lost
  after sending raises `JobMayExistError`: the job may be running, and resending would pay
  twice. After acceptance nothing is resubmitted — flows poll;
* **the deadline covers everything** — each read and sleep is cut to what is left, a
  submission gets `SUBMIT_GRACE` beyond it (so its id is known), and headers that carry
  a server-side deadline are built from the time left (`HttpRequest.deadline_headers`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import anyio
import httpx

from fluxkit._config import Secret
from fluxkit._core import Accepted, HttpRequest, HttpResponse, RetryPolicy, Wait
from fluxkit._core._errors import error_from_response
from fluxkit._events import Retrying
from fluxkit._exceptions import (
    DeadlineExceeded,
    JobCancelledError,
    JobMayExistError,
    ProviderError,
    ProviderUnavailableError,
)

__all__ = [
    "SUBMIT_GRACE",
    "Deadline",
    "FlowContext",
    "FlowOutcome",
    "JobTracker",
    "arun_flow",
    "merge_json",
    "run_flow",
]

T = TypeVar("T")

DEFAULT_REQUEST_TIMEOUT = 60.0
SUBMIT_GRACE = 10.0
"""Seconds a submission in flight may outlive a cancellation or the deadline, so the job's id
is learnt and the job cancelled, instead of left running unseen."""
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


class JobTracker:
    """The accepted, unfinished jobs of one generation, so another thread can cancel them.

    The sync façade runs calls in worker threads; when the caller's thread is interrupted
    (Ctrl-C, a closed stream) it sends every tracked job's cancel request itself rather than
    wait for workers blocked in a long read.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._live: dict[int, Accepted] = {}
        self.cancelled: list[str] = []

    def add(self, key: int, accepted: Accepted) -> None:
        with self._lock:
            self._live[key] = accepted

    def discard(self, key: int) -> None:
        with self._lock:
            self._live.pop(key, None)

    def record(self, request_id: str) -> None:
        """Note a job cancelled at the provider (by its own driver)."""
        with self._lock:
            if request_id not in self.cancelled:
                self.cancelled.append(request_id)

    def live(self) -> list[Accepted]:
        with self._lock:
            return list(self._live.values())

    def cancel_all(self, client: httpx.Client) -> list[str]:
        """Send the cancel request of every live job; returns the ids acknowledged."""
        done = []
        for accepted in self.live():
            if accepted.cancel is not None and _send_cancel_sync(client, accepted.cancel):
                done.append(accepted.request_id)
        for request_id in done:
            self.record(request_id)
        return done


@dataclass
class FlowContext:
    """What a driver needs besides the flow: who it runs for, and the limits."""

    backend: str
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    deadline: Deadline | None = None
    on_event: Callable[[Any], None] | None = None
    job: int = 0
    cancel_event: threading.Event | None = None
    """Sync only: set from another thread to cancel (Ctrl-C, a closed stream)."""
    tracker: JobTracker | None = None
    """Sync only: where accepted jobs are registered for cancellation from another thread."""


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
        self.stopping = False
        """Set once a cancellation arrived: a submit in flight may finish, but not retry."""

    @property
    def request_id(self) -> str | None:
        return self.accepted.request_id if self.accepted else None

    def observe(self, step: Any) -> None:
        """A step that needs no I/O: an acceptance or a progress event."""
        if isinstance(step, Accepted):
            from fluxkit._events import Submitted

            # A flow may accept again with a new cancel (ComfyUI: dequeue, then interrupt):
            # the job is the same, so Submitted is announced once per request id.
            first = self.accepted is None or self.accepted.request_id != step.request_id
            self.accepted = step
            self.accepted_at = self.accepted_at if not first else time.monotonic()
            if self.ctx.tracker is not None:
                self.ctx.tracker.add(id(self), step)
            if first:
                self.emit(Submitted(step.request_id))
        else:
            self.emit(step)

    def record_cancel(self) -> None:
        if self.ctx.tracker is not None and self.accepted is not None:
            self.ctx.tracker.record(self.accepted.request_id)

    def finished(self) -> None:
        if self.ctx.tracker is not None:
            self.ctx.tracker.discard(id(self))

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

    def cancelled_error(self, message: str = "cancelled") -> JobCancelledError:
        return JobCancelledError(message, backend=self.ctx.backend, request_id=self.request_id)

    def time_left(self) -> float | None:
        return None if self.ctx.deadline is None else self.ctx.deadline.remaining()

    def read_timeout(self, request: HttpRequest) -> float:
        """Per-read timeout: the request's, cut to the deadline (plus grace for a submit)."""
        wanted = request.timeout or DEFAULT_REQUEST_TIMEOUT
        left = self.time_left()
        if left is None:
            return wanted
        if request.creates_job and request.submit_grace:
            left += SUBMIT_GRACE
        return max(0.001, min(wanted, left))


def _with_job(event: Any, job: int) -> Any:
    from dataclasses import replace

    return replace(event, job=job)


def _reveal(headers: Any) -> dict[str, str]:
    return {
        name: value.reveal() if isinstance(value, Secret) else value
        for name, value in headers.items()
    }


def _build(
    client: httpx.Client | httpx.AsyncClient,
    request: HttpRequest,
    timeout: float,
    left: float | None = None,
) -> httpx.Request:
    headers = _reveal(request.headers)
    if request.deadline_headers is not None and left is not None:
        headers.update(request.deadline_headers(max(0.0, left)))
        headers = {name: value for name, value in headers.items() if value != ""}
    body = request.json
    if request.deadline_json is not None and left is not None and isinstance(body, dict):
        body = merge_json(body, request.deadline_json(max(0.0, left)))
    return client.build_request(
        request.method,
        request.url,
        headers=headers,
        json=_reveal_json(body) if request.content is None else None,
        content=request.content,
        params=dict(request.params) if request.params else None,
        timeout=timeout,
    )


def merge_json(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``extra`` merged in: nested mappings merged recursively, the rest replaced.

    Example:
        ```python
        merge_json({"policy": {"lowPriority": True}}, {"policy": {"ttl": 60000}})
        # {"policy": {"lowPriority": True, "ttl": 60000}}
        ```
    """
    merged = dict(base)
    for key, value in extra.items():
        current = merged.get(key)
        if isinstance(current, Mapping) and isinstance(value, Mapping):
            merged[key] = merge_json(current, value)
        else:
            merged[key] = value
    return merged


def _reveal_json(value: Any) -> Any:
    """The JSON body with every ``Secret`` inside it revealed (a copy; the flow's stays wrapped)."""
    if isinstance(value, Secret):
        return value.reveal()
    if isinstance(value, Mapping):
        return {key: _reveal_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_reveal_json(item) for item in value]
    return value


def _wire(response: httpx.Response, content: bytes) -> HttpResponse:
    headers = {key.lower(): value for key, value in response.headers.items()}
    return HttpResponse(response.status_code, headers, content, str(response.url))


@dataclass
class _Retry:
    delay: float
    reason: str


def _maybe_accepted(
    state: _State, request: HttpRequest, why: str, response: HttpResponse | None = None
) -> JobMayExistError:
    where = request.url.split("?")[0]
    said = body = None
    if response is not None:
        from fluxkit._core._errors import provider_message

        try:
            body = response.json()
        except ValueError:
            body = response.text
        said = provider_message(body)[0]
    return JobMayExistError(
        f"no clear answer to the submission ({why}{': ' + said if said else ''}); the provider "
        "may have accepted it and fluxkit did not resend it, to avoid paying twice — check the "
        "provider's recent jobs before submitting again",
        backend=state.ctx.backend,
        status_code=response.status_code if response is not None else None,
        provider_message=said,
        body=body,
        url=where,
    )


def _after_response(
    state: _State, request: HttpRequest, response: HttpResponse, attempt: int
) -> _Retry | HttpResponse:
    """Decide what a response means: hand it to the flow, retry it, or raise the mapped error."""
    policy = state.ctx.policy
    if (
        not response.ok
        and not state.stopping
        and policy.should_retry_status(response.status_code, request.retry, attempt)
    ):
        delay = policy.delay(attempt, response.headers, now=time.time())
        left = state.time_left()
        if delay is not None and (left is None or delay < left):
            return _Retry(delay, f"HTTP {response.status_code}")
    if policy.submit_outcome_unknown(response.status_code, request.retry):
        raise _maybe_accepted(state, request, f"HTTP {response.status_code}", response)
    if not response.ok and request.raise_for_status:
        raise error_from_response(
            state.ctx.backend, response, request_id=state.request_id, now=time.time()
        )
    return response


def _never_sent(exc: httpx.TransportError) -> bool:
    return isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)


def _after_network_error(
    state: _State, request: HttpRequest, exc: httpx.TransportError, attempt: int
) -> _Retry:
    """Retry a transport failure, or raise: deadline, "maybe accepted", then "unavailable"."""
    left = state.time_left()
    sent = not _never_sent(exc)
    deadline_hit = isinstance(exc, httpx.TimeoutException) and left is not None and left <= 0.01
    if deadline_hit and not request.submit_grace:
        raise _DeadlineHit  # a one-shot call with no cancel: the deadline simply abandons it
    if request.retry == "submit" and sent:
        # The body may have reached the provider: the job may exist. Never resend it.
        raise _maybe_accepted(state, request, f"{type(exc).__name__}: {exc}") from exc
    if deadline_hit:
        raise _DeadlineHit
    policy = state.ctx.policy
    if not state.stopping and policy.should_retry_network(request.retry, attempt, sent=sent):
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


def _attach_request_id(exc: ProviderError, state: _State) -> None:
    if exc.request_id is None:
        exc.request_id = state.request_id


# --- sync --------------------------------------------------------------------------------------


def run_flow(flow: Any, client: httpx.Client, ctx: FlowContext) -> FlowOutcome[Any]:
    """Run ``flow`` to completion with a blocking client. Needs no event loop.

    Raises:
        DeadlineExceeded: the deadline passed (the job was cancelled at the provider).
        JobCancelledError: ``ctx.cancel_event`` was set (the job was cancelled there too).
        JobMayExistError: a submission got no clear answer; it was not resent.
        ProviderError: the provider refused or failed.
    """
    state = _State(ctx)
    reply: HttpResponse | None = None
    try:
        while True:
            try:
                step = flow.send(reply)
            except StopIteration as stop:
                return state.outcome(stop.value)
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
        raise state.cancelled_error() from None
    except ProviderError as exc:
        _attach_request_id(exc, state)
        raise
    except BaseException:
        # KeyboardInterrupt, SystemExit, a failing on_event callback: the job must not go on
        # running unseen.
        _cancel_sync(client, state)
        raise
    finally:
        state.finished()
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


def _read_sync(response: httpx.Response, state: _State, request: HttpRequest) -> bytes:
    """The body, read chunk by chunk so a long stream still ends at the deadline or a cancel.

    Read timeouts are per read (a status stream with keep-alives lives as long as the job); a
    submission's answer is always read to the end, so its job id is known.
    """
    chunks = []
    for chunk in response.iter_bytes():
        chunks.append(chunk)
        if not (request.creates_job and request.submit_grace):
            _check_sync(state)
    return b"".join(chunks)


def _send_sync(client: httpx.Client, request: HttpRequest, state: _State) -> HttpResponse:
    attempt = 0
    while True:
        try:
            built = _build(client, request, state.read_timeout(request), state.time_left())
            response = client.send(built, stream=True)
            try:
                wire = _wire(response, _read_sync(response, state, request))
            finally:
                response.close()
            decision: _Retry | HttpResponse = _after_response(state, request, wire, attempt)
        except httpx.TransportError as exc:
            decision = _after_network_error(state, request, exc, attempt)
        if isinstance(decision, HttpResponse):
            return decision
        state.emit(Retrying(attempt + 1, decision.delay, decision.reason))
        _sleep_sync(decision.delay, state)
        _check_sync(state)
        attempt += 1


def _send_cancel_sync(client: httpx.Client, cancel: HttpRequest) -> bool:
    try:
        response = client.send(_build(client, cancel, _CANCEL_TIMEOUT))
        response.close()
    except httpx.HTTPError:
        return False
    return response.is_success


def _cancel_sync(client: httpx.Client, state: _State) -> bool:
    """Best-effort cancel of the accepted job; True when the provider acknowledged it."""
    if state.accepted is None or state.accepted.cancel is None:
        return False
    acknowledged = _send_cancel_sync(client, state.accepted.cancel)
    if acknowledged:
        state.record_cancel()
    return acknowledged


# --- async -------------------------------------------------------------------------------------


async def arun_flow(flow: Any, client: httpx.AsyncClient, ctx: FlowContext) -> FlowOutcome[Any]:
    """Run ``flow`` with an async client; cancelling the task cancels the job at the provider.

    Works with native asyncio cancellation (``task.cancel()``, ``asyncio.timeout``,
    ``wait_for``, a TaskGroup), anyio cancel scopes and trio alike.
    """
    state = _State(ctx)
    reply: HttpResponse | None = None
    pending: BaseException | None = None  # a cancellation that arrived during a submission
    try:
        while True:
            try:
                step = flow.send(reply)
            except StopIteration as stop:
                if pending is not None:
                    raise pending from None
                return state.outcome(stop.value)
            reply = None
            if isinstance(step, HttpRequest | Wait) and pending is not None:
                # The submission that was in flight has been read, and its Accepted (if any)
                # observed: now the cancellation proceeds, and the job is cancelled below.
                raise pending
            if isinstance(step, HttpRequest):
                _check_deadline(state)
                if step.creates_job and step.submit_grace:
                    reply, pending = await _submit_async(client, step, state)
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
    except ProviderError as exc:
        _attach_request_id(exc, state)
        if pending is not None:
            raise pending from None
        raise
    except BaseException:
        # Cancellation of any kind (asyncio, anyio, trio), KeyboardInterrupt, a failing
        # callback: send the job's cancel request before letting it propagate.
        await _cancel_async(client, state)
        raise
    finally:
        state.finished()
        flow.close()


async def _submit_async(
    client: httpx.AsyncClient, request: HttpRequest, state: _State
) -> tuple[HttpResponse | None, BaseException | None]:
    """Send a submission so that a cancellation cannot lose its answer.

    The send runs shielded from cancellation of every kind; a cancellation that arrives
    meanwhile is returned (to be raised once the job's id is known), and the submission gets
    at most `SUBMIT_GRACE` more seconds to answer.
    """
    result: list[HttpResponse] = []

    async def send() -> None:
        result.append(await _send_async(client, request, state))

    cancelled = await _run_shielded(send(), state)
    return (result[0] if result else None), cancelled


async def _run_shielded(work: Awaitable[None], state: _State) -> BaseException | None:
    """Await ``work`` through cancellations; returns the first cancellation seen, if any.

    * trio (and anyio cancel scopes): a shielded scope holds every cancellation back;
    * native asyncio (``task.cancel()``, ``asyncio.timeout``, ``wait_for``, TaskGroups) pierces
      anyio's shield, so there ``work`` runs in its own task and is awaited again after each
      cancellation, until it ends or the grace runs out.
    """
    from fluxkit._http import _running_library

    if _running_library() != "asyncio":
        with anyio.CancelScope(shield=True):
            await work
        return None

    import asyncio

    task = asyncio.ensure_future(work)
    cancelled: BaseException | None = None
    give_up_at: float | None = None
    with anyio.CancelScope(shield=True):  # anyio's repeated delivery is held back here
        while not task.done():
            try:
                await asyncio.wait({task}, timeout=_remaining(give_up_at))
            except asyncio.CancelledError as exc:
                if cancelled is None:
                    cancelled, state.stopping = exc, True
                    give_up_at = time.monotonic() + SUBMIT_GRACE
                continue
            if give_up_at is not None and time.monotonic() >= give_up_at:
                task.cancel()
                break
    if task.done() and not task.cancelled() and task.exception() is not None:
        error = task.exception()
        assert error is not None
        if cancelled is None or isinstance(error, ProviderError):
            # a refused or uncertain submission is worth reporting even when cancelled
            raise error
    return cancelled


def _remaining(at: float | None) -> float | None:
    return None if at is None else max(0.0, at - time.monotonic())


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
            wire = await _exchange_async(client, request, state)
            decision: _Retry | HttpResponse = _after_response(state, request, wire, attempt)
        except httpx.TransportError as exc:
            decision = _after_network_error(state, request, exc, attempt)
        if isinstance(decision, HttpResponse):
            return decision
        state.emit(Retrying(attempt + 1, decision.delay, decision.reason))
        await _sleep_async(decision.delay, state)
        attempt += 1


async def _exchange_async(
    client: httpx.AsyncClient, request: HttpRequest, state: _State
) -> HttpResponse:
    left = state.time_left()
    built = _build(client, request, state.read_timeout(request), left)
    if left is None or (request.creates_job and request.submit_grace):
        return await _round_trip(client, built)
    # Read timeouts are per read; the deadline also bounds the whole exchange (a stream).
    with anyio.move_on_after(max(0.0, left)) as scope:
        return await _round_trip(client, built)
    if scope.cancelled_caught:
        raise _DeadlineHit
    raise AssertionError("unreachable")  # pragma: no cover


async def _round_trip(client: httpx.AsyncClient, built: httpx.Request) -> HttpResponse:
    response = await client.send(built, stream=True)
    try:
        return _wire(response, await response.aread())
    finally:
        await response.aclose()


async def _cancel_async(client: httpx.AsyncClient, state: _State) -> bool:
    if state.accepted is None or state.accepted.cancel is None:
        return False
    cancel = state.accepted.cancel
    acknowledged: list[bool] = []

    async def send() -> None:
        with anyio.move_on_after(_CANCEL_TIMEOUT):
            try:
                response = await client.send(_build(client, cancel, _CANCEL_TIMEOUT))
                await response.aclose()
            except httpx.HTTPError:
                return
            acknowledged.append(response.is_success)

    # Shielded: the task is being cancelled, yet the provider must still hear about it.
    await _run_shielded(send(), state)
    return bool(acknowledged and acknowledged[0])
