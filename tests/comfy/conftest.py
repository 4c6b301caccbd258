from __future__ import annotations

from typing import Any

import pytest

from tests.comfy import kit


@pytest.fixture(scope="session")
def comfy() -> Any:
    """The real ComfyUI server (tiny models, CPU)."""
    return kit.server()


@pytest.fixture(scope="session")
def comfykit() -> Any:
    return kit.kit()
