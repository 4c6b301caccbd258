"""Where dataset files go: a zip, or a folder, written under a temporary name and renamed.

Readers see the previous output or the complete new one, never half a dataset; a refused or
failed pack leaves nothing behind. Files are written as they are produced, so memory holds one
image at a time.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import zipfile
from pathlib import Path
from typing import Protocol

__all__ = ["FolderSink", "Sink", "ZipSink"]

# A fixed timestamp makes archives byte-for-byte reproducible from the same inputs.
_EPOCH = (1980, 1, 1, 0, 0, 0)
_STORED_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")


class Sink(Protocol):
    """A destination that accepts files and is committed or discarded as a whole."""

    final: Path

    def add(self, name: str, data: bytes) -> None: ...

    def commit(self) -> Path: ...

    def discard(self) -> None: ...


class ZipSink:
    """A flat zip written to ``<final>.<random>.tmp`` then renamed to ``final``."""

    def __init__(self, final: Path) -> None:
        self.final = final
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
        os.close(fd)
        self._temp = Path(temp)
        self._zip = zipfile.ZipFile(self._temp, "w", compression=zipfile.ZIP_DEFLATED)

    def add(self, name: str, data: bytes) -> None:
        info = zipfile.ZipInfo(name, date_time=_EPOCH)
        info.external_attr = (stat.S_IFREG | 0o644) << 16
        # JPEGs do not deflate; storing them saves time and every unzip handles it.
        stored = name.lower().endswith(_STORED_SUFFIXES)
        info.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
        self._zip.writestr(info, data)

    def commit(self) -> Path:
        self._zip.close()
        with self._temp.open("rb") as handle:
            os.fsync(handle.fileno())
        os.replace(self._temp, self.final)
        return self.final

    def discard(self) -> None:
        self._zip.close()
        self._temp.unlink(missing_ok=True)


class FolderSink:
    """A folder built as ``.<name>.<random>.tmp`` beside ``final`` and renamed into place."""

    def __init__(self, final: Path, *, overwrite: bool = False) -> None:
        self.final = final
        self._overwrite = overwrite
        final.parent.mkdir(parents=True, exist_ok=True)
        self._temp = Path(
            tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
        )

    def add(self, name: str, data: bytes) -> None:
        path = self._temp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    def commit(self) -> Path:
        old: Path | None = None
        if self.final.exists():
            if self.final.is_dir() and not any(self.final.iterdir()):
                self.final.rmdir()
            elif self._overwrite and self.final.is_dir():
                old = self.final.with_name(f".{self.final.name}.old-{os.getpid()}")
                os.replace(self.final, old)
            else:
                self.discard()
                raise FileExistsError(f"{self.final} exists and is not empty (use overwrite=True)")
        os.replace(self._temp, self.final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return self.final

    def discard(self) -> None:
        shutil.rmtree(self._temp, ignore_errors=True)
