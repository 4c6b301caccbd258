"""Run one scenario through ``Generator``, ``AsyncGenerator`` under asyncio, and under trio.

Sync/async parity is tested by behaviour: a scenario calls ``runner.generate(...)`` or
``runner.stream(...)`` and checks what happened at the emulator, and the same scenario runs
three times (``KINDS``). The async runners make their generator inside the event loop, as an
application would.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import anyio

import fluxkit
from fluxkit.testing import Emulator

KINDS = ("sync", "asyncio", "trio")


class Runner:
    """``generate``/``stream`` on one emulator, through the generator ``kind`` names."""

    def __init__(self, kind: str, emulator: Emulator, **options: Any) -> None:
        self.kind, self.emulator, self.options = kind, emulator, options

    def generate(self, prompt: str, **params: Any) -> fluxkit.GenerationResult:
        if self.kind == "sync":
            with self.emulator.generator(**self.options) as gen:
                return gen.generate(prompt, **params)

        async def main() -> fluxkit.GenerationResult:
            async with self.emulator.async_generator(**self.options) as agen:
                return await agen.generate(prompt, **params)

        return anyio.run(main, backend=self.kind)

    def stream(
        self,
        prompt: str,
        *,
        stop: Callable[[fluxkit.Event], bool] = lambda event: False,
        **params: Any,
    ) -> list[fluxkit.Event]:
        """The events, leaving the stream right after the first one ``stop`` accepts."""
        seen: list[fluxkit.Event] = []
        if self.kind == "sync":
            with self.emulator.generator(**self.options) as gen:
                with contextlib.closing(gen.stream(prompt, **params)) as events:  # type: ignore[type-var]
                    for event in events:
                        seen.append(event)
                        if stop(event):
                            break
            return seen

        async def main() -> list[fluxkit.Event]:
            async with self.emulator.async_generator(**self.options) as agen:
                async with agen.stream(prompt, **params) as events:  # type: ignore[attr-defined]
                    async for event in events:
                        seen.append(event)
                        if stop(event):
                            break
            return seen

        return anyio.run(main, backend=self.kind)
