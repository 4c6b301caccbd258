"""``run_batch``: many generations that survive crashes, stay in budget and adapt to rate limits.

The engine is async (anyio); ``run_batch`` drives a sync ``Generator`` from worker threads in a
loop of its own (so it works in scripts and inside Jupyter's running loop alike), and
``arun_batch`` drives an ``AsyncGenerator`` on the caller's loop.

Per job (see ``_journal`` for the states): claim it, mark ``submitting``, generate with the
job key as idempotency key, record the request id on the ``Submitted`` event, then the result,
then save the image atomically with its record (and the job key) embedded, append it to
``index.jsonl``, and mark it ``saved``. On resume, ``submitted``/``completed`` jobs are collected
by id (``Generator.collect``), never resubmitted.

Concurrency starts at ``concurrency`` and halves on rate limits (a 429 the driver retried or
that outlasted the retries), growing back by one after each run of successes; a provider outage
(503/connection failures that outlast the retries, before acceptance) pauses every worker with a
growing delay instead of burning through the jobs, up to ``outage_timeout``.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import anyio
import anyio.to_thread

from fluxkit._events import Retrying, Submitted
from fluxkit._exceptions import (
    BudgetExceeded,
    InvalidRequestError,
    JobCancelledError,
    JobMayExistError,
    OutputExistsError,
    ProviderUnavailableError,
    RateLimitError,
)
from fluxkit._files import clean_stale_temps
from fluxkit.backends._base import HttpBackend, LocalBackend
from fluxkit.batch._inputs import expand
from fluxkit.batch._journal import JOURNAL_NAME, Job, Journal

if TYPE_CHECKING:
    from fluxkit._generator import AsyncGenerator, Generator
    from fluxkit._results import GeneratedImage, GenerationResult

__all__ = ["BatchSummary", "arun_batch", "run_batch"]

INDEX_NAME = "index.jsonl"
_COLLECT = ("submitted", "completed")


@dataclass
class BatchSummary:
    """What a batch run did.

    Attributes:
        out_dir: where images, ``index.jsonl`` and the journal are.
        saved: images saved by this run.
        skipped: jobs already saved by an earlier run (not redone).
        collected: jobs accepted by an earlier run and collected by id (not resubmitted).
        failed: ``(line, error type, message)`` per job that failed.
        uncertain: lines of jobs whose submission may or may not have reached the provider
            when an earlier run died (not resent: the provider cannot deduplicate them).
        elsewhere: jobs not done that another live process working on the same journal
            holds (they are its to finish).
        cost_reported: USD of the jobs done, from what the providers reported.
        cost_estimated: USD of the jobs done, from list prices.
        wall: seconds this run took.
    """

    out_dir: Path
    saved: int = 0
    skipped: int = 0
    collected: int = 0
    failed: list[tuple[int, str, str]] = field(default_factory=list)
    uncertain: list[int] = field(default_factory=list)
    elsewhere: int = 0
    cost_reported: float = 0.0
    cost_estimated: float = 0.0
    wall: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed and not self.uncertain and not self.elsewhere

    def __str__(self) -> str:
        lines = [
            f"{self.saved} saved, {self.skipped} already done, {self.collected} collected by id, "
            f"{len(self.failed)} failed, {len(self.uncertain)} uncertain"
            + (f", {self.elsewhere} held by another process" if self.elsewhere else "")
            + f" in {self.wall:.1f} s; "
            f"cost ${self.cost_reported + self.cost_estimated:.4f} "
            f"(reported ${self.cost_reported:.4f}, estimated ${self.cost_estimated:.4f})",
        ]
        for line, kind, message in self.failed[:20]:
            lines.append(f"  line {line}: {kind}: {message}")
        if len(self.failed) > 20:
            lines.append(f"  ... and {len(self.failed) - 20} more (see the journal)")
        if self.uncertain:
            lines.append(
                f"  uncertain (may have run; rerun with resubmit_uncertain=True to resend): "
                f"lines {sorted(set(self.uncertain))[:20]}"
            )
        return "\n".join(lines)


class _Client:
    """What the engine needs of a generator, awaitable for both kinds."""

    def __init__(self, generator: Generator | AsyncGenerator, threads: int) -> None:
        from fluxkit._generator import AsyncGenerator

        self.generator = generator
        self.asynchronous = generator if isinstance(generator, AsyncGenerator) else None
        self.synchronous = None if self.asynchronous is not None else cast("Generator", generator)
        self.limiter = anyio.CapacityLimiter(threads)
        self.backend = generator.backend
        backend = generator._backend
        # A local job that died mid-run cost nothing at any provider: it is simply run again.
        self.deduplicates = isinstance(backend, LocalBackend) or (
            isinstance(backend, HttpBackend) and backend.deduplicates()
        )

    async def generate(
        self, request: Mapping[str, Any], key: str, on_event: Callable[[Any], None]
    ) -> GenerationResult:
        params = dict(request)
        prompt = params.pop("prompt")
        if self.asynchronous is not None:
            return await self.asynchronous.generate(
                prompt, on_event=on_event, idempotency_key=key, **params
            )
        generator = self.synchronous
        assert generator is not None

        def run() -> GenerationResult:
            return generator.generate(prompt, on_event=on_event, idempotency_key=key, **params)

        return await anyio.to_thread.run_sync(run, limiter=self.limiter)

    async def collect(
        self, request: Mapping[str, Any], request_id: str, on_event: Callable[[Any], None]
    ) -> GenerationResult:
        params = dict(request)
        prompt = params.pop("prompt")
        if self.asynchronous is not None:
            return await self.asynchronous.collect(request_id, prompt, on_event=on_event, **params)
        generator = self.synchronous
        assert generator is not None

        def run() -> GenerationResult:
            return generator.collect(request_id, prompt, on_event=on_event, **params)

        return await anyio.to_thread.run_sync(run, limiter=self.limiter)


class _Pace:
    """Adaptive concurrency (halve on rate limits, +1 per ``limit`` successes) and outage pauses."""

    def __init__(self, ceiling: int, outage_timeout: float) -> None:
        self.ceiling = self.limit = ceiling
        self.in_flight = 0
        self.successes = 0
        self.last_cut = 0.0
        self.pause_until = 0.0
        self.outage_since: float | None = None
        self.outage_delay = 1.0
        self.outage_timeout = outage_timeout
        self.changed = anyio.Event()

    def _notify(self) -> None:
        self.changed.set()
        self.changed = anyio.Event()

    async def acquire(self) -> None:
        while True:
            now = time.monotonic()
            if now < self.pause_until:
                await anyio.sleep(self.pause_until - now)
                continue
            if self.in_flight < self.limit:
                self.in_flight += 1
                return
            await self.changed.wait()

    def release(self) -> None:
        self.in_flight -= 1
        self._notify()

    def rate_limited(self) -> None:
        now = time.monotonic()
        if now - self.last_cut >= 1.0:  # one cut per second: a burst of 429s is one signal
            self.limit = max(1, self.limit // 2)
            self.last_cut, self.successes = now, 0

    def succeeded(self) -> None:
        self.outage_since, self.outage_delay = None, 1.0
        self.successes += 1
        if self.limit < self.ceiling and self.successes >= self.limit:
            self.limit, self.successes = self.limit + 1, 0
            self._notify()

    def outage(self) -> bool:
        """Pause everyone; False when the outage has lasted past ``outage_timeout``."""
        now = time.monotonic()
        if self.outage_since is None:
            self.outage_since = now
        if now - self.outage_since > self.outage_timeout:
            return False
        self.pause_until = max(self.pause_until, now + self.outage_delay)
        self.outage_delay = min(60.0, self.outage_delay * 2)
        return True


def _image_name(job: Job, image: GeneratedImage) -> str:
    fmt = "jpg" if image.format == "jpeg" else image.format
    return f"{job.line:05d}-{job.request.get('seed')}-{job.key[:8]}.{fmt}"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class _Engine:
    def __init__(
        self,
        client: _Client,
        journal: Journal,
        out_dir: Path,
        *,
        concurrency: int,
        outage_timeout: float,
        resubmit_uncertain: bool,
        on_progress: Callable[[Job, str], None] | None,
    ) -> None:
        self.client, self.journal, self.out_dir = client, journal, out_dir
        self.pace = _Pace(concurrency, outage_timeout)
        self.resubmit_uncertain = resubmit_uncertain
        self.on_progress = on_progress
        self.summary = BatchSummary(out_dir)
        self.index_lock = threading.Lock()
        self.running: set[str] = set()

    # -- the loop --------------------------------------------------------------------------

    async def run(self) -> None:
        async with anyio.create_task_group() as group:
            group.start_soon(self._renew_leases)
            async with anyio.create_task_group() as workers:
                for _ in range(self.pace.ceiling):
                    workers.start_soon(self._worker)
            group.cancel_scope.cancel()

    async def _renew_leases(self) -> None:
        while True:
            await anyio.sleep(15.0)
            if self.running:
                self.journal.renew(list(self.running))

    async def _worker(self) -> None:
        while True:
            await self.pace.acquire()
            try:
                jobs = self.journal.claim(("submitted", "completed", "submitting", "planned"), 1)
                if not jobs:
                    return
                job = jobs[0]
                self.running.add(job.key)
                try:
                    await self._process(job)
                finally:
                    self.running.discard(job.key)
            finally:
                self.pace.release()

    # -- one job ---------------------------------------------------------------------------

    def _on_event(self, job: Job) -> Callable[[Any], None]:
        def handle(event: Any) -> None:
            if isinstance(event, Submitted):
                # Written at once: a crash from here on collects this job by id.
                self.journal.submitted(job.key, event.request_id)
            elif isinstance(event, Retrying) and "429" in event.reason:
                self.pace.rate_limited()

        return handle

    async def _process(self, job: Job) -> None:
        if job.state in _COLLECT and job.request_id:
            await self._collect(job)
            return
        if job.state == "submitting" and not (self.client.deduplicates or self.resubmit_uncertain):
            # It may have reached the provider before the last run died, and the provider
            # cannot deduplicate it: resending could pay twice.
            self.journal.failed(
                job.key,
                "the submission may have reached the provider before the last run stopped",
                "JobMayExistError",
            )
            self.summary.uncertain.append(job.line)
            return
        self.journal.submitting(job.key, self.client.backend)
        try:
            result = await self.client.generate(job.request, job.key, self._on_event(job))
        except RateLimitError:
            self.pace.rate_limited()
            self.journal.release_to_planned(job.key)
        except JobMayExistError as exc:
            self.journal.failed(job.key, exc)
            self.summary.uncertain.append(job.line)
        except ProviderUnavailableError as exc:
            latest = self.journal.get(job.key)
            if latest is not None and latest.request_id:
                self.journal.failed(job.key, exc)  # accepted, then lost: collect on --retry-failed
            elif self.pace.outage():
                self.journal.release_to_planned(job.key)  # not accepted: try again after a pause
            else:
                self.journal.failed(job.key, exc)
        except (InvalidRequestError, BudgetExceeded) as exc:
            self.journal.failed(job.key, exc)
        except Exception as exc:  # JobFailedError, DeadlineExceeded, ResultUnavailableError...
            self.journal.failed(job.key, exc)
        else:
            self.pace.succeeded()
            # saving encodes, fsyncs and hashes: off the event loop, which other jobs share
            await anyio.to_thread.run_sync(self._finish, job, result)

    async def _collect(self, job: Job) -> None:
        assert job.request_id is not None
        try:
            result = await self.client.collect(job.request, job.request_id, self._on_event(job))
        except JobCancelledError:
            # Cancelled at the provider (an earlier run's Ctrl-C): it made nothing; run it again.
            self.journal.release_to_planned(job.key)
        except Exception as exc:
            self.journal.failed(job.key, exc)
        else:
            self.summary.collected += 1
            self.pace.succeeded()
            # saving encodes, fsyncs and hashes: off the event loop, which other jobs share
            await anyio.to_thread.run_sync(self._finish, job, result)

    def _finish(self, job: Job, result: GenerationResult) -> None:
        if not result.images:
            self.journal.failed(
                job.key, "the provider returned no image (content filter?)", "NoImage"
            )
            return
        cost = result.cost
        self.journal.completed(
            job.key,
            [image.url for image in result.images if image.url],
            cost.usd if cost else None,
            cost.basis if cost else None,
        )
        files, hashes = [], []
        for image in result.images:
            record = {**image.record, "batch": {"key": job.key, "line": job.line}}
            stamped = replace(image, record=record)
            path = self.out_dir / _image_name(job, image)
            try:
                stamped.save(path)
            except OutputExistsError:
                # A crash between saving and the journal: the file is this job's if its record
                # says so; anything else at that name is left alone (never overwritten).
                from fluxkit._record import read_record

                existing = read_record(path) or {}
                if (existing.get("batch") or {}).get("key") != job.key:
                    path = _free_save(stamped, path)
                else:
                    # killed between taking the name and removing its temp: nothing would
                    # write this name again, so sweep that temp now
                    clean_stale_temps(path)
            files.append(path.name)
            hashes.append(_sha256(path))
        self._index(job, result, files, hashes)
        self.journal.saved(job.key, files, hashes)
        self.summary.saved += 1
        if self.on_progress is not None:
            self.on_progress(job, "saved")

    def _index(
        self, job: Job, result: GenerationResult, files: list[str], hashes: list[str]
    ) -> None:
        cost = result.cost
        entry = {
            "line": job.line,
            "key": job.key,
            "files": files,
            "sha256": hashes,
            "seed": job.request.get("seed"),
            "prompt": job.request.get("prompt"),
            "backend": result.backend,
            "model": result.model,
            "request_ids": list(result.request_ids),
            "cost_usd": cost.usd if cost else None,
            "cost_basis": cost.basis if cost else None,
        }
        data = (json.dumps(entry, sort_keys=True) + "\n").encode()
        with self.index_lock:
            # One write per line on an O_APPEND descriptor: lines never interleave, and a
            # crash leaves at most a torn last line (readers skip it).
            fd = os.open(self.out_dir / INDEX_NAME, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)


def _free_save(image: GeneratedImage, path: Path) -> Path:
    """Save beside a file that is not this job's, under the next free name."""
    from fluxkit._record import write_image_free_name

    return write_image_free_name(image, path.parent, path.stem, path.suffix)


