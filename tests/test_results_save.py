"""Saving results never loses a file: free names in folders, typed refusal for named files."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

import fluxkit
from fluxkit._types import GenerationRequest


def _png(colour: tuple[int, int, int]) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def _result(
    *seeds: int | None, colour: tuple[int, int, int] = (200, 10, 10)
) -> fluxkit.GenerationResult:
    images = tuple(
        fluxkit.GeneratedImage(
            seed=seed, width=16, height=16, record={"seed": seed}, _data=_png(colour)
        )
        for seed in seeds
    )
    return fluxkit.GenerationResult(
        images=images, request=GenerationRequest(prompt="a fox"), backend="fake", model="m"
    )


def test_three_runs_with_a_fixed_seed_keep_three_files(tmp_path: Path) -> None:
    names = [[p.name for p in _result(7, 8).save(tmp_path)] for _ in range(3)]
    assert names == [
        ["fluxkit-00-7.png", "fluxkit-01-8.png"],
        ["fluxkit-00-7-1.png", "fluxkit-01-8-1.png"],
        ["fluxkit-00-7-2.png", "fluxkit-01-8-2.png"],
    ]
    assert len(list(tmp_path.iterdir())) == 6


def test_unknown_seed_is_left_out_of_the_name(tmp_path: Path) -> None:
    assert [p.name for p in _result(None).save(tmp_path, prefix="fox")] == ["fox-00.png"]


def test_overwrite_reuses_the_plain_names(tmp_path: Path) -> None:
    _result(7).save(tmp_path)
    paths = _result(7, colour=(0, 0, 255)).save(tmp_path, overwrite=True)
    assert [p.name for p in paths] == ["fluxkit-00-7.png"]
    from PIL import Image

    assert Image.open(paths[0]).convert("RGB").getpixel((0, 0)) == (0, 0, 255)
    assert len(list(tmp_path.iterdir())) == 1


def test_an_existing_named_file_is_refused_and_kept(tmp_path: Path) -> None:
    target = tmp_path / "fox.png"
    target.write_bytes(b"my earlier render")
    image = _result(7).image
    with pytest.raises(fluxkit.OutputExistsError, match="overwrite=True") as caught:
        image.save(target)
    assert isinstance(caught.value, FileExistsError)
    assert target.read_bytes() == b"my earlier render"
    assert [p.name for p in tmp_path.iterdir()] == ["fox.png"]
    image.save(target, overwrite=True)
    assert fluxkit.read_record(target) == {"record_version": 1, "seed": 7}


def test_saved_images_follow_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        path = _result(7).image.save(tmp_path / "fox.png")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644


def test_a_failing_encoder_leaves_no_file(tmp_path: Path) -> None:
    broken = fluxkit.GeneratedImage(seed=1, width=16, height=16, _data=b"not an image")
    with pytest.raises(Exception):  # noqa: B017 - whatever Pillow raises for garbage
        broken.save(tmp_path / "x.png")
    with pytest.raises(ValueError, match="unsupported format"):
        _result(1).image.save(tmp_path / "x.png", format="gif")
    assert list(tmp_path.iterdir()) == []
