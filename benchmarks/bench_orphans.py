"""Orphaned and duplicate jobs under cancellation and faults (target: 0 and 0).

Every cancel path x {fake, fal, Replicate}, TRIES tries each, with the cancellation timed at
random inside the submit window (the emulator holds each submission's answer for 250 ms after
creating the job). Counts, at the emulator, jobs accepted that no cancel reached. Then gateway
502/504 after acceptance and connection drops after acceptance, counting jobs created per call.

    python benchmarks/bench_orphans.py [--tries 20]
"""

from __future__ import annotations

import _thread
import argparse
import asyncio
import sys
import threading
import time
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.parity import Runner
from tests.test_money_safety import (
    ASYNC_PATHS,
    MODELS,
    PROVIDERS,
    SUBMIT_PATHS,
    SUBMIT_WINDOW,
    _in_submit_window,
    jobs_of,
    long_jobs,
    orphans,
)

import fluxkit
from fluxkit._events import Queued, Started


def async_path(provider: str, path: str) -> tuple[int, int]:
    emu = long_jobs(PROVIDERS[provider](), provider=provider)

    async def main() -> None:
        async with emu.async_generator(timeout=30) as agen:
            await ASYNC_PATHS[path](agen)

    asyncio.run(main())
    return len(jobs_of(emu)), len(orphans(emu))


def trio_scope(provider: str) -> tuple[int, int]:
    emu = long_jobs(PROVIDERS[provider](), provider=provider)

    async def main() -> None:
        async with emu.async_generator(timeout=30) as agen:
            with anyio.move_on_after(_in_submit_window()):
                await agen.generate("fox", size=(256, 256))

    anyio.run(main, backend="trio")
    return len(jobs_of(emu)), len(orphans(emu))


def ctrl_c(provider: str, n: int) -> tuple[int, int]:
    emu = long_jobs(PROVIDERS[provider](), provider=provider)
    timer = threading.Timer(_in_submit_window(), _thread.interrupt_main)
    with emu.generator(timeout=30, model=MODELS[provider]) as gen:
        timer.start()
        try:
            gen.generate("fox", size=(256, 256), n=n)
        except KeyboardInterrupt:
            pass
    return len(jobs_of(emu)), len(orphans(emu))


def sync_deadline(provider: str) -> tuple[int, int]:
    emu = long_jobs(PROVIDERS[provider](), provider=provider)
    with emu.generator(model=MODELS[provider]) as gen:
        try:
            gen.generate("fox", size=(256, 256), timeout=_in_submit_window())
        except fluxkit.DeadlineExceeded:
            pass
    return len(jobs_of(emu)), len(orphans(emu))


def stream_exit(provider: str, kind: str) -> tuple[int, int]:
    emu = long_jobs(PROVIDERS[provider](), slow_submit=False, provider=provider)
    emu.script.slow(SUBMIT_WINDOW * 2, count=1, path=SUBMIT_PATHS[provider])
    Runner(kind, emu, timeout=30, model=MODELS[provider]).stream(
        "fox", size=(256, 256), n=2, stop=lambda event: isinstance(event, Queued | Started)
    )
    settle = time.monotonic() + 5
    while orphans(emu) and time.monotonic() < settle:
        time.sleep(0.02)
    return len(jobs_of(emu)), len(orphans(emu))


def duplicates(provider: str, fault: str) -> tuple[int, int]:
    """(calls, extra jobs created) for one call whose submission gets no clear answer."""
    emu = PROVIDERS[provider]()
    if fault == "drop":
        emu.script.drop_after_accept(path=SUBMIT_PATHS[provider])
    else:
        emu.script.fail_after_accept(int(fault), path=SUBMIT_PATHS[provider])
    try:
        Runner("sync", emu).generate("fox", size=(256, 256))
    except fluxkit.ProviderError:
        pass
    return 1, len(jobs_of(emu)) - 1


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tries", type=int, default=20)
    args = parser.parse_args()
    paths: dict[str, object] = {
        **{name: (lambda p, name=name: async_path(p, name)) for name in ASYNC_PATHS},
        "anyio scope (trio)": trio_scope,
        "Ctrl-C, sync, n=1": lambda p: ctrl_c(p, 1),
        "Ctrl-C, sync, n=3": lambda p: ctrl_c(p, 3),
        "deadline, sync": sync_deadline,
        "stream exit, sync": lambda p: stream_exit(p, "sync"),
        "stream exit, asyncio": lambda p: stream_exit(p, "asyncio"),
        "stream exit, trio": lambda p: stream_exit(p, "trio"),
    }
    total_jobs = total_orphans = 0
    print(f"cancel path x provider, {args.tries} tries each: jobs accepted / orphaned")
    for name, run in paths.items():
        cells = []
        for provider in sorted(PROVIDERS):
            jobs = lost = 0
            for _ in range(args.tries):
                accepted, orphaned = run(provider)  # type: ignore[operator]
                jobs, lost = jobs + accepted, lost + orphaned
            total_jobs, total_orphans = total_jobs + jobs, total_orphans + lost
            cells.append(f"{provider} {jobs:3d}/{lost}")
        print(f"  {name:<22} " + "   ".join(cells))
    print(f"total: {total_jobs} jobs accepted, {total_orphans} orphaned (target 0)")
    calls = extra = 0
    for provider in ("fake", "fal", "replicate"):
        for fault in ("502", "504", "drop"):
            for _ in range(args.tries):
                made, dup = duplicates(provider, fault)
                calls, extra = calls + made, extra + dup
    print(f"502/504/drop after acceptance: {calls} calls, {extra} duplicate jobs (target 0)")


if __name__ == "__main__":
    main()
