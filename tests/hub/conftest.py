from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fluxkit.testing.hub import HubEmulator, hub_client_settings
from tests.lora import builders


@pytest.fixture
def hub() -> HubEmulator:
    return HubEmulator(tokens={"hf_test": "me"})


@pytest.fixture
def endpoint(hub: HubEmulator) -> Iterator[str]:
    """The emulator on a loopback port, with huggingface_hub set to use LFS and go online."""
    with hub.serve() as url, hub_client_settings():
        yield url


@pytest.fixture
def lora_file(tmp_path: Path) -> Path:
    return builders.kohya_lora(tmp_path / "tok.safetensors")


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    from tests.datasets.conftest import gps_exif, photo_array

    path = tmp_path / "sample.jpg"
    photo_array(3, (640, 480)).save(path, "JPEG", exif=gps_exif().tobytes())
    return path
