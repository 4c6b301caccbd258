"""Reading archives back is safe: zip-slip, symlinks, bombs and lying headers are refused."""

from __future__ import annotations

import io
import stat
import struct
import zipfile
import zlib
from pathlib import Path

import pytest
from PIL import Image

from fluxkit.datasets import ArchiveLimits, UnsafeArchiveError, extract_archive, iter_archive
from fluxkit.datasets._images import DecodeError, decode


def _zip(path: Path, members: dict[str, bytes], *, symlink: str | None = None) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        if symlink:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, "/etc/passwd")
    return path


@pytest.mark.parametrize(
    "name", ["../evil.txt", "a/../../evil.txt", "/abs.txt", "C:/win.txt", "..\\evil.txt"]
)
def test_zip_slip_names_are_refused(tmp_path: Path, name: str) -> None:
    archive = _zip(tmp_path / "a.zip", {name: b"x"})
    with pytest.raises(UnsafeArchiveError, match="zip-slip"):
        extract_archive(archive, tmp_path / "out")
    assert not (tmp_path / "evil.txt").exists()


def test_symlinks_are_refused(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "a.zip", {"ok.txt": b"x"}, symlink="link")
    with pytest.raises(UnsafeArchiveError, match="symbolic link"):
        list(iter_archive(archive))


def test_size_and_ratio_limits(tmp_path: Path) -> None:
    bomb = _zip(tmp_path / "bomb.zip", {"zeros.bin": b"\x00" * 5_000_000})
    with pytest.raises(UnsafeArchiveError, match="zip bomb"):
        list(iter_archive(bomb))
    big = _zip(tmp_path / "big.zip", {"a.bin": bytes(range(256)) * 400})
    with pytest.raises(UnsafeArchiveError, match="larger than the limit"):
        list(iter_archive(big, ArchiveLimits(max_member_bytes=1000)))
    many = _zip(tmp_path / "many.zip", {f"{i}.txt": b"x" for i in range(5)})
    with pytest.raises(UnsafeArchiveError, match="more than 3 members"):
        list(iter_archive(many, ArchiveLimits(max_members=3)))


def test_lying_header_is_caught_while_reading(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "lie.zip", {"a.bin": bytes(range(256)) * 40})
    raw = bytearray(archive.read_bytes())
    # Patch the central directory's uncompressed size of the only member down to 10 bytes.
    central = raw.rfind(b"PK\x01\x02")
    raw[central + 24 : central + 28] = (10).to_bytes(4, "little")
    archive.write_bytes(bytes(raw))
    with pytest.raises(UnsafeArchiveError):
        list(iter_archive(archive, ArchiveLimits(max_member_bytes=100)))


def test_macos_cruft_and_directories_are_skipped(tmp_path: Path) -> None:
    archive = _zip(
        tmp_path / "a.zip",
        {"__MACOSX/._a.jpg": b"x", "dir/": b"", "dir/a.txt": b"hi", "._b.jpg": b"x"},
    )
    assert dict(iter_archive(archive)) == {"dir/a.txt": b"hi"}
    assert extract_archive(archive, tmp_path / "out") == [(tmp_path / "out/dir/a.txt").resolve()]


def test_not_a_zip_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "x.zip"
    path.write_bytes(b"nope")
    with pytest.raises(ValueError, match="readable .zip"):
        list(iter_archive(path))


def _png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` (what a bomb looks like)."""
    buffer = io.BytesIO()
    Image.new("L", (1, 1)).save(buffer, "PNG")
    data = bytearray(buffer.getvalue())
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def test_decompression_bomb_images_are_refused() -> None:
    with pytest.raises(DecodeError, match="decompression-bomb"):
        decode(_png_claiming(20000, 20000), max_pixels=10**12)  # Pillow's guard is on
    with pytest.raises(DecodeError, match="decompression-bomb"):
        decode(_png_claiming(12000, 10000), max_pixels=10**12)  # its warning counts too
    with pytest.raises(DecodeError, match="pixel limit"):
        decode(_png_claiming(2000, 2000), max_pixels=1_000_000)  # and fluxkit's own limit
