"""The money rules, as behaviour: the same scenarios through Generator, AsyncGenerator and trio.

* an accepted job is never orphaned — every cancel path cancels it at the provider;
* a submission is never resent unless the provider provably refused it;
* a paid result is never dropped — partial results, retried downloads, URLs on errors.

Fault scripts come from the shipped emulator kit (``fluxkit.testing``), so users can run the
same faults against their own apps.
"""

from __future__ import annotations

import _thread
import asyncio
import random
import threading
import time
from collections.abc import Callable
from typing import Any

import anyio
import pytest

import fluxkit
from fluxkit._events import Completed, Queued, Started
from fluxkit.testing import Emulator, FakeProviderEmulator, FalEmulator, ReplicateEmulator
from tests.parity import KINDS, Runner

SUBMIT_WINDOW = 0.25
"""Seconds a scripted slow submission holds its answer after the job was created."""
TRIES = 3
"""Cancellation timings tried per (path, provider) in the suite; benchmarks/bench_orphans.py
runs 20."""


# -- providers ---------------------------------------------------------------------------------


def fake() -> FakeProviderEmulator:
    return FakeProviderEmulator()


def fal() -> FalEmulator:
    return FalEmulator(api_key="k")


def replicate() -> ReplicateEmulator:
    return ReplicateEmulator(api_key="k")


PROVIDERS: dict[str, Callable[[], Emulator]] = {
    "fake": fake,
    "fal": fal,
    "replicate": replicate,
}
MODELS = {"fake": "flux-pro", "fal": "flux-dev", "replicate": "flux-dev"}
"""Models that make one provider job per image, so ``n`` images are ``n`` jobs everywhere."""
SUBMIT_PATHS = {
    "fake": r"^/v1/generations$",
    "fal": r"^/fal-ai/flux/dev$",
    "replicate": r"/predictions$",
}


def jobs_of(emu: Emulator) -> set[str]:
    table = getattr(emu, "predictions", None)
    if table is None:
        table = emu.jobs  # type: ignore[attr-defined]
    return set(table)


def orphans(emu: Emulator) -> set[str]:
    """Jobs the provider accepted that no cancel reached (jobs here run far longer than tests)."""
    return jobs_of(emu) - set(emu.cancelled)  # type: ignore[attr-defined]


def long_jobs(emu: Emulator, *, slow_submit: bool = True, provider: str = "fake") -> Emulator:
    emu.script.run_seconds = 60.0
    if slow_submit:
        emu.script.slow(SUBMIT_WINDOW, count=100, path=SUBMIT_PATHS[provider])
    return emu


# -- cancellation never orphans ----------------------------------------------------------------


def _in_submit_window() -> float:
    return random.uniform(0.01, SUBMIT_WINDOW - 0.02)


async def _task_cancel(agen: fluxkit.AsyncGenerator) -> BaseException | None:
    task = asyncio.ensure_future(agen.generate("fox", size=(256, 256)))
    await asyncio.sleep(_in_submit_window())
    task.cancel()
    try:
        await task
    except asyncio.CancelledError as exc:
        return exc
    return None


async def _wait_for(agen: fluxkit.AsyncGenerator) -> BaseException | None:
    try:
        await asyncio.wait_for(agen.generate("fox", size=(256, 256)), _in_submit_window())
    except TimeoutError as exc:
        return exc
    return None


async def _asyncio_timeout(agen: fluxkit.AsyncGenerator) -> BaseException | None:
    try:
        async with asyncio.timeout(_in_submit_window()):
            await agen.generate("fox", size=(256, 256))
    except TimeoutError as exc:
        return exc
    return None


async def _task_group(agen: fluxkit.AsyncGenerator) -> BaseException | None:
    async def boom() -> None:
        await asyncio.sleep(_in_submit_window())
        raise RuntimeError("a sibling failed")

    try:
        async with asyncio.TaskGroup() as group:
            group.create_task(agen.generate("fox", size=(256, 256)))
            group.create_task(boom())
    except BaseExceptionGroup as exc:
        return exc
    return None


async def _anyio_scope(agen: fluxkit.AsyncGenerator) -> BaseException | None:
    with anyio.move_on_after(_in_submit_window()) as scope:
        await agen.generate("fox", size=(256, 256))
    return None if not scope.cancelled_caught else TimeoutError()


