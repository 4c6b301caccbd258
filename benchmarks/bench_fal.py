"""fal backend benchmarks against ``FalEmulator`` on a loopback port.

1. Fan-out: 500 jobs of 50 ms at concurrency 32 through ``fluxkit.AsyncGenerator("fal")``;
   wall time vs ideal (500 / 32 x 50 ms; target <= 1.15 x), and the same workload through
   ``fal_client.AsyncClient.subscribe`` (plus the image download fluxkit also does). The
   emulator runs in its own process so client and server don't share one GIL.
2. Pickup latency: how long after the emulator marks a job complete the client asks for the
   result (both timestamps taken by the emulator; target <= 20 ms).
3. Upload cache: 100 img2img requests reusing one init image larger than the inline limit;
   uploads performed (target 1).

    python benchmarks/bench_fal.py [--jobs 500] [--concurrency 32] [--latency 0.05]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import multiprocessing
import os
import statistics
import time
from multiprocessing.connection import Connection
from typing import Any

import httpx

import fluxkit
from fluxkit._uploads import DEFAULT_INLINE_LIMIT, UploadCache
from fluxkit.testing.fal import FalEmulator

_SIZE = {"width": 256, "height": 256}


def serve(latency: float, conn: Connection) -> None:
    """The emulator process: serve until the parent says stop, then report its CPU time."""
    emulator = FalEmulator(api_key="bench")
    emulator.script.run_seconds = latency
    with emulator.serve() as url:
        conn.send(url)
        while conn.recv() != "stop":
            conn.send(time.process_time())
        conn.send(time.process_time())


async def fluxkit_fanout(
    url: str, jobs: int, concurrency: int, transport: httpx.AsyncBaseTransport | None = None
) -> tuple[float, float]:
    async with fluxkit.AsyncGenerator(
        "fal", api_key="bench", base_url=url, max_concurrency=concurrency, transport=transport
    ) as gen:
        await gen.generate("warm up", size=(256, 256), seed=7)

        async def one() -> None:  # max_concurrency bounds the calls in flight across generate()s
            await gen.generate("a fox", size=(256, 256), seed=7)

        started, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(one() for _ in range(jobs)))
        return time.perf_counter() - started, time.process_time() - cpu


async def fluxkit_httpx_pool_fanout(url: str, jobs: int, concurrency: int) -> tuple[float, float]:
    limits = httpx.Limits(max_connections=concurrency + 4, max_keepalive_connections=concurrency)
    return await fluxkit_fanout(url, jobs, concurrency, httpx.AsyncHTTPTransport(limits=limits))


async def fal_client_fanout(url: str, jobs: int, concurrency: int) -> tuple[float, float]:
    import fal_client
    import fal_client.client as fal_module

    # fal-client has no base URL option; its URL formats are module globals read per call.
    fal_module.QUEUE_URL_FORMAT = fal_module.RUN_URL_FORMAT = f"{url}/"
    client = fal_client.AsyncClient(key="bench")
    arguments = {"prompt": "a fox", "image_size": _SIZE, "seed": 7, "output_format": "png"}
    async with httpx.AsyncClient() as downloads:

        async def job() -> None:
            result: dict[str, Any] = await client.subscribe("fal-ai/flux/dev", arguments)
            (await downloads.get(result["images"][0]["url"])).raise_for_status()

        await job()
        limiter = asyncio.Semaphore(concurrency)

        async def one() -> None:
            async with limiter:
                await job()

        started, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(one() for _ in range(jobs)))
        return time.perf_counter() - started, time.process_time() - cpu


async def http_floor(url: str, concurrency: int, requests: int = 2000) -> float:
    """Plain httpx GETs of a small file at ``concurrency``: this machine's request rate."""
    limits = httpx.Limits(
        max_connections=2 * concurrency, max_keepalive_connections=2 * concurrency
    )
    async with httpx.AsyncClient(limits=limits) as client:
        limiter = asyncio.Semaphore(concurrency)

        async def one() -> None:
            async with limiter:
                (await client.get(f"{url}/files/missing")).read()

        await one()
        started = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(requests)))
        return requests / (time.perf_counter() - started)


