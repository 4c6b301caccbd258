"""`import fluxkit` cost over a bare interpreter start (target: <= 100 ms).

python benchmarks/bench_import.py
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time


def median_seconds(code: str, runs: int = 21) -> float:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def main() -> None:
    bare = median_seconds("pass")
    loaded = median_seconds("import fluxkit")
    with_generator = median_seconds("import fluxkit; fluxkit.Generator")
    print(f"bare interpreter:        {bare * 1000:7.1f} ms")
    print(
        f"import fluxkit:          {loaded * 1000:7.1f} ms  (+{(loaded - bare) * 1000:.1f} ms, target <= 100)"
    )
    print(
        f"+ first use of Generator {with_generator * 1000:7.1f} ms  (+{(with_generator - bare) * 1000:.1f} ms)"
    )


if __name__ == "__main__":
    main()