def _budget_check(client: _Client, journal: Journal, max_cost: float | None) -> None:
    """Refuse the batch before any spend if the work left is estimated past ``max_cost``."""
    if max_cost is None:
        return
    reported, estimated = journal.cost()
    spent = reported + estimated
    pending = journal.jobs("planned") + journal.jobs("submitting")
    total = 0.0
    for job in pending:
        request = dict(job.request)
        prompt = request.pop("prompt")
        estimate = client.generator.estimate_cost(prompt, **request)
        if estimate.usd is None:
            raise BudgetExceeded(None, limit=max_cost, spent=spent, detail=estimate.detail)
        total += estimate.usd
    if spent + total > max_cost + 1e-12:
        raise BudgetExceeded(
            total,
            limit=max_cost,
            spent=spent,
            detail=f"{len(pending)} job(s) left to submit",
        )


async def arun_batch(
    requests: Iterable[Mapping[str, Any] | str],
    generator: AsyncGenerator | Generator,
    out_dir: str | os.PathLike[str],
    *,
    defaults: Mapping[str, Any] | None = None,
    concurrency: int = 8,
    max_cost: float | None = None,
    dedupe: bool = True,
    journal: str | os.PathLike[str] | None = None,
    outage_timeout: float = 600.0,
    retry_failed: bool = False,
    resubmit_uncertain: bool = False,
    on_progress: Callable[[Job, str], None] | None = None,
) -> BatchSummary:
    """Run a batch on an event loop; see `run_batch`."""
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise InvalidRequestError("concurrency", concurrency, "an integer >= 1")
    started = time.monotonic()
    out = Path(out_dir)
    await anyio.Path(out).mkdir(parents=True, exist_ok=True)
    client = _Client(generator, concurrency)
    jobs = expand(requests, defaults, dedupe=dedupe)
    _validate(client, jobs)
    with Journal.open(Path(journal) if journal else out / JOURNAL_NAME) as book:
        backend = book.meta("backend")
        if backend is not None and backend != client.backend:
            raise InvalidRequestError(
                "generator",
                client.backend,
                f"the journal's backend ({backend}): jobs there "
                "were submitted to it and can only be collected there",
            )
        book.set_meta("backend", client.backend)
        book.plan(jobs)
        if retry_failed:
            book.reset_failed()
        before = book.counts()
        _budget_check(client, book, max_cost)
        engine = _Engine(
            client,
            book,
            out,
            concurrency=concurrency,
            outage_timeout=outage_timeout,
            resubmit_uncertain=resubmit_uncertain,
            on_progress=on_progress,
        )
        await engine.run()
        summary = engine.summary
        summary.skipped = before.get("saved", 0)
        summary.failed = [
            (job.line, job.error_type or "error", job.error or "") for job in book.jobs("failed")
        ]
        summary.uncertain = sorted(
            {job.line for job in book.jobs("failed") if job.error_type == "JobMayExistError"}
        )
        summary.cost_reported, summary.cost_estimated = book.cost()
        summary.elsewhere = book.unfinished_elsewhere()
    summary.wall = time.monotonic() - started
    return summary


