"""The façade: ``Generator`` (sync) and ``AsyncGenerator`` (async), one behaviour.

Everything that is not I/O lives in ``_planning`` (building and checking the request, fixing
seeds, splitting ``n`` into provider calls, assembling the result). The two classes only decide
how calls run — threads and ``httpx.Client`` for sync (no event loop, so it works inside
Jupyter's), tasks and ``httpx.AsyncClient`` for async.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import anyio
import anyio.from_thread
import anyio.to_thread
import httpx

from fluxkit._capabilities import Capabilities, ValidateMode
from fluxkit._core import RetryPolicy
from fluxkit._drivers import Deadline, FlowContext, FlowOutcome, arun_flow, run_flow
from fluxkit._events import Completed, Event
from fluxkit._exceptions import DeadlineExceeded, InvalidRequestError, JobCancelledError
from fluxkit._local import local_outcome, run_local
from fluxkit._planning import (
    GenerationParams,
    Plan,
    assemble_result,
    download_flow,
    fetch_flow,
    pending_downloads,
    plan_generation,
)
from fluxkit._results import GenerationResult
from fluxkit._types import GenerationRequest
from fluxkit.backends import get_backend_class
from fluxkit.backends._base import Call, CallOutput, CancelToken, HttpBackend, LocalBackend

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["AsyncGenerator", "GenerationParams", "Generator"]


class _NotGiven:
    def __repr__(self) -> str:
        return "NOT_GIVEN"


NOT_GIVEN: Any = _NotGiven()
"""``timeout=NOT_GIVEN`` uses the generator's default; ``timeout=None`` waits forever."""

EventHandler = Callable[[Event], None]


ClientT = TypeVar("ClientT", httpx.Client, httpx.AsyncClient)


class _GeneratorCore(Generic[ClientT]):
    """Shared, I/O-free part of both façades; ``ClientT`` is the httpx client type."""

    _backend: HttpBackend | LocalBackend

    def __init__(
        self,
        backend: str | HttpBackend | LocalBackend = "fake",
        *,
        model: str | None = None,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float | None = 600.0,
        max_retries: int = 4,
        max_concurrency: int = 8,
        validate: ValidateMode = "strict",
        download: bool = True,
        http_client: ClientT | None = None,
        **options: Any,
    ) -> None:
        if isinstance(backend, HttpBackend | LocalBackend):
            self._backend = backend
        else:
            cls = get_backend_class(backend)
            if issubclass(cls, HttpBackend):
                self._backend = cls(api_key=api_key, base_url=base_url, model=model, **options)
            else:
                for name, value in (("api_key", api_key), ("base_url", base_url)):
                    if value is not None:
                        raise InvalidRequestError(
                            name,
                            "<given>" if name == "api_key" else value,
                            f"nothing: {backend!r} runs in this process (options: see its docs)",
                        )
                self._backend = cls(model=model, **options)
        if validate not in ("strict", "coerce"):
            raise InvalidRequestError("validate", validate, "'strict' or 'coerce'")
        if max_concurrency < 1:
            raise InvalidRequestError("max_concurrency", max_concurrency, "an integer >= 1")
        self._timeout = timeout
        self._policy = RetryPolicy(max_retries=max_retries)
        self._max_concurrency = max_concurrency
        self._validate: ValidateMode = validate
        self._download = download
        self._owns_client = http_client is None
        self._client: ClientT = http_client or self._new_client()
        # max_concurrency bounds provider calls in flight across all of a generator's calls:
        # a semaphore for threads (sync), a limiter made in the event loop on first use (async)
        self._slots = threading.BoundedSemaphore(max_concurrency)
        self._call_limiter: anyio.CapacityLimiter | None = None
        self._limiters: dict[str, anyio.CapacityLimiter] = {}  # one per local device (async)

    def _new_client(self) -> ClientT:
        raise NotImplementedError

    # -- introspection -----------------------------------------------------------------------

    @property
    def backend(self) -> str:
        """The backend's registry name."""
        return self._backend.name

    def capabilities(self, model: str | None = None) -> Capabilities:
        """What ``model`` (default: the generator's model) can do on this backend."""
        probe = (
            GenerationRequest(prompt="probe", model=model)
            if model
            else GenerationRequest(prompt="probe")
        )
        return self._backend.capabilities(self._backend.resolve_model(probe))

    # -- planning (pure) ---------------------------------------------------------------------

    def _deadline(self, timeout: float | None) -> Deadline | None:
        return Deadline.after(self._timeout if timeout is NOT_GIVEN else timeout)

    def _context(
        self,
        call: Call,
        deadline: Deadline | None,
        on_event: EventHandler | None,
        cancel_event: threading.Event | None = None,
    ) -> FlowContext:
        return FlowContext(self.backend, self._policy, deadline, on_event, call.index, cancel_event)


