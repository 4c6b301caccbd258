"""Suite-wide fixtures: no provider credentials or settings leak in from the environment."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

_PROVIDER_VARIABLES = (
    "FAL_KEY",
    "FAL_KEY_ID",
    "FAL_KEY_SECRET",
    "TOGETHER_API_KEY",
    "REPLICATE_API_TOKEN",
    "RUNPOD_API_KEY",
    "HF_TOKEN",
    "FLUXKIT_BACKEND",
)


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in _PROVIDER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    yield
