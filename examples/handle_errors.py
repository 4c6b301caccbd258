"""What failures look like: bad input before any call, provider errors, deadlines, partial
results and submissions that got no clear answer — all offline, against fluxkit's emulators.

python examples/handle_errors.py
"""

from __future__ import annotations

import fluxkit
from fluxkit.testing import FakeProviderEmulator, FalEmulator


def main() -> None:
    emu = FakeProviderEmulator()
    with emu.generator() as gen:  # fluxkit.Generator("fake", transport=emu.transport())
        try:
            gen.generate("a fox", steps=500)
        except fluxkit.InvalidRequestError as error:  # also a ValueError; nothing was sent
            print(f"refused before sending: {error.field} ({error.allowed})")

        emu.script.fail_next(429, count=2, retry_after=0.05)  # retried automatically
        result = gen.generate("a fox", size="square", seed=1)
        print(f"succeeded after rate limiting: seed {result.images[0].seed}")

        emu.script.queue_seconds = 30
        try:
            gen.generate("a fox", size="square", timeout=0.5)
        except fluxkit.DeadlineExceeded as error:  # also a TimeoutError
            print(f"deadline: cancelled at the provider: {error.cancelled}")

    # fal makes one job per image: the third of four fails, the other three are kept.
    fal = FalEmulator()
    fal.script.fail_jobs(1, "out of memory", skip=2)
    with fal.generator(max_concurrency=1) as gen:
        result = gen.generate("a fox", size="square", seed=10, n=4)
        print(f"partial: seeds {result.seeds}, ok={result.ok}")
        for failure in result.failures:
            print(f"  call {failure.index} (seeds {failure.seeds}) failed: {failure.error}")

    # A gateway answers 504 after fal took the job: fluxkit does not resend (no double bill).
    fal = FalEmulator()
    fal.script.fail_after_accept(504)
    with fal.generator() as gen:
        try:
            gen.generate("a fox", size="square")
        except fluxkit.JobMayExistError as error:
            print(f"maybe accepted, not resent: {len(fal.jobs)} job at {error.url}")


if __name__ == "__main__":
    main()
