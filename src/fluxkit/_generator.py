"""The façade: ``Generator`` (sync) and ``AsyncGenerator`` (async), one behaviour.

Everything that is not I/O lives in ``_planning`` (building and checking the request, fixing
seeds, splitting ``n`` into provider calls, assembling the result). The two classes only decide
how calls run — threads and ``httpx.Client`` for sync (no event loop, so it works inside
Jupyter's), tasks and ``httpx.AsyncClient`` for async.
"""

from __future__ import annotations

import asyncio
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import anyio
import anyio.from_thread
import anyio.to_thread
import httpx

from fluxkit._capabilities import Capabilities, ValidateMode
from fluxkit._core import RetryPolicy
from fluxkit._drivers import (
    SUBMIT_GRACE,
    Deadline,
    FlowContext,
    FlowOutcome,
    JobTracker,
    arun_flow,
    run_flow,
)
from fluxkit._events import Completed, Event
from fluxkit._exceptions import (
    BudgetExceeded,
    DeadlineExceeded,
    InvalidRequestError,
    JobCancelledError,
    ProviderError,
)
from fluxkit._http import default_async_transport, pool_limits
from fluxkit._local import local_outcome, run_local
from fluxkit._planning import (
    GenerationParams,
    Plan,
    assemble_result,
    download_flow,
    fetch_flow,
    pending_downloads,
    plan_generation,
    unfetched_images,
)
from fluxkit._progress import GenerationProgress, attach
from fluxkit._results import CallFailure, GenerationResult
from fluxkit._types import GenerationRequest
from fluxkit.backends import get_backend_class
from fluxkit.backends._base import Call, CallOutput, CancelToken, HttpBackend, LocalBackend

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from fluxkit.batch._pricing import CostEstimate, PriceTable

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
        transport: httpx.BaseTransport | httpx.AsyncBaseTransport | None = None,
        http_client: ClientT | None = None,
        prices: PriceTable | Mapping[str, Any] | str | os.PathLike[str] | None = None,
        max_cost: float | None = None,
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
        if isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int):
            raise InvalidRequestError("max_concurrency", max_concurrency, "an integer >= 1")
        if max_concurrency < 1:
            raise InvalidRequestError("max_concurrency", max_concurrency, "an integer >= 1")
        if timeout is not None and not (isinstance(timeout, int | float) and timeout > 0):
            raise InvalidRequestError("timeout", timeout, "seconds > 0, or None for no deadline")
        if transport is not None and http_client is not None:
            raise InvalidRequestError(
                "transport", transport, "either transport= or http_client=, not both"
            )
        self._timeout = timeout
        self._policy = RetryPolicy(max_retries=max_retries)
        self._max_concurrency = max_concurrency
        self._validate: ValidateMode = validate
        self._download = download
        self._transport = transport
        self._owns_client = http_client is None
        self._client: ClientT | None = http_client
        # max_concurrency bounds provider calls in flight across all of a generator's calls:
        # a semaphore for threads (sync), a limiter made in the event loop on first use (async)
        self._prices_given = prices
        self._price_table: PriceTable | None = None
        self._session_budget = _checked_budget("max_cost", max_cost)
        self._committed = 0.0  # USD of work started under the session budget
        self._budget_lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(max_concurrency)
        self._call_limiter: anyio.CapacityLimiter | None = None
        self._limiters: dict[str, anyio.CapacityLimiter] = {}  # one per local device (async)

    def _chosen_transport(self) -> Any:
        """The user's transport, else the backend's own in-process one (the fake provider)."""
        if self._transport is not None:
            return self._transport
        if isinstance(self._backend, HttpBackend):
            return self._backend.default_transport()
        return None

    # -- money -------------------------------------------------------------------------------

    @property
    def prices(self) -> PriceTable:
        """The price table cost estimates use (fluxkit's, with the ``prices=`` overrides)."""
        if self._price_table is None:
            from fluxkit.batch._pricing import PriceTable

            given = self._prices_given
            if isinstance(given, PriceTable):
                table = given
            elif isinstance(given, str | os.PathLike):
                table = PriceTable.load(given)
            else:
                table = PriceTable.default().with_overrides(given or {})
            self._price_table = table
        return self._price_table

    @property
    def spent(self) -> float:
        """USD committed under this generator's ``max_cost`` session budget (estimates of work
        started, replaced by each result's cost once it is known)."""
        return self._committed

    def estimate_cost(
        self,
        prompt: str | GenerationRequest,
        /,
        *,
        validate: ValidateMode | None = None,
        **params: Unpack[GenerationParams],
    ) -> CostEstimate:
        """What ``generate(prompt, **params)`` would cost, without sending anything.

        Example:
            ```python
            import fluxkit

            gen = fluxkit.Generator("fal", api_key="...")
            gen.estimate_cost("a fox", size=(1024, 1024), n=4).usd   # 0.1 (4 MP x $0.025)
            ```
        """
        plan = plan_generation(self._backend, prompt, dict(params), validate or self._validate)
        return self._estimate(plan)

    def _estimate(self, plan: Plan) -> CostEstimate:
        request = plan.request
        return self.prices.estimate(
            self.backend,
            plan.model,
            width=request.width,
            height=request.height,
            n=request.n,
            steps=request.steps,
        )

    def _plan(
        self,
        prompt: str | GenerationRequest,
        params: Mapping[str, Any],
        validate: ValidateMode | None,
        idempotency_key: str | None,
        max_cost: float | None,
    ) -> Plan:
        """Plan the call and check it against the budgets — all before any I/O."""
        plan = plan_generation(
            self._backend, prompt, dict(params), validate or self._validate, idempotency_key
        )
        call_budget = _checked_budget("max_cost", max_cost)
        if call_budget is None and self._session_budget is None:
            return plan
        estimate = self._estimate(plan)
        if call_budget is not None and (estimate.usd is None or estimate.usd > call_budget):
            raise BudgetExceeded(estimate.usd, limit=call_budget, detail=estimate.detail)
        if self._session_budget is not None:
            with self._budget_lock:
                left = self._session_budget - self._committed
                if estimate.usd is None or estimate.usd > left + 1e-12:
                    raise BudgetExceeded(
                        estimate.usd,
                        limit=self._session_budget,
                        spent=self._committed,
                        detail=estimate.detail,
                    )
                self._committed += estimate.usd
            plan.reserved = estimate.usd
        return plan

    def _priced(self, plan: Plan, result: GenerationResult) -> GenerationResult:
        """The result with its cost; the session budget keeps the actual, not the estimate."""
        sizes = [
            (image.width or plan.request.width, image.height or plan.request.height)
            for image in result.images
        ]
        cost = self.prices.actual(
            self.backend,
            plan.model,
            sizes=sizes,
            steps=plan.request.steps,
            seconds=result.timings.running,  # used by per-GPU-second prices only
        )
        if plan.reserved is not None:
            with self._budget_lock:
                self._committed += (
                    cost.usd if cost.usd is not None else plan.reserved
                ) - plan.reserved
            plan.reserved = None
        return replace(result, cost=cost)

    def _release(self, plan: Plan) -> None:
        """Nothing was spent (the call failed before any image): free its reservation."""
        if plan.reserved is not None:
            with self._budget_lock:
                self._committed -= plan.reserved
            plan.reserved = None

    def _collect_plan(
        self,
        request_id: str,
        prompt: str | GenerationRequest,
        params: Mapping[str, Any],
        validate: ValidateMode | None,
    ) -> Plan:
        if not isinstance(request_id, str) or not request_id:
            raise InvalidRequestError("request_id", request_id, "the provider's job id")
        plan = plan_generation(self._backend, prompt, dict(params), validate or self._validate)
        if len(plan.calls) != 1 or not isinstance(self._backend, HttpBackend):
            raise InvalidRequestError(
                "n", plan.request.n, "a request that ran as one provider call on a hosted backend"
            )
        plan.calls = [replace(plan.calls[0], follow_request_id=request_id)]
        return plan

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
        chosen = self._timeout if timeout is NOT_GIVEN else timeout
        if chosen is not None and not (
            isinstance(chosen, int | float) and not isinstance(chosen, bool) and chosen > 0
        ):
            raise InvalidRequestError("timeout", chosen, "seconds > 0, or None for no deadline")
        return Deadline.after(chosen)

    def _context(
        self,
        call: Call,
        deadline: Deadline | None,
        on_event: EventHandler | None,
        cancel_event: threading.Event | None = None,
        tracker: JobTracker | None = None,
    ) -> FlowContext:
        return FlowContext(
            self.backend, self._policy, deadline, on_event, call.index, cancel_event, tracker
        )


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
        transport: an httpx transport every request goes through: a proxy, a mock, or a
            fluxkit emulator (``Generator("fal", transport=FalEmulator().transport())``).
        http_client: an ``httpx.Client`` to use instead of the generator's own (its owner
            closes it).
        **options: backend-specific options.
    """

    @property
    def _http(self) -> httpx.Client:
        if self._client is None:
            limits = pool_limits(self._max_concurrency)
            self._client = httpx.Client(
                transport=self._chosen_transport(), limits=limits, follow_redirects=True
            )
        return self._client

    def generate(
        self,
        prompt: str | GenerationRequest,
        /,
        *,
        timeout: float | None = NOT_GIVEN,
        on_event: EventHandler | None = None,
        validate: ValidateMode | None = None,
        progress: bool = False,
        max_cost: float | None = None,
        idempotency_key: str | None = None,
        **params: Unpack[GenerationParams],
    ) -> GenerationResult:
        """Generate images and return them with their seeds, timings and warnings.

        Args:
            prompt: the prompt, or a ready `GenerationRequest`.
            timeout: whole-call deadline in seconds (default: the generator's).
            on_event: called with each progress event (``Queued``, ``Step``, ...).
            validate: override the generator's validation mode for this call.
            progress: draw tqdm progress bars (queue position, denoising steps) on stderr, or
                as a widget in Jupyter.
            max_cost: refuse (`BudgetExceeded`, before anything is sent) if the
                estimated cost of this call passes this many US dollars.
            idempotency_key: a key the provider deduplicates submissions on, where it has
                one (``fake``); resending after a crash then cannot create a second job.
            **params: request fields: ``size``, ``steps``, ``guidance``, ``seed``, ``n``,
                ``loras``, ``image``, ``strength``, ``reference_image``, ``model``, ``extra``...

        Raises:
            InvalidRequestError: a field is out of range or unsupported (before any network
                call).
            ProviderError: the provider refused or failed (see the error tree).
            DeadlineExceeded: ``timeout`` passed; the job was cancelled at the provider.
            BudgetExceeded: ``max_cost`` (or the generator's session budget) would be passed.
        """
        plan = self._plan(prompt, params, validate, idempotency_key, max_cost)
        handler, bars = attach(progress, on_event)
        try:
            return self._execute(plan, self._deadline(timeout), handler, None)
        finally:
            if bars is not None:
                bars.close()

    def stream(
        self,
        prompt: str | GenerationRequest,
        /,
        *,
        timeout: float | None = NOT_GIVEN,
        validate: ValidateMode | None = None,
        progress: bool = False,
        max_cost: float | None = None,
        idempotency_key: str | None = None,
        **params: Unpack[GenerationParams],
    ) -> Iterator[Event]:
        """Generate, yielding progress events; the last one is ``Completed(result)``.

        Invalid requests raise here, before anything is sent. Stopping the iteration early
        cancels the job at the provider. ``progress=True`` also draws tqdm bars.

        Example:
            ```python
            import fluxkit

            gen = fluxkit.Generator("fake")
            for event in gen.stream("a lighthouse at dusk", seed=1):
                if isinstance(event, fluxkit.Completed):
                    image = event.result.images[0]
            ```
        """
        plan = self._plan(prompt, params, validate, idempotency_key, max_cost)
        events = self._stream(plan, self._deadline(timeout))
        return _drawn(events) if progress else events

    def collect(
        self,
        request_id: str,
        prompt: str | GenerationRequest,
        /,
        *,
        timeout: float | None = NOT_GIVEN,
        on_event: EventHandler | None = None,
        validate: ValidateMode | None = None,
        **params: Unpack[GenerationParams],
    ) -> GenerationResult:
        """Collect a job the provider accepted earlier, by its id — nothing is submitted.

        For resuming after a crash: pass the request id a ``Submitted`` event (or an error's
        ``request_id``) carried, and the same request. The job is followed and its images
        fetched as ``generate()`` would have.

        Example:
            ```python
            import fluxkit

            gen = fluxkit.Generator("fake")
            first = gen.generate("a fox", seed=3)
            again = gen.collect(first.request_ids[0], "a fox", seed=3)  # same job, no new one
            ```
        """
        plan = self._collect_plan(request_id, prompt, params, validate)
        return self._execute(plan, self._deadline(timeout), on_event, None)

    def _stream(self, plan: Plan, deadline: Deadline | None) -> Iterator[Event]:
        events: queue.Queue[Any] = queue.Queue()
        cancel = threading.Event()
        tracker = JobTracker()
        done = object()
        stopped = threading.Event()

        def work() -> None:
            try:
                self._run_plan(plan, deadline, events.put, cancel, tracker)
            except BaseException as exc:
                events.put(exc)
            finally:
                stopped.set()
            events.put(done)

        worker = threading.Thread(target=work, name="fluxkit-stream", daemon=True)
        worker.start()
        finished = False
        try:
            while (item := events.get()) is not done:
                if isinstance(item, BaseException):
                    finished = True
                    raise item
                if isinstance(item, Completed):
                    finished = True
                yield item
            finished = True
        finally:
            if not finished:
                # Left early (break, an exception in the loop body, Ctrl-C, garbage
                # collection): stop every accepted job at the provider now — the worker may be
                # blocked in a long status read and would notice only later.
                cancel.set()
                tracker.cancel_all(self._http)
                stopped.wait(SUBMIT_GRACE + 5.0)

    def _execute(
        self,
        plan: Plan,
        deadline: Deadline | None,
        on_event: EventHandler | None,
        cancel: threading.Event | None,
    ) -> GenerationResult:
        """Run the plan in worker threads, so the caller's thread stays free to be interrupted.

        Ctrl-C (or any exception) in the caller's thread cancels every accepted job at the
        provider, lets a submission in flight finish so its job is cancelled too, and re-raises.
        """
        cancel = cancel or threading.Event()
        tracker = JobTracker()
        outcome: list[GenerationResult] = []
        failure: list[BaseException] = []
        finished = threading.Event()

        def work() -> None:
            try:
                outcome.append(self._run_plan(plan, deadline, on_event, cancel, tracker))
            except BaseException as exc:
                failure.append(exc)
            finally:
                finished.set()

        # Waiting on an Event, not Thread.join: a join interrupted by Ctrl-C can leave the
        # thread looking finished (CPython), and the grace below must really wait.
        worker = threading.Thread(target=work, name="fluxkit-generate", daemon=True)
        try:
            worker.start()  # inside the try: Ctrl-C may land while start() waits for the thread
            while not finished.wait(0.25):  # short waits: Ctrl-C reaches this thread between
                pass
        except BaseException as interruption:
            cancel.set()
            ids = tracker.cancel_all(self._http)
            finished.wait(SUBMIT_GRACE + 5.0)  # a submission in flight finishes, then cancels
            ids += [i for i in tracker.cancelled if i not in ids]
            if ids:
                interruption.add_note(f"cancelled at {self.backend}: {', '.join(ids)}")
            raise
        if failure:
            raise failure[0]
        return outcome[0]

    def _run_plan(
        self,
        plan: Plan,
        deadline: Deadline | None,
        on_event: EventHandler | None,
        cancel: threading.Event,
        tracker: JobTracker,
    ) -> GenerationResult:
        started = time.monotonic()
        calls = plan.calls
        results: list[FlowOutcome[CallOutput] | BaseException]
        if isinstance(self._backend, LocalBackend) or len(calls) == 1:
            results = [
                _capture(self._run_call, call, deadline, on_event, cancel, tracker)
                for call in calls
            ]
        else:
            workers = min(self._max_concurrency, len(calls))
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fluxkit") as pool:
                futures = [
                    pool.submit(_capture, self._run_call, call, deadline, on_event, cancel, tracker)
                    for call in calls
                ]
                results = [future.result() for future in futures]
        try:
            outcomes, failures = _split(plan, results)
        except BaseException:
            self._release(plan)
            raise
        result = self._priced(
            plan,
            assemble_result(
                plan, self.backend, outcomes, failures, time.monotonic() - started, self._fetch
            ),
        )
        if on_event is not None:
            on_event(Completed(result))
        return result

    def _run_call(
        self,
        call: Call,
        deadline: Deadline | None,
        on_event: EventHandler | None,
        cancel: threading.Event,
        tracker: JobTracker,
    ) -> FlowOutcome[CallOutput]:
        backend = self._backend
        if isinstance(backend, LocalBackend):
            token = CancelToken(deadline.at if deadline else None, linked=cancel)
            started = time.monotonic()
            return local_outcome(run_local(backend, call, _emitter(on_event), token), started)
        ctx = self._context(call, deadline, on_event, cancel, tracker)
        self._acquire_slot(deadline, cancel)
        try:
            outcome: FlowOutcome[CallOutput] = run_flow(_flow_of(backend, call), self._http, ctx)
        finally:
            self._slots.release()
        if self._download and pending_downloads(outcome.value):
            # After the slot is freed: max_concurrency bounds provider jobs, not CDN downloads.
            try:
                run_flow(download_flow(outcome.value), self._http, ctx)
            except (ProviderError, DeadlineExceeded) as exc:
                raise unfetched_images(self.backend, outcome, exc) from exc
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
        if self._client is not None and not self._client.is_closed:
            data: bytes = run_flow(fetch_flow(url), self._client, ctx).value
            return data
        # The generator was closed before a lazy image was used: a short-lived client.
        with httpx.Client(transport=self._chosen_transport(), follow_redirects=True) as client:
            data = run_flow(fetch_flow(url), client, ctx).value
        return data

    def close(self) -> None:
        """Close the HTTP client (if this generator made it) and release the backend."""
        if self._owns_client and self._client is not None:
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
    """The async twin of `Generator`: same arguments, same results.

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

    @property
    def _http(self) -> httpx.AsyncClient:
        """The client, made on first use inside the running loop (aiohttp binds to it)."""
        if self._client is None:
            limits = pool_limits(self._max_concurrency)
            transport = self._chosen_transport() or default_async_transport(limits)
            self._client = httpx.AsyncClient(
                transport=transport, limits=limits, follow_redirects=True
            )
        return self._client

    async def generate(
        self,
        prompt: str | GenerationRequest,
        /,
        *,
        # the deadline is the provider job's, and reaching it cancels the job remotely too
        timeout: float | None = NOT_GIVEN,  # noqa: ASYNC109
        on_event: EventHandler | None = None,
        validate: ValidateMode | None = None,
        progress: bool = False,
        max_cost: float | None = None,
        idempotency_key: str | None = None,
        **params: Unpack[GenerationParams],
    ) -> GenerationResult:
        """Generate images; see `Generator.generate`."""
        plan = self._plan(prompt, params, validate, idempotency_key, max_cost)
        handler, bars = attach(progress, on_event)
        try:
            return await self._execute(plan, self._deadline(timeout), handler)
        finally:
            if bars is not None:
                bars.close()

    def stream(
        self,
        prompt: str | GenerationRequest,
        /,
        *,
        timeout: float | None = NOT_GIVEN,
        validate: ValidateMode | None = None,
        progress: bool = False,
        max_cost: float | None = None,
        idempotency_key: str | None = None,
        **params: Unpack[GenerationParams],
    ) -> _AsyncEventStream:
        """Generate, yielding progress events asynchronously; see `Generator.stream`.

        Leaving early cancels the job at the provider. ``async with agen.stream(...) as
        events:`` closes the stream deterministically; a plain ``break`` closes it when the
        iterator is garbage collected.
        """
        plan = self._plan(prompt, params, validate, idempotency_key, max_cost)
        bars = GenerationProgress() if progress else None
        return _AsyncEventStream(self, plan, self._deadline(timeout), bars)

    async def collect(
        self,
        request_id: str,
        prompt: str | GenerationRequest,
        /,
        *,
        timeout: float | None = NOT_GIVEN,  # noqa: ASYNC109
        on_event: EventHandler | None = None,
        validate: ValidateMode | None = None,
        **params: Unpack[GenerationParams],
    ) -> GenerationResult:
        """Collect a job accepted earlier, by id; see `Generator.collect`."""
        plan = self._collect_plan(request_id, prompt, params, validate)
        return await self._execute(plan, self._deadline(timeout), on_event)

    async def _execute(
        self, plan: Plan, deadline: Deadline | None, on_event: EventHandler | None
    ) -> GenerationResult:
        started = time.monotonic()
        results: list[FlowOutcome[CallOutput] | BaseException] = [
            JobCancelledError("not run", backend=self.backend)
        ] * len(plan.calls)
        if self._call_limiter is None:
            self._call_limiter = anyio.CapacityLimiter(self._max_concurrency)
        limiter = self._call_limiter

        async def run(call: Call) -> None:
            try:
                results[call.index] = await self._run_call(call, deadline, on_event, limiter)
            except Exception as exc:  # kept per call: one failure must not drop paid images
                results[call.index] = exc

        if len(plan.calls) == 1:
            await run(plan.calls[0])
        else:
            async with anyio.create_task_group() as group:
                for call in plan.calls:
                    group.start_soon(run, call)
        try:
            outcomes, failures = _split(plan, results)
        except BaseException:
            self._release(plan)
            raise
        result = self._priced(
            plan,
            assemble_result(
                plan, self.backend, outcomes, failures, time.monotonic() - started, self._fetch
            ),
        )
        if on_event is not None:
            on_event(Completed(result))
        return result

    async def _run_call(
        self,
        call: Call,
        deadline: Deadline | None,
        on_event: EventHandler | None,
        limiter: anyio.CapacityLimiter,
    ) -> FlowOutcome[CallOutput]:
        backend = self._backend
        if isinstance(backend, LocalBackend):
            return await self._run_local(backend, call, deadline, on_event)
        ctx = self._context(call, deadline, on_event)
        async with limiter:
            outcome: FlowOutcome[CallOutput] = await arun_flow(
                _flow_of(backend, call), self._http, ctx
            )
        if self._download and pending_downloads(outcome.value):
            # After the slot is freed: max_concurrency bounds provider jobs, not downloads.
            try:
                await arun_flow(download_flow(outcome.value), self._http, ctx)
            except (ProviderError, DeadlineExceeded) as exc:
                raise unfetched_images(self.backend, outcome, exc) from exc
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

    def _fetch(self, url: str) -> bytes:
        """Lazy download (``download=False``) of an image URL, on first ``image.data``.

        ``image.data`` is a plain property, so it fetches with a short-lived blocking client:
        through the user's transport when it serves sync clients too (emulators do), else
        httpx's own.
        """
        transport = self._chosen_transport()
        sync_transport = transport if isinstance(transport, httpx.BaseTransport) else None
        with httpx.Client(transport=sync_transport, follow_redirects=True) as client:
            ctx = FlowContext(self.backend, self._policy, Deadline.after(self._timeout))
            data: bytes = run_flow(fetch_flow(url), client, ctx).value
        return data

    async def aclose(self) -> None:
        """Close the HTTP client (if this generator made it) and release the backend."""
        if self._owns_client and self._client is not None:
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


def _drawn(events: Iterator[Event]) -> Iterator[Event]:
    """``events`` unchanged, drawn as progress bars on the way (closed however it ends)."""
    bars = GenerationProgress()
    try:
        for event in events:
            bars(event)
            yield event
    finally:
        bars.close()
        close = getattr(events, "close", None)
        if close is not None:
            close()  # leaving early cancels the jobs, as it does without bars


def _flow_of(backend: HttpBackend, call: Call) -> Any:
    """The call's flow: a submission, or the collection of a job accepted earlier."""
    if call.follow_request_id is not None:
        return backend.follow(call, call.follow_request_id)
    return backend.flow(call)


def _checked_budget(name: str, value: float | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise InvalidRequestError(name, value, "US dollars >= 0, or None for no budget")
    return float(value)


def _capture(
    function: Callable[..., FlowOutcome[CallOutput]], *args: Any
) -> FlowOutcome[CallOutput] | BaseException:
    """Run one call, keeping its error as a value: a failed call must not drop the others'."""
    try:
        return function(*args)
    except Exception as exc:
        return exc


def _split(
    plan: Plan, results: list[FlowOutcome[CallOutput] | BaseException]
) -> tuple[list[FlowOutcome[CallOutput]], list[CallFailure]]:
    """Successful outcomes and typed failures; raises when nothing succeeded."""
    outcomes = [r for r in results if isinstance(r, FlowOutcome)]
    errors = [(i, r) for i, r in enumerate(results) if not isinstance(r, FlowOutcome)]
    if not outcomes:
        raise errors[0][1]
    for _, error in errors:
        if not isinstance(error, ProviderError | DeadlineExceeded):
            raise error  # a bug or a bad request, not a provider failure: never hide it
    failures = [
        CallFailure(index, plan.calls[index].seeds, error)
        for index, error in errors
        if isinstance(error, Exception)
    ]
    return outcomes, failures


class _AsyncEventStream:
    """Async iterator over a generation's events; leaving it early cancels the job.

    The generation runs in a task of its own (asyncio or trio) inside a cancel scope.
    ``aclose()`` — called by ``async with``, by ``contextlib.aclosing(...)``, or, after a plain
    ``break``, when the iterator is garbage collected — cancels that scope, and the drivers
    cancel every accepted job at the provider.
    """

    def __init__(
        self,
        owner: AsyncGenerator,
        plan: Plan,
        deadline: Deadline | None,
        bars: GenerationProgress | None = None,
    ) -> None:
        self._owner, self._plan, self._deadline = owner, plan, deadline
        self._bars = bars
        self._receive: Any = None
        self._scope: anyio.CancelScope | None = None
        self._done: anyio.Event | None = None
        self._call_soon: Callable[[Callable[[], None]], object] | None = None
        self._finished = False

    def __aiter__(self) -> _AsyncEventStream:
        return self

    async def __anext__(self) -> Event:
        if self._finished:
            if self._receive is not None:
                self._receive.close()  # iterated to the end without aclose(): nothing leaks
            raise StopAsyncIteration
        if self._done is None:
            self._start()
        try:
            item = await self._receive.receive()
        except anyio.EndOfStream:
            self._finished = True
            raise StopAsyncIteration from None
        if isinstance(item, BaseException):
            self._finished = True
            if self._bars is not None:
                self._bars.close()
            raise item
        if isinstance(item, Completed):
            self._finished = True
        if self._bars is not None:
            self._bars(item)
        return item  # type: ignore[no-any-return]

    def _start(self) -> None:
        from fluxkit._http import _running_library

        send, receive = anyio.create_memory_object_stream[Any](max_buffer_size=1_000_000)
        self._receive = receive
        scope = self._scope = anyio.CancelScope()
        done = self._done = anyio.Event()

        async def produce() -> None:
            try:
                with scope:
                    await self._owner._execute(self._plan, self._deadline, send.send_nowait)
            except Exception as exc:
                send.send_nowait(exc)
            finally:
                send.close()
                done.set()

        if _running_library() == "trio":
            import trio

            token = trio.lowlevel.current_trio_token()
            self._call_soon = token.run_sync_soon
            trio.lowlevel.spawn_system_task(produce)
        else:
            task = asyncio.ensure_future(produce())
            loop = task.get_loop()
            self._call_soon = loop.call_soon_threadsafe

    async def aclose(self) -> None:
        """Stop: cancels the generation (and its jobs at the provider) if it is still running."""
        self._finished = True
        if self._bars is not None:
            self._bars.close()
        if self._scope is not None and self._done is not None and not self._done.is_set():
            self._scope.cancel()
            with anyio.CancelScope(shield=True):
                await self._done.wait()
        if self._receive is not None:
            self._receive.close()

    def __del__(self) -> None:
        # Dropped without aclose() (a plain ``break``): cancel the generation on its loop; the
        # drivers then cancel the accepted jobs at the provider, as they would for aclose().
        scope, done, call_soon = self._scope, self._done, self._call_soon
        if scope is not None and done is not None and call_soon is not None and not done.is_set():
            try:
                call_soon(scope.cancel)
            except RuntimeError:  # the loop is closed: nothing is left to cancel with
                pass

    async def __aenter__(self) -> _AsyncEventStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