async def _deadline(agen: fluxkit.AsyncGenerator) -> BaseException | None:
    try:
        await agen.generate("fox", size=(256, 256), timeout=_in_submit_window())
    except fluxkit.DeadlineExceeded as exc:
        assert exc.request_id is not None and exc.cancelled
        return exc
    return None


ASYNC_PATHS = {
    "task.cancel": _task_cancel,
    "wait_for": _wait_for,
    "asyncio.timeout": _asyncio_timeout,
    "TaskGroup": _task_group,
    "anyio scope": _anyio_scope,
    "deadline": _deadline,
}


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
@pytest.mark.parametrize("path", sorted(ASYNC_PATHS))
def test_async_cancellation_inside_the_submit_window_never_orphans(
    provider: str, path: str
) -> None:
    for _ in range(TRIES):
        emu = long_jobs(PROVIDERS[provider](), provider=provider)

        async def main(emu: Emulator = emu) -> BaseException | None:
            async with emu.async_generator(timeout=30) as agen:
                return await ASYNC_PATHS[path](agen)

        stopped = asyncio.run(main())
        assert stopped is not None, "the call was not interrupted"
        assert jobs_of(emu), "the submission never reached the provider"
        assert not orphans(emu)


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
def test_anyio_cancellation_under_trio_never_orphans(provider: str) -> None:
    for _ in range(TRIES):
        emu = long_jobs(PROVIDERS[provider](), provider=provider)

        async def main(emu: Emulator = emu) -> None:
            async with emu.async_generator(timeout=30) as agen:
                with anyio.move_on_after(_in_submit_window()):
                    await agen.generate("fox", size=(256, 256))

        anyio.run(main, backend="trio")
        assert jobs_of(emu) and not orphans(emu)


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
@pytest.mark.parametrize("n", [1, 3])
def test_ctrl_c_in_a_sync_generate_never_orphans(provider: str, n: int) -> None:
    for _ in range(TRIES):
        emu = long_jobs(PROVIDERS[provider](), provider=provider)
        timer = threading.Timer(_in_submit_window(), _thread.interrupt_main)
        with emu.generator(timeout=30) as gen:
            timer.start()
            with pytest.raises(KeyboardInterrupt) as caught:
                gen.generate("fox", size=(256, 256), n=n)
        # calls not yet sent when Ctrl-C came are never sent; every one that was is cancelled
        assert 1 <= len(jobs_of(emu)) <= n and not orphans(emu)
        assert any("cancelled at" in note for note in getattr(caught.value, "__notes__", []))


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
def test_sync_deadline_inside_the_submit_window_cancels_with_the_request_id(
    provider: str,
) -> None:
    emu = long_jobs(PROVIDERS[provider](), provider=provider)
    with emu.generator() as gen, pytest.raises(fluxkit.DeadlineExceeded) as caught:
        gen.generate("fox", size=(256, 256), timeout=0.05)
    assert caught.value.request_id in jobs_of(emu) and caught.value.cancelled
    assert not orphans(emu)


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
@pytest.mark.parametrize("kind", KINDS)
def test_leaving_a_stream_early_cancels_every_job(provider: str, kind: str) -> None:
    # Two calls; the second one's submission is still in flight when the loop breaks.
    emu = long_jobs(PROVIDERS[provider](), slow_submit=False, provider=provider)
    emu.script.slow(SUBMIT_WINDOW * 2, count=1, path=SUBMIT_PATHS[provider])
    events = Runner(kind, emu, timeout=30, model=MODELS[provider]).stream(
        "fox", size=(256, 256), n=2, stop=lambda event: isinstance(event, Queued | Started)
    )
    assert events and not isinstance(events[-1], Completed)
    deadline = time.monotonic() + 5
    while len(jobs_of(emu)) < 2 or orphans(emu):  # the async side finishes on its own loop
        assert time.monotonic() < deadline, f"orphaned: {orphans(emu)}"
        time.sleep(0.02)


# -- no double billing -------------------------------------------------------------------------


