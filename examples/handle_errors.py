"""What failures look like: bad input before any call, provider errors, deadlines.

python examples/handle_errors.py
"""

from __future__ import annotations

import fluxkit
from fluxkit.testing import FakeProviderEmulator


def main() -> None:
    emulator = FakeProviderEmulator()
    with fluxkit.Generator(
        "fake", transport=emulator.transport(), base_url=emulator.base_url
    ) as gen:
        try:
            gen.generate("a fox", steps=500)
        except fluxkit.InvalidRequestError as error:  # also a ValueError; nothing was sent
            print(f"refused before sending: {error.field} ({error.allowed})")

        emulator.script.fail_next(429, count=2, retry_after=0.05)  # retried automatically
        result = gen.generate("a fox", size="square", seed=1)
        print(f"succeeded after rate limiting: seed {result.images[0].seed}")

        emulator.script.queue_seconds = 30
        try:
            gen.generate("a fox", size="square", timeout=0.5)
        except fluxkit.DeadlineExceeded as error:  # also a TimeoutError
            print(f"deadline: cancelled at the provider: {error.cancelled}")


if __name__ == "__main__":
    main()
