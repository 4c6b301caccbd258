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


def test_bad_target_is_an_argparse_error(
    photos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["dataset", "pack", str(photos), "--target", "civitai", "--trigger", "t", "-o", "x"]
    assert main(argv) == 2
    assert "invalid choice: 'civitai'" in capsys.readouterr().err


def _pack(source: Path, out: Path, *extra: str) -> list[str]:
    return [
        "dataset",
        "pack",
        str(source),
        "--target",
        "fal",
        "--trigger",
        "tok",
        *extra,
        "--size",
        "512",
        "-o",
        str(out),
    ]


def test_packing_an_archive_onto_itself_never_destroys_it(
    photos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    archive = tmp_path / "photos.zip"
    assert main(_pack(photos, archive)) == 0
    original = archive.read_bytes()
    assert main(_pack(archive, archive)) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(_pack(archive, archive, "--overwrite")) == 2
    assert "is the input" in capsys.readouterr().err
    assert archive.read_bytes() == original


def test_existing_archive_needs_overwrite(
    photos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "tok.zip"
    out.write_bytes(b"an archive I care about")
    assert main(_pack(photos, out)) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "--overwrite" in err and err.count("\n") == 1
    assert out.read_bytes() == b"an archive I care about"
    assert main(_pack(photos, out, "--overwrite")) == 0
    assert zipfile.ZipFile(out).read("0001.txt").startswith(b"photo of tok")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photos", "tok.zip"]
