"""Batch benchmarks: journal overhead per job, and a large batch against the fake emulator.

1. Journal: the writes a job costs (plan, claim, submitting, submitted, completed, saved) on a
   WAL SQLite file, per job (target <= 1 ms).
2. A batch of N jobs (default 10 000) at concurrency 64 against the fake emulator on loopback in
   its own process: wall time against ideal (N / 64 x the job's run time) and the peak RSS of
   the batch process, sampled as it runs (must not grow with N).

    python benchmarks/bench_batch.py [--jobs 10000] [--concurrency 64] [--latency 0.05]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import tempfile
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path


def journal_overhead(jobs: int = 2000) -> float:
    from fluxkit.batch import expand
    from fluxkit.batch._journal import Journal

    with tempfile.TemporaryDirectory() as folder:
        planned = expand([f"prompt {i}" for i in range(jobs)], {"size": [256, 256]})
        with Journal.open(Path(folder) / "journal.sqlite") as journal:
            started = time.perf_counter()
            journal.plan(planned)
            for key, _, _ in planned:
                (job,) = journal.claim(("planned",), 1)
                journal.submitting(job.key, "fake")
                journal.submitted(job.key, f"id-{key}")
                journal.completed(job.key, [], 0.0, "reported")
                journal.saved(job.key, [f"{key}.png"], ["0" * 64])
            return (time.perf_counter() - started) / jobs


def serve(latency: float, conn: Connection) -> None:
    from fluxkit.testing import FakeProviderEmulator

    emulator = FakeProviderEmulator()
    emulator.script.run_seconds = latency
    with emulator.serve() as url:
        conn.send(url)
        conn.recv()


def big_batch(jobs: int, concurrency: int, latency: float) -> None:
    import fluxkit
    from fluxkit.batch import run_batch

    parent, child = multiprocessing.Pipe()
    server = multiprocessing.Process(target=serve, args=(latency, child), daemon=True)
    server.start()
    url = parent.recv()
    peak = [0]
    done = threading.Event()

    def sample() -> None:  # current RSS over time: growth with N shows here, not in ru_maxrss
        while not done.wait(0.5):
            with open("/proc/self/statm") as handle:
                pages = int(handle.read().split()[1])
            peak[0] = max(peak[0], pages * resource.getpagesize())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    marks: list[tuple[int, float]] = []
    try:
        with tempfile.TemporaryDirectory() as out:
            requests = [{"prompt": f"job {i}", "seed": i} for i in range(jobs)]
            count = [0]

            def progress(job: object, state: str) -> None:
                count[0] += 1
                if count[0] % max(1, jobs // 10) == 0:
                    marks.append((count[0], peak[0] / 2**20))

            with fluxkit.Generator("fake", base_url=url, max_concurrency=concurrency) as gen:
                started = time.perf_counter()
                summary = run_batch(
                    requests,
                    gen,
                    out,
                    defaults={"size": [256, 256]},
                    concurrency=concurrency,
                    on_progress=progress,
                )
                wall = time.perf_counter() - started
            index_lines = sum(1 for _ in (Path(out) / "index.jsonl").open())
    finally:
        done.set()
        parent.send("stop")
        server.join(timeout=5)
    ideal = jobs / concurrency * latency
    print(
        f"[2] {jobs} jobs x {latency * 1000:.0f} ms at concurrency {concurrency}: wall {wall:.1f} s, "
        f"ideal {ideal:.1f} s ({wall / ideal:.1f}x), {wall / jobs * 1000:.1f} ms per job; "
        f"saved {summary.saved}, index lines {index_lines}"
    )
    print(f"    RSS of the batch process as jobs finished (jobs, MiB): {json.dumps(marks)}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--latency", type=float, default=0.05)
    args = parser.parse_args()
    per_job = journal_overhead()
    print(f"[1] journal: {per_job * 1000:.3f} ms per job for its 6 writes (target <= 1 ms)")
    big_batch(args.jobs, args.concurrency, args.latency)


if __name__ == "__main__":
    main()