@pytest.mark.parametrize("provider", ["fal", "replicate"])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("fault", ["504", "502", "drop"])
def test_a_submission_with_no_clear_answer_is_never_resent(
    provider: str, kind: str, fault: str
) -> None:
    emu = PROVIDERS[provider]()
    if fault == "drop":
        emu.script.drop_after_accept(path=SUBMIT_PATHS[provider])
    else:
        emu.script.fail_after_accept(int(fault), path=SUBMIT_PATHS[provider])
    with pytest.raises(fluxkit.JobMayExistError) as caught:
        Runner(kind, emu).generate("fox", size=(256, 256))
    assert len(jobs_of(emu)) == 1  # the provider has it: fluxkit did not pay a second time
    assert len(emu.requests(SUBMIT_PATHS[provider], method="POST")) == 1
    assert caught.value.url and "may have accepted" in str(caught.value)
    assert isinstance(caught.value, fluxkit.ProviderUnavailableError)


@pytest.mark.parametrize("kind", KINDS)
def test_a_refused_submission_is_resent(kind: str) -> None:
    emu = fal()
    emu.script.fail_next(503, count=1, path=SUBMIT_PATHS["fal"], retry_after=0.01)
    emu.script.fail_next(429, count=1, path=SUBMIT_PATHS["fal"], retry_after=0.01)
    result = Runner(kind, emu).generate("fox", size=(256, 256), seed=2)
    assert result.images[0].seed == 2 and len(jobs_of(emu)) == 1


@pytest.mark.parametrize("kind", KINDS)
def test_a_deduplicating_provider_is_resent_safely_after_a_drop(kind: str) -> None:
    emu = fake()
    emu.script.drop_after_accept(path=SUBMIT_PATHS["fake"])
    result = Runner(kind, emu).generate("fox", size=(256, 256), seed=2)
    assert result.images[0].seed == 2 and len(jobs_of(emu)) == 1


# -- no paid result dropped --------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("provider", sorted(PROVIDERS))
def test_one_failed_call_of_n_keeps_the_other_images(kind: str, provider: str) -> None:
    emu = PROVIDERS[provider]()
    emu.script.fail_jobs(1, "scripted: out of memory", skip=2)
    runner = Runner(kind, emu, max_concurrency=1, model=MODELS[provider])
    result = runner.generate("fox", size=(256, 256), n=4, seed=10)
    assert len(result.images) == 3 and not result.ok
    (failure,) = result.failures
    assert isinstance(failure.error, fluxkit.JobFailedError)
    assert failure.request_id in jobs_of(emu)
    assert set(result.seeds) | set(failure.seeds) == {10, 11, 12, 13}
    with pytest.raises(fluxkit.JobFailedError) as caught:
        result.raise_for_failures()
    assert caught.value.partial is result  # type: ignore[attr-defined]


@pytest.mark.parametrize("kind", KINDS)
def test_a_failed_download_carries_the_urls_and_the_request_id(kind: str) -> None:
    emu = FakeProviderEmulator(return_urls=True)
    emu.script.fail_next(500, count=50, path=r"^/files/")
    with pytest.raises(fluxkit.ResultUnavailableError) as caught:
        Runner(kind, emu, max_retries=1).generate("fox", size=(256, 256))
    assert caught.value.request_id in jobs_of(emu)
    assert caught.value.urls and caught.value.urls[0].endswith(".png")
    assert not isinstance(caught.value, fluxkit.JobFailedError)


@pytest.mark.parametrize("kind", KINDS)
def test_downloads_are_retried(kind: str) -> None:
    emu = FakeProviderEmulator(return_urls=True)
    emu.script.fail_next(503, count=2, path=r"^/files/")
    result = Runner(kind, emu).generate("fox", size=(256, 256), seed=1)
    assert result.images[0].is_loaded


@pytest.mark.parametrize("kind", KINDS)
def test_a_5xx_on_fals_result_after_completed_is_not_a_failed_job(kind: str) -> None:
    emu = fal()
    emu.script.run_seconds = 0.01
    emu.script.fail_next(500, count=50, path=r"/requests/[\w-]+$", method="GET")
    with pytest.raises(fluxkit.ResultUnavailableError) as caught:
        Runner(kind, emu, max_retries=1).generate("fox", size=(256, 256))
    assert caught.value.request_id in jobs_of(emu) and caught.value.urls
    assert not emu.cancelled


