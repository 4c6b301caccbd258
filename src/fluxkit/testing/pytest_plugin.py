"""pytest fixtures for apps built on fluxkit (registered through the ``pytest11`` entry point).

```python
def test_my_app_makes_two_images(fake_generator):
    result = fake_generator.generate("a fox", n=2, seed=1)
    assert [image.seed for image in result.images] == [1, 2]
```
"""

from __future__ import annotations

from collections.abc import Iterator
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
    """``fluxkit.Generator("fake")`` bound to `fake_emulator`, in-process."""
    from fluxkit._generator import Generator

    with Generator("fake", transport=fake_emulator.transport()) as generator:
        yield generator


@pytest.fixture
def async_fake_generator(fake_emulator: FakeProviderEmulator) -> Iterator[AsyncGenerator]:
    """``fluxkit.AsyncGenerator("fake")`` bound to `fake_emulator`, for async tests.

    A plain (sync) fixture on purpose: it works under pytest-asyncio in strict or auto mode
    and under anyio's plugin (asyncio or trio) alike, because an ``AsyncGenerator`` opens its
    HTTP client lazily, inside the test's own event loop. It is closed after the test.
    """
    import anyio

    from fluxkit._generator import AsyncGenerator

    generator = AsyncGenerator("fake", transport=fake_emulator.transport())
    try:
        yield generator
    finally:
        # The emulator's transport holds no sockets, so closing from a fresh loop is safe.
        anyio.run(generator.aclose)


@pytest.fixture
def fake_server(fake_emulator: FakeProviderEmulator) -> Iterator[str]:
    """`fake_emulator` served on a real loopback port; yields its base URL."""
    with fake_emulator.serve() as url:
        yield url