def _emitter(on_event: EventHandler | None) -> EventHandler:
    return on_event if on_event is not None else (lambda event: None)


class Generator(_GeneratorCore[httpx.Client]):
    """Generate FLUX images, blocking. Works in scripts, servers and inside Jupyter.

    Example:
        ```python
        import fluxkit

        with fluxkit.Generator("fake") as gen:
            result = gen.generate("a red fox in snow", size="square", seed=7, n=2)
        [image.seed for image in result.images]   # [7, 8]
        ```

    Args:
        backend: a registry name (``"fal"``, ``"together"``, ``"replicate"``, ``"diffusers"``,
            ``"fake"``) or a backend instance.
        model: default model (a fluxkit alias such as ``"flux-dev"`` or a provider id).
        api_key: credential; defaults to the provider's environment variable.
        base_url: the provider's API root (proxies, gateways, emulators).
        timeout: default whole-call deadline in seconds (queue + run + download); None: none.
        max_retries: retries for transient failures (429, 5xx, network).
        max_concurrency: provider jobs in flight at once, across all of this generator's
            calls (``n`` split into calls, concurrent ``generate()``s, threads).
        validate: ``"strict"`` raises on anything the backend cannot do; ``"coerce"`` adjusts
            it and returns a warning on the result.
        download: fetch image URLs before returning (default) or lazily on first use.
        http_client: an ``httpx.Client`` to use (its owner closes it).
        **options: backend-specific options.
    """

    def _new_client(self) -> httpx.Client:
        transport = self._backend.transport() if isinstance(self._backend, HttpBackend) else None
        limits = _pool_limits(self._max_concurrency)
        return httpx.Client(transport=transport, limits=limits, follow_redirects=True)

    def generate(
        self,
        prompt: str | GenerationRequest,
        /,
        *,
        timeout: float | None = NOT_GIVEN,
        on_event: EventHandler | None = None,
        validate: ValidateMode | None = None,
        **params: Unpack[GenerationParams],
    ) -> GenerationResult:
        """Generate images and return them with their seeds, timings and warnings.

        Args:
            prompt: the prompt, or a ready :class:`GenerationRequest`.
            timeout: whole-call deadline in seconds (default: the generator's).
            on_event: called with each progress event (``Queued``, ``Step``, ...).
            validate: override the generator's validation mode for this call.
            **params: request fields: ``size``, ``steps``, ``guidance``, ``seed``, ``n``,
                ``loras``, ``image``, ``strength``, ``reference_image``, ``model``, ``extra``...

        Raises:
            InvalidRequestError: a field is out of range or unsupported (before any network
                call).
            ProviderError: the provider refused or failed (see the error tree).
            DeadlineExceeded: ``timeout`` passed; the job was cancelled at the provider.
        """
        plan = plan_generation(self._backend, prompt, dict(params), validate or self._validate)
        return self._execute(plan, self._deadline(timeout), on_event, None)

    def stream(
        self,
        prompt: str | GenerationRequest,
        /,
        *,
        timeout: float | None = NOT_GIVEN,
        validate: ValidateMode | None = None,
        **params: Unpack[GenerationParams],
    ) -> Iterator[Event]:
        """Generate, yielding progress events; the last one is ``Completed(result)``.

        Invalid requests raise here, before anything is sent. Stopping the iteration early
        cancels the job at the provider.

        Example:
            ```python
            import fluxkit

            gen = fluxkit.Generator("fake")
            for event in gen.stream("a lighthouse at dusk", seed=1):
                if isinstance(event, fluxkit.Completed):
                    image = event.result.images[0]
            ```
        """
        plan = plan_generation(self._backend, prompt, dict(params), validate or self._validate)
        return self._stream(plan, self._deadline(timeout))

    def _stream(self, plan: Plan, deadline: Deadline | None) -> Iterator[Event]:
        events: queue.Queue[Any] = queue.Queue()
        cancel = threading.Event()
        done = object()

        def work() -> None:
            try:
                self._execute(plan, deadline, events.put, cancel)
            except BaseException as exc:
                events.put(exc)
            events.put(done)

        worker = threading.Thread(target=work, name="fluxkit-stream", daemon=True)
        worker.start()
        try:
            while (item := events.get()) is not done:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            cancel.set()
            worker.join()

    def _execute(
        self,
        plan: Plan,
        deadline: Deadline | None,
        on_event: EventHandler | None,
        cancel: threading.Event | None,
    ) -> GenerationResult:
        started = time.monotonic()
        cancel = cancel or threading.Event()
        calls = plan.calls
        if isinstance(self._backend, LocalBackend) or len(calls) == 1:
            outcomes = [self._run_call(call, deadline, on_event, cancel) for call in calls]
        else:
            outcomes = self._run_concurrently(calls, deadline, on_event, cancel)
        result = assemble_result(
            plan, self.backend, outcomes, time.monotonic() - started, self._fetch
        )
        if on_event is not None:
            on_event(Completed(result))
        return result

    def _run_concurrently(
        self,
        calls: list[Call],
        deadline: Deadline | None,
        on_event: EventHandler | None,
        cancel: threading.Event,
    ) -> list[FlowOutcome[CallOutput]]:
        workers = min(self._max_concurrency, len(calls))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fluxkit") as pool:
            futures = [
                pool.submit(self._run_call, call, deadline, on_event, cancel) for call in calls
            ]
            try:
                return [future.result() for future in futures]
            except BaseException:
                # One call failed (or we were interrupted): stop the others at the provider too.
                cancel.set()
                raise

    def _run_call(
        self,
        call: Call,
        deadline: Deadline | None,
        on_event: EventHandler | None,
        cancel: threading.Event,
    ) -> FlowOutcome[CallOutput]:
        backend = self._backend
        if isinstance(backend, LocalBackend):
            token = CancelToken(deadline.at if deadline else None, linked=cancel)
            started = time.monotonic()
            return local_outcome(run_local(backend, call, _emitter(on_event), token), started)
        ctx = self._context(call, deadline, on_event, cancel)
        self._acquire_slot(deadline, cancel)
        try:
            outcome: FlowOutcome[CallOutput] = run_flow(backend.flow(call), self._client, ctx)
        finally:
            self._slots.release()
        if self._download and pending_downloads(outcome.value):
            # After the slot is freed: max_concurrency bounds provider jobs, not CDN downloads.
            run_flow(download_flow(outcome.value), self._client, ctx)
        return outcome

    def _acquire_slot(self, deadline: Deadline | None, cancel: threading.Event) -> None:
        """Wait for a free call slot, giving up on cancellation or at the deadline."""
        while not self._slots.acquire(timeout=0.05):
            if cancel.is_set():
                raise JobCancelledError("cancelled while waiting for a slot", backend=self.backend)
            if deadline is not None and deadline.remaining() <= 0:
                raise DeadlineExceeded(deadline.timeout, backend=self.backend)

    def _fetch(self, url: str) -> bytes:
        ctx = FlowContext(self.backend, self._policy, Deadline.after(self._timeout))
        data: bytes = run_flow(fetch_flow(url), self._client, ctx).value
        return data

    def close(self) -> None:
        """Close the HTTP client (if this generator made it) and release the backend."""
        if self._owns_client:
            self._client.close()
        self._backend.close()

    def __enter__(self) -> Generator:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Generator({self._backend!r})"


