"""Reading dataset archives back safely: no zip-slip, no symlinks, bounded sizes.

Member headers can lie about sizes, so every read is capped by what is actually decompressed,
not by what the header claims.
"""

from __future__ import annotations

import json
import os
import stat
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from fluxkit._exceptions import InvalidRequestError
from fluxkit._files import atomic_write

__all__ = [
    "ArchiveLimits",
    "UnsafeArchiveError",
    "extract_archive",
    "iter_archive",
    "read_manifest",
]

_CHUNK = 1 << 20


@dataclass(frozen=True)
class ArchiveLimits:
    """Bounds on what reading an archive may cost.

    Attributes:
        max_members: most entries accepted.
        max_member_bytes: largest decompressed member.
        max_total_bytes: largest total decompressed size.
        max_ratio: largest compression ratio (zip bombs compress 1000:1 and more).
    """

    max_members: int = 10_000
    max_member_bytes: int = 256 * 1024 * 1024
    max_total_bytes: int = 8 * 1024 * 1024 * 1024
    max_ratio: float = 200.0


class UnsafeArchiveError(InvalidRequestError):
    """The archive has a member that could escape the destination or exhaust resources."""

    def __init__(self, archive: str, member: str, reason: str) -> None:
        super().__init__(
            f"archive[{member!r}]", archive, "a flat, regular-file zip within limits", reason=reason
        )


def _safe_name(archive: str, info: zipfile.ZipInfo) -> str | None:
    """The member's normalised relative name; None for entries to skip (dirs, macOS cruft)."""
    name = info.filename
    if "\x00" in name:
        raise UnsafeArchiveError(archive, name, "NUL byte in the name")
    normalised = name.replace("\\", "/")
    path = PurePosixPath(normalised)
    if normalised.startswith("/") or (len(normalised) > 1 and normalised[1] == ":"):
        raise UnsafeArchiveError(archive, name, "absolute path (zip-slip)")
    if ".." in path.parts:
        raise UnsafeArchiveError(archive, name, "'..' in the path (zip-slip)")
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise UnsafeArchiveError(archive, name, "symbolic link")
    if info.is_dir():
        return None
    if stat.S_IFMT(mode) not in (0, stat.S_IFREG):
        raise UnsafeArchiveError(archive, name, "not a regular file")
    if info.flag_bits & 0x1:
        raise UnsafeArchiveError(archive, name, "encrypted member")
    if path.parts and (path.parts[0] == "__MACOSX" or path.name.startswith("._")):
        return None
    return str(path)


def iter_archive(
    path: str | os.PathLike[str], limits: ArchiveLimits | None = None
) -> Iterator[tuple[str, bytes]]:
    """Yield ``(name, data)`` for each regular member, enforcing ``limits`` as it reads.

    Example:
        ```python
        from fluxkit.datasets import iter_archive

        for name, data in iter_archive("tok-fal.zip"):
            print(name, len(data))
        ```

    Raises:
        UnsafeArchiveError: a member escapes the archive root, is a link, or breaks a limit.
        InvalidRequestError: not a zip file.
    """
    limits = limits or ArchiveLimits()
    archive = os.fspath(path)
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise InvalidRequestError(
            "archive", archive, "a readable .zip file", reason=str(exc)
        ) from None
    with zf:
        infos = zf.infolist()
        if len(infos) > limits.max_members:
            raise UnsafeArchiveError(archive, "*", f"more than {limits.max_members} members")
        total = 0
        for info in infos:
            name = _safe_name(archive, info)
            if name is None:
                continue
            if info.file_size > limits.max_member_bytes:
                raise UnsafeArchiveError(archive, name, "member larger than the limit")
            if info.compress_size and info.file_size / info.compress_size > limits.max_ratio:
                raise UnsafeArchiveError(archive, name, "suspicious compression ratio (zip bomb)")
            data = _read_capped(zf, info, archive, name, limits.max_member_bytes)
            total += len(data)
            if total > limits.max_total_bytes:
                raise UnsafeArchiveError(archive, name, "archive larger than the total limit")
            yield name, data


def _read_capped(
    zf: zipfile.ZipFile, info: zipfile.ZipInfo, archive: str, name: str, cap: int
) -> bytes:
    chunks: list[bytes] = []
    size = 0
    try:
        with zf.open(info) as member:
            while chunk := member.read(_CHUNK):
                size += len(chunk)
                if size > cap:
                    raise UnsafeArchiveError(archive, name, "member larger than the limit")
                chunks.append(chunk)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError) as exc:
        raise UnsafeArchiveError(archive, name, f"corrupt member ({exc})") from None
    return b"".join(chunks)


def extract_archive(
    path: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    limits: ArchiveLimits | None = None,
    *,
    overwrite: bool = False,
) -> list[Path]:
    """Extract safely into ``dest`` (created); returns the files written.

    Each file is written atomically (complete or absent). An existing file is replaced only
    with ``overwrite=True``; a symlink planted at a member's path is replaced, never written
    through.

    Raises:
        UnsafeArchiveError: a member escapes ``dest`` or breaks a limit.
        OutputExistsError: a member's path exists and ``overwrite`` is False.

    Example:
        ```python
        from fluxkit.datasets import extract_archive

        files = extract_archive("tok-fal.zip", "unpacked/")
        ```
    """
    root = Path(dest).resolve()
    root.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for name, data in iter_archive(path, limits):
        # The folder is resolved, not the file: a symlink planted at the member's own path is
        # replaced by the new file, never followed.
        target = (root / name).parent.resolve() / PurePosixPath(name).name
        if not target.is_relative_to(root):
            raise UnsafeArchiveError(os.fspath(path), name, "resolves outside the destination")
        written.append(atomic_write(target, data, overwrite=overwrite))
    return written


def read_manifest(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``manifest.json`` of a packed dataset (zip or folder).

    Example:
        ```python
        from fluxkit.datasets import read_manifest

        read_manifest("tok-fal.zip")["images"][0]["caption"]
        ```
    """
    source = Path(path)
    if source.is_dir():
        return dict(json.loads((source / "manifest.json").read_text(encoding="utf-8")))
    for name, data in iter_archive(source):
        if name == "manifest.json":
            return dict(json.loads(data.decode("utf-8")))
    raise InvalidRequestError(
        "archive", str(source), "a dataset packed by fluxkit", reason="no manifest.json"
    )
