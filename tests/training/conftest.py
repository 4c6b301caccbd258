from __future__ import annotations

from pathlib import Path

import pytest

from fluxkit.testing.fal import FalEmulator
from fluxkit.testing.replicate import ReplicateEmulator
from fluxkit.training import LoRALibrary
from tests.datasets.conftest import photo_array


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """Five distinct 512 px photos: enough for the dataset toolkit's checks."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for seed in range(5):
        photo_array(seed, (640, 512)).save(folder / f"p{seed}.jpg", "JPEG")
    return folder


@pytest.fixture
def library(tmp_path: Path) -> LoRALibrary:
    return LoRALibrary(tmp_path / "library")


@pytest.fixture
def fal() -> FalEmulator:
    emu = FalEmulator(api_key="test")
    emu.script.run_seconds = 0.1
    return emu


@pytest.fixture
def replicate_emu() -> ReplicateEmulator:
    emu = ReplicateEmulator(api_key="test")
    emu.script.run_seconds = 0.1
    return emu
