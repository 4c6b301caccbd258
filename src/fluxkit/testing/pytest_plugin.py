"""pytest fixtures for apps built on fluxkit (registered through the ``pytest11`` entry point).

```python
def test_my_app_makes_two_images(fake_generator):
    result = fake_generator.generate("a fox", n=2, seed=1)
    assert [image.seed for image in result.images] == [1, 2]
```
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from fluxkit._generator import AsyncGenerator, Generator
    from fluxkit.testing.fake import FakeProviderEmulator

__all__ = ["async_fake_generator", "fake_emulator", "fake_generator", "fake_server"]


@pytest.fixture
def fake_emulator() -> FakeProviderEmulator:
    """A fresh fake provider: script it (``.script``), inspect it (``.log``, ``.cancelled``)."""
    from fluxkit.testing.fake import FakeProviderEmulator

    return FakeProviderEmulator()


@pytest.fixture
def fake_generator(fake_emulator: FakeProviderEmulator) -> Iterator[Generator]:
    """``fluxkit.Generator("fake")`` bound to :func:`fake_emulator`, in-process."""
    from fluxkit._generator import Generator

    with Generator("fake", transport=fake_emulator.transport()) as generator:
        yield generator


@pytest.fixture
async def async_fake_generator(
    fake_emulator: FakeProviderEmulator,
) -> AsyncIterator[AsyncGenerator]:
    """``fluxkit.AsyncGenerator("fake")`` bound to :func:`fake_emulator` (needs an async test runner)."""
    from fluxkit._generator import AsyncGenerator

    async with AsyncGenerator("fake", transport=fake_emulator.transport()) as generator:
        yield generator


@pytest.fixture
def fake_server(fake_emulator: FakeProviderEmulator) -> Iterator[str]:
    """:func:`fake_emulator` served on a real loopback port; yields its base URL."""
    with fake_emulator.serve() as url:
        yield url