class AsyncGenerator(_GeneratorCore[httpx.AsyncClient]):
    """The async twin of :class:`Generator`: same arguments, same results.

    Cancelling the awaiting task cancels the job at the provider.

    Example:
        ```python
        import asyncio
        import fluxkit

        async def main() -> None:
            async with fluxkit.AsyncGenerator("fake") as gen:
                result = await gen.generate("a red fox in snow", seed=7, n=2)
                async for event in gen.stream("a lighthouse", seed=1):
                    print(type(event).__name__)

        asyncio.run(main())
        ```
    """

    def _new_client(self) -> httpx.AsyncClient:
        from fluxkit._transport import default_async_transport

        limits = _pool_limits(self._max_concurrency)
        transport = (
            self._backend.async_transport() if isinstance(self._backend, HttpBackend) else None
        )
        if transport is None:
            transport = default_async_transport(limits)
        return httpx.AsyncClient(transport=transport, limits=limits, follow_redirects=True)

    async def generate(
        self,
        prompt: str | GenerationRequest,
        /,
        *,
        # the deadline is the provider job's, and reaching it cancels the job remotely too
        timeout: float | None = NOT_GIVEN,  # noqa: ASYNC109
        on_event: EventHandler | None = None,
        validate: ValidateMode | None = None,
        **params: Unpack[GenerationParams],
    ) -> GenerationResult:
        """Generate images; see :meth:`Generator.generate`."""
        plan = plan_generation(self._backend, prompt, dict(params), validate or self._validate)
        return await self._execute(plan, self._deadline(timeout), on_event)

    def stream(
        self,
        prompt: str | GenerationRequest,
        /,
        *,
        timeout: float | None = NOT_GIVEN,
        validate: ValidateMode | None = None,
        **params: Unpack[GenerationParams],
    ) -> AsyncIterator[Event]:
        """Generate, yielding progress events asynchronously; see :meth:`Generator.stream`."""
        plan = plan_generation(self._backend, prompt, dict(params), validate or self._validate)
        return _AsyncEventStream(self, plan, self._deadline(timeout))

    async def _execute(
        self, plan: Plan, deadline: Deadline | None, on_event: EventHandler | None
    ) -> GenerationResult:
        started = time.monotonic()
        outcomes: list[FlowOutcome[CallOutput] | None] = [None] * len(plan.calls)
        if self._call_limiter is None:
            self._call_limiter = anyio.CapacityLimiter(self._max_concurrency)
        limiter = self._call_limiter

        async def run(call: Call) -> None:
            async with limiter:
                outcome = await self._run_call(call, deadline, on_event)
            if self._download and pending_downloads(outcome.value):
                # After the slot is freed: max_concurrency bounds provider jobs, not downloads.
                ctx = self._context(call, deadline, on_event)
                await arun_flow(download_flow(outcome.value), self._client, ctx)
            outcomes[call.index] = outcome

        if len(plan.calls) == 1:
            await run(plan.calls[0])
        else:
            try:
                async with anyio.create_task_group() as group:
                    for call in plan.calls:
                        group.start_soon(run, call)
            except BaseExceptionGroup as group_error:
                raise _first_error(group_error) from None
        done = [outcome for outcome in outcomes if outcome is not None]
        result = assemble_result(plan, self.backend, done, time.monotonic() - started, None)
        if on_event is not None:
            on_event(Completed(result))
        return result

    async def _run_call(
        self, call: Call, deadline: Deadline | None, on_event: EventHandler | None
    ) -> FlowOutcome[CallOutput]:
        backend = self._backend
        if isinstance(backend, LocalBackend):
            return await self._run_local(backend, call, deadline, on_event)
        ctx = self._context(call, deadline, on_event)
        outcome: FlowOutcome[CallOutput] = await arun_flow(backend.flow(call), self._client, ctx)
        return outcome

    async def _run_local(
        self,
        backend: LocalBackend,
        call: Call,
        deadline: Deadline | None,
        on_event: EventHandler | None,
    ) -> FlowOutcome[CallOutput]:
        limiter = self._limiters.setdefault(backend.device_key, anyio.CapacityLimiter(1))
        token = CancelToken(deadline.at if deadline else None)
        handler = _emitter(on_event)

        def emit(event: Event) -> None:
            # Events arrive on the worker thread; deliver them on the event loop's thread.
            anyio.from_thread.run_sync(handler, event)

        started = time.monotonic()
        try:
            output = await anyio.to_thread.run_sync(
                run_local, backend, call, emit, token, limiter=limiter, abandon_on_cancel=True
            )
        except anyio.get_cancelled_exc_class():
            token.cancel("cancelled")  # the pipeline stops at its next step
            raise
        return local_outcome(output, started)

    async def aclose(self) -> None:
        """Close the HTTP client (if this generator made it) and release the backend."""
        if self._owns_client:
            await self._client.aclose()
        await anyio.to_thread.run_sync(self._backend.close)

    async def __aenter__(self) -> AsyncGenerator:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"AsyncGenerator({self._backend!r})"


