"""Where dataset files go: a zip, or a folder, written under a temporary name and renamed.

Readers see the previous output or the complete new one, never half a dataset; a refused or
failed pack leaves nothing behind, and the temporaries of a pack that was killed (recognisable
``.<name>.fluxkit-<host>-<pid>-<random>.tmp`` names) are removed by the next pack writing beside
them. Files are written as they are produced, so memory holds one image at a time. An existing
output is replaced only with ``overwrite=True``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import zipfile
from pathlib import Path
from typing import Protocol

from fluxkit._exceptions import OutputExistsError
from fluxkit._files import AtomicFile, clean_stale_temps, temp_name

__all__ = ["FolderSink", "Sink", "ZipSink"]

# A fixed timestamp makes archives byte-for-byte reproducible from the same inputs.
_EPOCH = (1980, 1, 1, 0, 0, 0)
_STORED_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
_HINT = "pass overwrite=True (--overwrite) to replace it"


class Sink(Protocol):
    """A destination that accepts files and is committed or discarded as a whole."""

    final: Path

    def add(self, name: str, data: bytes) -> None: ...

    def commit(self) -> Path: ...

    def discard(self) -> None: ...


class ZipSink:
    """A flat zip written to a temporary file beside ``final``, then renamed to ``final``.

    Without ``overwrite`` the rename refuses an existing ``final`` atomically
    (`OutputExistsError`), even one that appeared while packing.
    """

    def __init__(self, final: Path, *, overwrite: bool = False) -> None:
        self.final = final
        self._file = AtomicFile(final, overwrite=overwrite, hint=_HINT)
        try:
            self._zip = zipfile.ZipFile(self._file.handle, "w", compression=zipfile.ZIP_DEFLATED)
        except BaseException:
            self._file.discard()
            raise

    def add(self, name: str, data: bytes) -> None:
        info = zipfile.ZipInfo(name, date_time=_EPOCH)
        info.external_attr = (stat.S_IFREG | 0o644) << 16
        # JPEGs do not deflate; storing them saves time and every unzip handles it.
        stored = name.lower().endswith(_STORED_SUFFIXES)
        info.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
        self._zip.writestr(info, data)

    def commit(self) -> Path:
        self._zip.close()
        return self._file.commit()

    def discard(self) -> None:
        with contextlib.suppress(Exception):
            self._zip.close()
        self._file.discard()


class FolderSink:
    """A folder built under a temporary name beside ``final`` and renamed into place."""

    def __init__(self, final: Path, *, overwrite: bool = False) -> None:
        self.final = final
        self._overwrite = overwrite
        final.parent.mkdir(parents=True, exist_ok=True)
        clean_stale_temps(final)
        self._temp = temp_name(final)
        self._temp.mkdir()

    def add(self, name: str, data: bytes) -> None:
        path = self._temp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    def commit(self) -> Path:
        old: Path | None = None
        if self.final.exists() or self.final.is_symlink():
            if (
                self.final.is_dir()
                and not self.final.is_symlink()
                and not any(self.final.iterdir())
            ):
                self.final.rmdir()
            elif self._overwrite and self.final.is_dir() and not self.final.is_symlink():
                # Named like a temp so that, if killed between the two renames, the next pack
                # puts it back (clean_stale_temps) instead of losing the old dataset.
                old = self._temp.with_suffix(".old")
                os.replace(self.final, old)
            else:
                self.discard()
                raise OutputExistsError(self.final, hint=_HINT)
        try:
            os.replace(self._temp, self.final)
        except BaseException:
            if old is not None:
                os.replace(old, self.final)
            self.discard()
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return self.final

    def discard(self) -> None:
        shutil.rmtree(self._temp, ignore_errors=True)
