"""Fan-out: 500 fake jobs, 50 ms each, concurrency 32, async, over a loopback port.

Target: wall time <= 1.15 x ideal, ideal = 500 / 32 x 50 ms. The emulator runs in its own
process so client and server don't share one GIL. Run once with AsyncGenerator's default
transport (httpx-aiohttp) and once with httpx's own pool, in the same run.

    python benchmarks/bench_fanout.py [--jobs 500] [--concurrency 32] [--latency 0.05]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import multiprocessing
import time
from multiprocessing.connection import Connection

import httpx

import fluxkit


def serve(latency: float, conn: Connection) -> None:
    from fluxkit.testing import FakeProviderEmulator

    emulator = FakeProviderEmulator()
    emulator.script.run_seconds = latency
    with emulator.serve() as url:
        conn.send(url)
        conn.recv()  # until the parent says stop


async def run(
    url: str | None,
    jobs: int,
    concurrency: int,
    latency: float = 0.05,
    transport: str = "default",
) -> tuple[float, float]:
    """(wall seconds, client CPU seconds) for ``jobs`` generations."""
    options: dict[str, object] = {"base_url": url}
    if url is None:  # in-process: the same emulator behind an httpx transport, no sockets
        from fluxkit.testing import FakeProviderEmulator

        emulator = FakeProviderEmulator()
        emulator.script.run_seconds = latency
        options = {"transport": emulator.transport()}
    elif transport == "httpx":
        limits = httpx.Limits(
            max_connections=concurrency + 4, max_keepalive_connections=concurrency
        )
        options["transport"] = httpx.AsyncHTTPTransport(limits=limits)
    async with fluxkit.AsyncGenerator("fake", max_concurrency=concurrency, **options) as gen:  # type: ignore[arg-type]
        await gen.generate("warm up", size=(256, 256), steps=1, seed=1)

        async def one() -> None:  # the generator's max_concurrency bounds calls in flight
            await gen.generate("a fox", size=(256, 256), steps=1, seed=1)

        started, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(one() for _ in range(jobs)))
        return time.perf_counter() - started, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--in-process", action="store_true", help="no sockets: fluxkit's own cost")
    args = parser.parse_args()
    ideal = math.ceil(args.jobs / args.concurrency) * args.latency
    if args.in_process:
        wall, _ = asyncio.run(run(None, args.jobs, args.concurrency, args.latency))
        print(f"in-process: wall {wall:.3f} s, ideal {ideal:.3f} s, ratio {wall / ideal:.2f}")
        return

    parent, child = multiprocessing.Pipe()
    server = multiprocessing.Process(target=serve, args=(args.latency, child), daemon=True)
    server.start()
    url = parent.recv()
    results = {}
    try:
        for transport in ("default", "httpx"):
            results[transport] = asyncio.run(
                run(url, args.jobs, args.concurrency, args.latency, transport)
            )
    finally:
        parent.send("stop")
        server.join(timeout=5)
    print(f"{args.jobs} jobs, concurrency {args.concurrency}, {args.latency * 1000:.0f} ms each")
    for name, (wall, cpu) in results.items():
        label = "httpx-aiohttp (default)" if name == "default" else "httpx's own pool"
        print(
            f"  {label:<24} wall {wall:.3f} s, ideal {ideal:.3f} s, ratio {wall / ideal:.2f}, "
            f"client CPU {cpu / args.jobs * 1000:.2f} ms/job (target <= 1.15)"
        )


if __name__ == "__main__":
    main()
