"""Writing files so that no user file is ever lost or left half-written.

Every file fluxkit writes goes through `AtomicFile` (or `atomic_write`):

* the bytes go to a temporary file in the destination folder, are flushed and ``fsync``-ed, and
  only then take the final name, so a reader (or a crash, or ``kill -9``) sees the old file or the
  complete new one, never a torn one;
* without ``overwrite=True`` the final name is taken with ``os.link``, which fails atomically when
  the name exists: two processes racing for one name cannot both win, and an existing file is
  never replaced (`OutputExistsError`); with ``overwrite=True`` it is
  ``os.replace``;
* the file is created with mode ``0o666`` filtered by the process umask, like ``open(path, "w")``
  (``tempfile.mkstemp`` would give ``0o600``);
* temporary names are recognisable, ``.<name>.fluxkit-<host>-<pid>-<random>.tmp``, and removed on
  any failure; those left by a process that was killed are removed by `clean_stale_temps`
  the next time fluxkit writes beside them.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import secrets
import shutil
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from fluxkit._exceptions import OutputExistsError

__all__ = [
    "AtomicFile",
    "atomic_write",
    "atomic_write_free_name",
    "clean_stale_temps",
    "free_name_candidates",
    "temp_name",
]

Writer = Callable[[BinaryIO], object]
"""A callback that writes the file's content to an open binary handle."""

_TEMP_MARK = "fluxkit"
# A temp file from another host is only removed when this old: its writer may still be alive.
_FOREIGN_TEMP_AGE_S = 24 * 3600
_FILE_MODE = 0o666  # filtered by the umask, as open() does
_MAX_FREE_NAMES = 10_000


def _host_tag() -> str:
    # Short and filename-safe; distinguishes hosts sharing a network folder, where a pid from
    # another machine says nothing about whether its writer is alive.
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:6]


def temp_name(final: Path) -> Path:
    """A fresh, recognisable temporary path beside ``final``.

    Example:
        ```python
        from pathlib import Path
        from fluxkit._files import temp_name

        temp_name(Path("out/a.png")).name  # '.a.png.fluxkit-1a2b3c-4242-9f8e7d6c.tmp'
        ```
    """
    tag = f"{_TEMP_MARK}-{_host_tag()}-{os.getpid()}-{secrets.token_hex(4)}"
    return final.with_name(f".{final.name}.{tag}.tmp")


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError:  # e.g. signals unsupported: assume alive, never delete a live writer's file
        return True
    return True


def clean_stale_temps(final: Path) -> list[Path]:
    """Remove temporary files (or folders) for ``final`` left by writers that died.

    A temp belongs to a dead writer when it was made on this host by a process that no longer
    exists, or on another host more than a day ago. Files of live writers are never touched.

    Args:
        final: the path whose leftovers to remove (its folder is scanned).

    Returns:
        The paths removed.

    Example:
        ```python
        from pathlib import Path
        from fluxkit._files import clean_stale_temps

        clean_stale_temps(Path("datasets/tok-fal.zip"))  # [] when nothing was left behind
        ```
    """
    pattern = re.compile(
        rf"^\.{re.escape(final.name)}\.{_TEMP_MARK}-([0-9a-f]{{6}})-(\d+)-[0-9a-f]+\.(tmp|old)$"
    )
    removed: list[Path] = []
    try:
        entries = list(final.parent.iterdir())
    except OSError:
        return removed
    host = _host_tag()
    for entry in entries:
        match = pattern.match(entry.name)
        if match is None:
            continue
        entry_host, pid, kind = match.group(1), int(match.group(2)), match.group(3)
        if entry_host == host:
            if _pid_alive(pid):
                continue
        else:
            try:
                age = time.time() - entry.lstat().st_mtime
            except OSError:
                continue
            if age < _FOREIGN_TEMP_AGE_S:
                continue
        if kind == "old" and not final.exists():
            # A folder replace was killed between its two renames: the old output is the only
            # copy, so put it back rather than delete it.
            with contextlib.suppress(OSError):
                os.rename(entry, final)
                continue
        _remove(entry)
        removed.append(entry)
    return removed


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            path.unlink()


def _fsync_dir(folder: Path) -> None:
    # Makes the rename itself durable; not possible (nor needed) on Windows.
    if os.name == "nt":
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _link_new(temp: Path, final: Path) -> None:
    """Give ``temp`` the name ``final`` only if ``final`` does not exist (atomically)."""
    try:
        os.link(temp, final)
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno not in (
            errno.EPERM,
            errno.ENOTSUP,
            errno.EOPNOTSUPP,
            errno.EXDEV,
            errno.EMLINK,
        ):
            raise
        # A filesystem without hard links (FAT, some network mounts). Windows' rename refuses
        # an existing target atomically; elsewhere an exclusive create reserves the name, which
        # is race-free against other fluxkit writers, then the content replaces the reservation.
        if os.name == "nt":
            os.rename(temp, final)
            return
        fd = os.open(final, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _FILE_MODE)
        os.close(fd)
        try:
            os.replace(temp, final)
        except BaseException:
            final.unlink(missing_ok=True)
            raise
        return
    temp.unlink(missing_ok=True)


