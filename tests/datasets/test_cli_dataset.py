from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from fluxkit.cli import main
from tests.datasets.conftest import PhotoFactory


def test_pack_prints_the_report(
    photos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "tok.zip"
    code = main(
        [
            "dataset",
            "pack",
            str(photos),
            "--target",
            "fal",
            "--trigger",
            "tok",
            "--caption",
            "a photo of {trigger}",
            "--size",
            "512",
            "-o",
            str(out),
        ]
    )
    assert code == 0
    text = capsys.readouterr().out
    assert "12 kept, 0 dropped" in text and "EXIF orientation applied (3 images)" in text
    assert zipfile.ZipFile(out).read("0001.txt") == b"a photo of tok"


def test_refused_dataset_exits_2(
    make_photo: PhotoFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_photo("a.jpg", seed=1)
    code = main(
        [
            "dataset",
            "pack",
            str(tmp_path / "photos"),
            "--target",
            "kohya",
            "--trigger",
            "tok",
            "-o",
            str(tmp_path / "out"),
        ]
    )
    assert code == 2
    assert "REFUSED" in capsys.readouterr().out
    assert not (tmp_path / "out").exists()


def test_bad_target_is_an_argparse_error(photos: Path, tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["dataset", "pack", str(photos), "--target", "civitai", "--trigger", "t", "-o", "x"])
    assert caught.value.code == 2
