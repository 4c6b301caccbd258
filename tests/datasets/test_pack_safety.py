"""Packing never destroys an input or an earlier output, never reads outside its folder, and
leaves no temporary files behind (not even after being killed)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

import fluxkit
from fluxkit.datasets import extract_archive, pack_dataset
from tests.datasets.conftest import PhotoFactory

posix_only = pytest.mark.skipif(os.name == "nt", reason="symlinks and signals")


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@posix_only
def test_symlinks_out_of_the_folder_are_never_read(
    photos: Path, tmp_path: Path, make_photo: PhotoFactory
) -> None:
    secret = tmp_path / "secrets.txt"
    secret.write_text("AWS_SECRET=hunter2")
    (photos / "IMG_0001.txt").symlink_to(secret)  # a sidecar caption pointing outside
    outside_photo = make_photo("../outside.jpg", seed=99)
    (photos / "linked.jpg").symlink_to(outside_photo)
    (photos / "IMG_0002.txt").write_text("own caption of tok")
    (photos / "alias.txt").symlink_to(photos / "IMG_0002.txt")  # inside: allowed
    report = pack_dataset(photos, target="fal", trigger="tok", out=tmp_path / "o.zip", size=512)
    with zipfile.ZipFile(tmp_path / "o.zip") as zf:
        text = b"".join(zf.read(name) for name in zf.namelist())
    assert b"hunter2" not in text
    assert any("own caption of tok" in entry.caption for entry in report.images)
    dropped = {d.source: d.reason for d in report.dropped}
    assert dropped == {"linked.jpg": "symbolic link out of the folder: not read"}


def test_output_inside_or_containing_the_input_is_refused(photos: Path, tmp_path: Path) -> None:
    with pytest.raises(fluxkit.InvalidRequestError, match="inside the input folder"):
        pack_dataset(photos, target="kohya", trigger="tok", out=photos / "kohya")
    with pytest.raises(fluxkit.InvalidRequestError, match="contains the input"):
        pack_dataset(photos, target="kohya", trigger="tok", out=tmp_path, overwrite=True)
    listed = sorted(photos.iterdir())[:4]
    with pytest.raises(fluxkit.InvalidRequestError, match="contains the input"):
        pack_dataset(listed, target="kohya", trigger="tok", out=photos, overwrite=True)
    assert len(list(photos.iterdir())) == 12


def test_a_failing_pack_keeps_the_old_archive_and_leaves_no_temp(
    photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fluxkit.datasets import _pack

    out = tmp_path / "tok.zip"
    out.write_bytes(b"last week's dataset")
    calls = 0
    real = _pack.encode_jpeg

    def flaky(*args: object, **kwargs: object) -> bytes:
        nonlocal calls
        calls += 1
        if calls == 5:
            raise MemoryError("out of memory")
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(_pack, "encode_jpeg", flaky)
    with pytest.raises(MemoryError):
        pack_dataset(photos, target="fal", trigger="tok", out=out, overwrite=True, size=512)
    assert out.read_bytes() == b"last week's dataset"
    assert _names(tmp_path) == ["photos", "tok.zip"]


def test_replacing_a_folder_output_and_umask(photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "kohya"
    pack_dataset(photos, target="kohya", trigger="tok", out=out, size=512)
    with pytest.raises(fluxkit.InvalidRequestError, match="not empty"):
        pack_dataset(photos, target="kohya", trigger="tok", out=out, size=512)
    pack_dataset(photos, target="kohya", trigger="tok", out=out, size=512, overwrite=True)
    assert _names(tmp_path) == ["kohya", "photos"]  # no .old or .tmp left
    old = os.umask(0o022)
    try:
        archive = pack_dataset(photos, target="fal", trigger="tok", out=tmp_path, size=512).output
    finally:
        os.umask(old)
    assert archive is not None and archive.stat().st_mode & 0o777 == 0o644


_SLOW_PACK = textwrap.dedent(
    """
    import sys, time
    from fluxkit.datasets import _pack, pack_dataset

    real = _pack.encode_jpeg

    def slow(*args, **kwargs):
        print("image", flush=True)
        time.sleep(0.2)
        return real(*args, **kwargs)

    _pack.encode_jpeg = slow
    pack_dataset(sys.argv[1], target="fal", trigger="tok", out=sys.argv[2], overwrite=True,
                 size=512)
    """
)


@posix_only
def test_a_killed_pack_leaves_the_old_archive_and_its_temp_is_cleaned_next_time(
    photos: Path, tmp_path: Path
) -> None:
    out = tmp_path / "tok.zip"
    out.write_bytes(b"last week's dataset")
    child = subprocess.Popen(
        [sys.executable, "-c", _SLOW_PACK, str(photos), str(out)],
        stdout=subprocess.PIPE,
        cwd=Path(__file__).parents[2],
    )
    assert child.stdout is not None
    for _ in range(3):
        assert child.stdout.readline().strip() == b"image"
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert out.read_bytes() == b"last week's dataset"
    leftovers = [name for name in _names(tmp_path) if name.endswith(".tmp")]
    assert len(leftovers) == 1 and leftovers[0].startswith(".tok.zip.fluxkit-")
    pack_dataset(photos, target="fal", trigger="tok", out=out, overwrite=True, size=512)
    assert _names(tmp_path) == ["photos", "tok.zip"]
    assert zipfile.ZipFile(out).testzip() is None


@posix_only
def test_extract_never_replaces_files_or_follows_planted_links(
    photos: Path, tmp_path: Path
) -> None:
    archive = pack_dataset(photos, target="fal", trigger="tok", out=tmp_path / "a.zip", size=512)
    assert archive.output is not None
    dest = tmp_path / "dest"
    dest.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("do not touch")
    (dest / "0001.txt").symlink_to(victim)
    with pytest.raises(fluxkit.OutputExistsError):
        extract_archive(archive.output, dest)
    extract_archive(archive.output, dest, overwrite=True)
    assert victim.read_text() == "do not touch"
    assert not (dest / "0001.txt").is_symlink()
    assert (dest / "0001.txt").read_text().startswith("photo of tok")
