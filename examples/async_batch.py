"""Many prompts at once with AsyncGenerator, with a deadline and live progress.

python examples/async_batch.py
"""

from __future__ import annotations

import asyncio

import fluxkit

PROMPTS = ["a lighthouse at dusk", "a fox in the snow", "a city in the rain", "a desert road"]


async def main() -> None:
    async with fluxkit.AsyncGenerator("fake", max_concurrency=4) as gen:
        results = await asyncio.gather(
            *(
                gen.generate(prompt, size="square", seed=i, timeout=60)
                for i, prompt in enumerate(PROMPTS)
            )
        )
        for prompt, result in zip(PROMPTS, results, strict=True):
            print(f"{prompt!r}: seed {result.images[0].seed}")

        async for event in gen.stream("a paper boat", size="square", steps=4):
            if isinstance(event, fluxkit.Step):
                print(f"step {event.i}/{event.total}")
            elif isinstance(event, fluxkit.Completed):
                print(f"done: {len(event.result.images)} image(s)")


if __name__ == "__main__":
    asyncio.run(main())