def _validate(client: _Client, jobs: list[tuple[str, int, dict[str, Any]]]) -> None:
    """Every line checked against the backend before anything is sent (names the line)."""
    for _, line, request in jobs:
        params = dict(request)
        prompt = params.pop("prompt")
        try:
            client.generator.estimate_cost(prompt, **params)
        except InvalidRequestError as exc:
            raise InvalidRequestError(f"line {line}: {exc.field}", exc.value, exc.allowed) from exc


def run_batch(
    requests: Iterable[Mapping[str, Any] | str],
    generator: Generator | AsyncGenerator,
    out_dir: str | os.PathLike[str],
    *,
    defaults: Mapping[str, Any] | None = None,
    concurrency: int = 8,
    max_cost: float | None = None,
    dedupe: bool = True,
    journal: str | os.PathLike[str] | None = None,
    outage_timeout: float = 600.0,
    retry_failed: bool = False,
    resubmit_uncertain: bool = False,
    on_progress: Callable[[Job, str], None] | None = None,
) -> BatchSummary:
    """Generate every request into ``out_dir``, surviving crashes, in budget.

    Each line becomes one job per image (``n`` split, seeds fixed). The journal
    (``out_dir/journal.sqlite``) records every job; run the same call (or ``fluxkit batch
    --resume DIR``) after a crash, Ctrl-C or ``kill -9`` and jobs already saved are skipped,
    jobs already accepted are collected by id (never resubmitted), and only the rest are
    submitted. Images are written atomically with their generation record; ``index.jsonl``
    lists them.

    Args:
        requests: prompts, or dicts of request fields (see `fluxkit.batch.load_requests`).
        generator: a ``Generator`` (or an ``AsyncGenerator``: use `arun_batch` then).
        out_dir: where images, ``index.jsonl`` and ``journal.sqlite`` go.
        defaults: request fields for lines that leave them out.
        concurrency: jobs in flight at most (lowered automatically on rate limits).
        max_cost: refuse to start (`BudgetExceeded`) if the work left is estimated
            above this many US dollars.
        dedupe: identical lines are one job (default); False runs each.
        journal: the journal's path (default ``out_dir/journal.sqlite``).
        outage_timeout: seconds a provider outage may pause the batch before jobs fail.
        retry_failed: put failed jobs back (accepted ones are collected, others resubmitted).
        resubmit_uncertain: resend jobs whose submission may have reached a provider that
            cannot deduplicate (may pay twice).
        on_progress: called with ``(job, "saved")`` as jobs finish.

    Example:
        ```python
        import fluxkit
        from fluxkit.batch import run_batch

        with fluxkit.Generator("fake") as gen:
            summary = run_batch(["a fox", {"prompt": "a lighthouse", "n": 2}], gen, "out/batch")
        print(summary)    # 3 saved, 0 already done, ...
        ```
    """
    from fluxkit._generator import Generator

    if not isinstance(generator, Generator):
        raise InvalidRequestError(
            "generator", type(generator).__name__, "a fluxkit.Generator (use arun_batch for async)"
        )
    outcome: list[BatchSummary] = []
    failure: list[BaseException] = []

    def main() -> None:
        try:
            outcome.append(
                anyio.run(
                    lambda: arun_batch(
                        requests,
                        generator,
                        out_dir,
                        defaults=defaults,
                        concurrency=concurrency,
                        max_cost=max_cost,
                        dedupe=dedupe,
                        journal=journal,
                        outage_timeout=outage_timeout,
                        retry_failed=retry_failed,
                        resubmit_uncertain=resubmit_uncertain,
                        on_progress=on_progress,
                    )
                )
            )
        except BaseException as exc:
            failure.append(exc)
        finally:
            finished.set()

    # Its own thread and loop: works in scripts and inside a running loop (Jupyter) alike.
    # On Ctrl-C the journal already holds every accepted job's id: the next run collects them.
    finished = threading.Event()
    threading.Thread(target=main, name="fluxkit-batch", daemon=True).start()
    while not finished.wait(0.2):  # short waits: Ctrl-C reaches this thread between them
        pass
    if failure:
        raise failure[0]
    return outcome[0]