class AtomicFile:
    """A file written under a temporary name and committed to its final name in one step.

    Use as a context manager (commits on success, discards on any exception, including
    ``KeyboardInterrupt``), or call `commit` / `discard` yourself when the writing
    spans calls (the dataset zip writer).

    Args:
        path: the final path; missing parent folders are created.
        overwrite: replace an existing file at ``path``; otherwise committing raises
            `OutputExistsError` and leaves the existing file untouched.
        hint: how to allow overwriting, for the error message (a CLI says ``use --overwrite``).

    Example:
        ```python
        from fluxkit._files import AtomicFile

        with AtomicFile("report.json") as handle:
            handle.write(b"{}")
        ```
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        overwrite: bool = False,
        hint: str = "pass overwrite=True to replace it",
    ) -> None:
        self.path = Path(path)
        self.overwrite = overwrite
        self._hint = hint
        self.path.parent.mkdir(parents=True, exist_ok=True)
        clean_stale_temps(self.path)
        self.temp = temp_name(self.path)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
        fd = os.open(self.temp, flags | getattr(os, "O_NOFOLLOW", 0), _FILE_MODE)
        try:
            self.handle: BinaryIO = os.fdopen(fd, "wb")
        except BaseException:
            os.close(fd)
            self.temp.unlink(missing_ok=True)
            raise
        self._done = False

    def commit(self) -> Path:
        """Flush, fsync and give the file its final name; returns the final path.

        Raises:
            OutputExistsError: ``overwrite`` is False and the path exists (the temp is removed).
        """
        try:
            if not self.handle.closed:
                self.handle.flush()
                os.fsync(self.handle.fileno())
                self.handle.close()
            if self.overwrite:
                os.replace(self.temp, self.path)
            else:
                try:
                    _link_new(self.temp, self.path)
                except FileExistsError:
                    raise OutputExistsError(self.path, hint=self._hint) from None
        except BaseException:
            self.discard()
            raise
        self._done = True
        _fsync_dir(self.path.parent)
        return self.path

    def discard(self) -> None:
        """Close and remove the temporary file; the final path is left as it was."""
        with contextlib.suppress(OSError):
            self.handle.close()
        self.temp.unlink(missing_ok=True)
        self._done = True

    def __enter__(self) -> BinaryIO:
        return self.handle

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            self.discard()
        elif not self._done:
            self.commit()


def _write_content(handle: BinaryIO, data: bytes | Writer) -> None:
    if isinstance(data, bytes | bytearray | memoryview):
        handle.write(data)
    else:
        data(handle)


def atomic_write(
    path: str | os.PathLike[str],
    data: bytes | Writer,
    *,
    overwrite: bool = False,
    hint: str = "pass overwrite=True to replace it",
) -> Path:
    """Write ``data`` (bytes, or a callback writing to a binary handle) to ``path`` atomically.

    Readers and crashes see the previous file or the complete new one. A callback that raises
    leaves ``path`` as it was and no temporary file behind.

    Args:
        path: where to write; missing parent folders are created.
        data: the bytes, or ``writer(handle)`` that writes them.
        overwrite: replace an existing file; otherwise an existing ``path`` raises.
        hint: how to allow overwriting, for the error message.

    Returns:
        ``path`` as a `Path`.

    Raises:
        OutputExistsError: ``path`` exists and ``overwrite`` is False (nothing was changed).

    Example:
        ```python
        from fluxkit._files import atomic_write

        atomic_write("notes.txt", b"hello")
        atomic_write("notes.txt", lambda f: f.write(b"again"), overwrite=True)
        ```
    """
    target = AtomicFile(path, overwrite=overwrite, hint=hint)
    try:
        _write_content(target.handle, data)
    except BaseException:
        target.discard()
        raise
    return target.commit()


def free_name_candidates(folder: Path, stem: str, suffix: str) -> Iterator[Path]:
    """``stem.suffix``, then ``stem-1.suffix``, ``stem-2.suffix``, ...

    Example:
        ```python
        from itertools import islice
        from pathlib import Path
        from fluxkit._files import free_name_candidates

        [p.name for p in islice(free_name_candidates(Path("."), "a", ".png"), 3)]
        # ['a.png', 'a-1.png', 'a-2.png']
        ```
    """
    yield folder / f"{stem}{suffix}"
    for number in range(1, _MAX_FREE_NAMES):
        yield folder / f"{stem}-{number}{suffix}"


def atomic_write_free_name(
    folder: str | os.PathLike[str], stem: str, suffix: str, data: bytes | Writer
) -> Path:
    """Write ``data`` atomically to the first free name of `free_name_candidates`.

    The content is written once; the name is claimed with an atomic link, so concurrent writers
    each get their own file and no existing file is replaced.

    Args:
        folder: the folder (created if missing).
        stem: the preferred name without suffix, e.g. ``"fluxkit-00-7"``.
        suffix: the suffix with its dot, e.g. ``".png"``.
        data: the bytes, or ``writer(handle)``.

    Returns:
        The path written.

    Example:
        ```python
        from fluxkit._files import atomic_write_free_name

        atomic_write_free_name("out", "fox", ".txt", b"1")  # out/fox.txt
        atomic_write_free_name("out", "fox", ".txt", b"2")  # out/fox-1.txt
        ```
    """
    directory = Path(folder)
    candidates = free_name_candidates(directory, stem, suffix)
    target = AtomicFile(next(candidates))
    try:
        _write_content(target.handle, data)
        target.handle.flush()
        os.fsync(target.handle.fileno())
        target.handle.close()
        for candidate in [target.path, *candidates]:
            try:
                _link_new(target.temp, candidate)
            except FileExistsError:
                continue
            _fsync_dir(directory)
            return candidate
        raise OutputExistsError(
            directory / f"{stem}{suffix}", hint=f"{_MAX_FREE_NAMES} numbered names are taken"
        )
    finally:
        target.discard()
