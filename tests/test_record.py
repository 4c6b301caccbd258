from __future__ import annotations

import os
from pathlib import Path

import pytest

import fluxkit
from fluxkit._record import write_atomic


@pytest.fixture(scope="module")
def result() -> fluxkit.GenerationResult:
    with fluxkit.Generator("fake") as generator:
        return generator.generate(
            "a lighthouse, ünïcode ✓",
            size="square",
            seed=41,
            steps=3,
            loras=[fluxkit.LoRA("hf://me/style/style.safetensors", scale=0.7)],
        )


@pytest.mark.parametrize("suffix", ["png", "jpg", "jpeg", "webp"])
def test_record_round_trips_through_every_format(
    result: fluxkit.GenerationResult, tmp_path: Path, suffix: str
) -> None:
    path = result.images[0].save(tmp_path / f"out.{suffix}")
    record = fluxkit.read_record(path)
    assert record is not None
    assert record["record_version"] == 1
    assert record["prompt"] == "a lighthouse, ünïcode ✓"
    assert record["seed"] == 41
    assert (record["width"], record["height"], record["steps"]) == (512, 512, 3)
    assert record["backend"] == "fake" and record["model"] == "fake-flux-dev"
    assert record["loras"] == [{"source": "hf://me/style/style.safetensors", "scale": 0.7}]
    assert record["request_id"] == result.request_ids[0]
    assert record["fluxkit_version"] == fluxkit.__version__


def test_png_save_is_lossless(result: fluxkit.GenerationResult, tmp_path: Path) -> None:
    import numpy as np

    path = result.images[0].save(tmp_path / "out.png")
    from PIL import Image

    assert np.array_equal(np.asarray(Image.open(path).convert("RGB")), result.images[0].to_numpy())


def test_file_without_record_reads_none(tmp_path: Path) -> None:
    from PIL import Image

    Image.new("RGB", (8, 8)).save(tmp_path / "plain.png")
    assert fluxkit.read_record(tmp_path / "plain.png") is None


def test_atomic_write_leaves_old_file_when_interrupted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "image.png"
    target.write_bytes(b"old")

    def crash(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        write_atomic(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["image.png"]  # no temp file left behind


def test_result_save_names_files_by_index_and_seed(
    result: fluxkit.GenerationResult, tmp_path: Path
) -> None:
    paths = result.save(tmp_path / "batch")
    assert [p.name for p in paths] == ["fluxkit-00-41.png"]


def test_images_display_in_notebooks(result: fluxkit.GenerationResult) -> None:
    assert result.images[0]._repr_png_().startswith(b"\x89PNG")
