from __future__ import annotations

from pathlib import Path

import pytest

from tests.lora import builders


@pytest.fixture
def diffusers_file(tmp_path: Path) -> Path:
    return builders.diffusers_lora(tmp_path / "pytorch_lora_weights.safetensors")


@pytest.fixture
def kohya_file(tmp_path: Path) -> Path:
    return builders.kohya_lora(tmp_path / "tok_kohya.safetensors", te=True)


@pytest.fixture
def xlabs_file(tmp_path: Path) -> Path:
    return builders.xlabs_lora(tmp_path / "xlabs.safetensors")


@pytest.fixture
def sdxl_file(tmp_path: Path) -> Path:
    return builders.sdxl_lora(tmp_path / "sdxl.safetensors")