# -- parity of ordinary behaviour --------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_events_arrive_in_order_and_end_with_the_result(kind: str) -> None:
    emu = fake()
    emu.script.run_seconds = 0.05
    events = Runner(kind, emu).stream("fox", size=(256, 256), seed=5)
    names = [type(event).__name__ for event in events]
    assert names[:2] == ["Submitted", "Queued"] and names[-1] == "Completed"
    assert isinstance(events[0], fluxkit.Submitted) and events[0].request_id in emu.jobs
    assert names.index("Started") < names.index("Step")
    final = events[-1]
    assert isinstance(final, Completed) and final.result.seeds == (5,)


@pytest.mark.parametrize("kind", KINDS)
def test_download_false_leaves_urls_to_fetch_lazily(kind: str) -> None:
    emu = FakeProviderEmulator(return_urls=True)
    result = Runner(kind, emu, download=False).generate("fox", size=(256, 256), seed=3)
    image = result.images[0]
    assert not image.is_loaded and image.url
    assert image.to_pil().size == (256, 256)  # fetched on first use


@pytest.mark.parametrize("kind", KINDS)
def test_a_deadline_cancels_a_running_job(kind: str) -> None:
    emu = fake()
    emu.script.run_seconds = 60
    with pytest.raises(fluxkit.DeadlineExceeded) as caught:
        Runner(kind, emu).generate("fox", size=(256, 256), timeout=0.2)
    assert caught.value.cancelled and caught.value.request_id in emu.cancelled


@pytest.mark.parametrize("kind", KINDS)
def test_rate_limits_are_retried_with_events(kind: str) -> None:
    emu = fake()
    emu.script.fail_next(429, count=2, path=SUBMIT_PATHS["fake"], retry_after=0.01)
    events = Runner(kind, emu).stream("fox", size=(256, 256), seed=1)
    assert [type(e).__name__ for e in events].count("Retrying") == 2
    assert len(jobs_of(emu)) == 1


# -- server-side deadlines ---------------------------------------------------------------------


def test_fal_submissions_carry_a_start_deadline() -> None:
    emu = fal()
    with emu.generator() as gen:
        gen.generate("fox", size=(256, 256), timeout=40)
    (submit,) = emu.requests(SUBMIT_PATHS["fal"], method="POST")
    assert 38 <= int(submit.header("x-fal-request-timeout") or 0) <= 40


def test_replicate_predictions_carry_cancel_after_and_never_wait_past_the_deadline() -> None:
    emu = replicate()
    with emu.generator() as gen:
        gen.generate("fox", model="flux-schnell", size=(256, 256), timeout=3)
    (create,) = emu.requests(r"/predictions$", method="POST")
    assert create.header("cancel-after") == "3s"
    # schnell holds for 5 s by default; here for at most what is left, less a second
    assert create.header("prefer") == "wait=1"


def test_replicate_does_not_hold_a_create_when_under_a_second_is_left() -> None:
    emu = replicate()
    with emu.generator() as gen:
        gen.generate("fox", model="flux-schnell", size=(256, 256), timeout=0.9)
    (create,) = emu.requests(r"/predictions$", method="POST")
    assert create.header("prefer") is None and create.header("cancel-after") == "1s"


# -- secrets stay wrapped ----------------------------------------------------------------------


def test_keys_are_not_in_the_locals_of_any_frame_a_failure_captures() -> None:
    emu = fal()
    emu.api_key = "sk-very-secret-value"
    emu.script.fail_next(400, path=SUBMIT_PATHS["fal"], body={"detail": "bad input"})
    with emu.generator() as gen:
        try:
            gen.generate("fox", size=(256, 256))
        except fluxkit.ProviderError as exc:
            error = exc
    shown: list[str] = [repr(error), str(error)]
    traceback = error.__traceback__
    while traceback is not None:
        shown.extend(_safe_repr(value) for value in traceback.tb_frame.f_locals.values())
        traceback = traceback.tb_next
    assert not [text for text in shown if "sk-very-secret-value" in text]


def _safe_repr(value: Any) -> str:
    try:
        return repr(value)
    except Exception:  # some objects cannot repr in a torn-down frame
        return ""