def fanout(jobs: int, concurrency: int, latency: float) -> None:
    parent, child = multiprocessing.Pipe()
    server = multiprocessing.Process(target=serve, args=(latency, child), daemon=True)
    server.start()
    url = parent.recv()
    results = {}
    try:
        for name, run in (
            ("fluxkit (httpx-aiohttp)", fluxkit_fanout),
            ("fluxkit (httpx pool)", fluxkit_httpx_pool_fanout),
            ("fal_client subscribe", fal_client_fanout),
        ):
            parent.send("cpu")
            server_cpu = parent.recv()
            wall, client_cpu = asyncio.run(run(url, jobs, concurrency))
            parent.send("cpu")
            results[name] = (wall, client_cpu, parent.recv() - server_cpu)
        rate = asyncio.run(http_floor(url, concurrency))
    finally:
        parent.send("stop")
        parent.recv()
        server.join(timeout=5)
    ideal = jobs / concurrency * latency
    print(
        f"[1] {jobs} jobs x {latency * 1000:.0f} ms, concurrency {concurrency}: "
        f"ideal {ideal:.3f} s (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)"
    )
    for name, (wall, client_cpu, server_cpu) in results.items():
        print(
            f"    {name:<24} wall {wall:.3f} s  ratio {wall / ideal:.2f}  "
            f"CPU/job client {client_cpu / jobs * 1000:.2f} ms, emulator {server_cpu / jobs * 1000:.2f} ms"
        )
    print(
        f"    plain httpx here: {rate:.0f} requests/s at concurrency {concurrency}; fluxkit makes 4"
        f" per job (submit, status stream, result, image), a floor of {4 * jobs / rate:.2f} s"
    )
    print("    target: fluxkit ratio <= 1.15")


def pickup(samples: int = 30, run_seconds: float = 0.2) -> None:
    emulator = FalEmulator(api_key="bench")
    emulator.script.run_seconds = run_seconds
    with emulator.serve() as url:
        with fluxkit.Generator("fal", api_key="bench", base_url=url) as gen:
            for index in range(samples):
                gen.generate("a fox", size=(256, 256), seed=index % 3)
    delays = []
    for job in emulator.jobs.values():
        fetch = emulator.requests(rf"/requests/{job.id}$", method="GET")[0]
        delays.append((fetch.received_at - job.finished_at) * 1000)
    delays.sort()
    p95 = delays[int(0.95 * (len(delays) - 1))]
    print(
        f"[2] pickup after completion, {samples} jobs of {run_seconds * 1000:.0f} ms: "
        f"median {statistics.median(delays):.1f} ms, p95 {p95:.1f} ms, max {delays[-1]:.1f} ms "
        f"(target <= 20 ms; fal-client polls every 100 ms)"
    )


def uploads(requests: int = 100) -> None:
    import numpy as np
    from PIL import Image

    pixels = np.random.default_rng(0).integers(0, 255, (384, 384, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    init = buffer.getvalue()
    assert len(init) > DEFAULT_INLINE_LIMIT
    emulator = FalEmulator(api_key="bench")
    cache = UploadCache()

    async def run() -> None:
        async with emulator.async_generator(
            api_key="bench",
            upload_cache=cache,
            max_concurrency=16,
        ) as gen:
            limiter = asyncio.Semaphore(16)

            async def one(seed: int) -> None:
                async with limiter:
                    await gen.generate("a fox", image=init, strength=0.6, seed=seed % 4)

            await asyncio.gather(*(one(seed) for seed in range(requests)))

    asyncio.run(run())
    print(
        f"[3] {requests} img2img requests, one {len(init) // 1024} KiB init image: "
        f"{emulator.uploads} upload(s), {cache.hits} cache hits (target 1 upload)"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--only", choices=("fanout", "pickup", "uploads"))
    args = parser.parse_args()
    if args.only in (None, "fanout"):
        fanout(args.jobs, args.concurrency, args.latency)
    if args.only in (None, "pickup"):
        pickup()
    if args.only in (None, "uploads"):
        uploads()


if __name__ == "__main__":
    main()