def _pool_limits(max_concurrency: int) -> httpx.Limits:
    # One request in flight per call, plus room for cancels and downloads; httpcore scans every
    # pooled connection per request, so the pool is not made larger than that.
    return httpx.Limits(
        max_connections=max(10, max_concurrency + 4),
        max_keepalive_connections=max(10, max_concurrency),
    )


def _first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            return _first_error(exc)
        if not isinstance(exc, anyio.get_cancelled_exc_class()):
            return exc
    return group.exceptions[0]


class _AsyncEventStream:
    """Async iterator over a generation's events; closing it early cancels the job."""

    def __init__(self, owner: AsyncGenerator, plan: Plan, deadline: Deadline | None) -> None:
        self._owner, self._plan, self._deadline = owner, plan, deadline
        self._queue: asyncio.Queue[Any] | None = None
        self._task: asyncio.Task[GenerationResult] | None = None
        self._finished = False

    def __aiter__(self) -> _AsyncEventStream:
        return self

    async def __anext__(self) -> Event:
        if self._finished:
            raise StopAsyncIteration
        if self._task is None:
            self._queue = asyncio.Queue()
            self._task = asyncio.ensure_future(
                self._owner._execute(self._plan, self._deadline, self._queue.put_nowait)
            )
            self._task.add_done_callback(self._on_done)
        assert self._queue is not None
        item = await self._queue.get()
        if isinstance(item, BaseException):
            self._finished = True
            raise item
        if isinstance(item, Completed):
            self._finished = True
        return item  # type: ignore[no-any-return]

    def _on_done(self, task: asyncio.Task[GenerationResult]) -> None:
        assert self._queue is not None
        if task.cancelled():
            self._queue.put_nowait(JobCancelledError("stream closed", backend=self._owner.backend))
        elif task.exception() is not None:
            self._queue.put_nowait(task.exception())

    async def aclose(self) -> None:
        self._finished = True
        if self._task is not None and not self._task.done():
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
