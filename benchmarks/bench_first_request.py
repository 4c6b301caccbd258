"""Time from ``import fluxkit`` to the first request on the wire, in a fresh interpreter.

What a CLI user and a serverless cold start feel: interpreter start, ``import fluxkit``,
building a ``Generator`` and sending the first submission. A loopback server records when the
request arrives; the child process records when it started.

    python benchmarks/bench_first_request.py [--runs 11]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

from fluxkit.testing import FakeProviderEmulator

CHILD = """
import time, sys
t0 = time.time()
import fluxkit
t1 = time.time()
gen = fluxkit.{cls}("fake", base_url=sys.argv[1], timeout=30)
{call}
print(t0, t1)
"""
SYNC_CALL = 'gen.generate("a fox", size=(256, 256), seed=1)'
ASYNC_CALL = "import asyncio\nasyncio.run(gen.generate('a fox', size=(256, 256), seed=1))"


def measure(url: str, emulator: FakeProviderEmulator, cls: str, call: str) -> tuple[float, float]:
    """(import ms, import-to-first-request ms) for one fresh process."""
    before = len(emulator.log)
    out = subprocess.run(
        [sys.executable, "-c", CHILD.format(cls=cls, call=call), url],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    started, imported = float(out[0]), float(out[1])
    first = emulator.log[before]
    # received_at is on the emulator's monotonic clock: convert through "now" on both clocks
    arrived = time.time() - (time.monotonic() - first.received_at)
    return (imported - started) * 1000, (arrived - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=11)
    args = parser.parse_args()
    emulator = FakeProviderEmulator()
    with emulator.serve() as url:
        for cls, call in (("Generator", SYNC_CALL), ("AsyncGenerator", ASYNC_CALL)):
            samples = [measure(url, emulator, cls, call) for _ in range(args.runs)]
            imports = statistics.median(s[0] for s in samples)
            firsts = statistics.median(s[1] for s in samples)
            print(
                f"{cls:<15} import fluxkit {imports:6.1f} ms; import -> first request sent "
                f"{firsts:6.1f} ms (median of {args.runs} fresh processes)"
            )


if __name__ == "__main__":
    main()
