"""The one file writer: atomic, umask-respecting, never replacing a file unless asked."""

from __future__ import annotations

import errno
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import pytest

import fluxkit
from fluxkit._files import (
    AtomicFile,
    atomic_write,
    atomic_write_free_name,
    clean_stale_temps,
    temp_name,
)

pytestmark = pytest.mark.skipif(os.name == "nt", reason="POSIX permissions and signals")


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_writes_bytes_with_the_umask_mode(tmp_path: Path, umask_022: None) -> None:
    path = atomic_write(tmp_path / "sub" / "a.bin", b"hello")
    assert path.read_bytes() == b"hello"
    assert path.stat().st_mode & 0o777 == 0o644  # mkstemp would have given 0o600
    os.umask(0o077)
    assert (atomic_write(tmp_path / "b.bin", b"x").stat().st_mode & 0o777) == 0o600


def test_existing_file_is_refused_untouched_without_overwrite(tmp_path: Path) -> None:
    target = tmp_path / "a.png"
    target.write_bytes(b"original")
    with pytest.raises(fluxkit.OutputExistsError) as caught:
        atomic_write(target, b"new")
    error = caught.value
    assert isinstance(error, FileExistsError) and isinstance(error, fluxkit.FluxkitError)
    assert error.errno == errno.EEXIST and error.path == str(target)
    assert str(error) == f"{target} already exists; pass overwrite=True to replace it"
    assert target.read_bytes() == b"original"
    assert names(tmp_path) == ["a.png"]  # no temp left behind
    copy = pickle.loads(pickle.dumps(error))
    assert isinstance(copy, fluxkit.OutputExistsError) and copy.path == error.path


def test_overwrite_replaces(tmp_path: Path) -> None:
    target = tmp_path / "a.png"
    target.write_bytes(b"original")
    atomic_write(target, b"new", overwrite=True)
    assert target.read_bytes() == b"new"
    assert names(tmp_path) == ["a.png"]


def test_a_dangling_symlink_counts_as_existing(tmp_path: Path) -> None:
    link = tmp_path / "a.png"
    link.symlink_to(tmp_path / "elsewhere.png")
    with pytest.raises(fluxkit.OutputExistsError):
        atomic_write(link, b"new")
    assert not (tmp_path / "elsewhere.png").exists()


@pytest.mark.parametrize("overwrite", [False, True])
@pytest.mark.parametrize("error", [RuntimeError("encoder broke"), KeyboardInterrupt()])
def test_a_failing_writer_leaves_the_original_and_no_temp(
    tmp_path: Path, overwrite: bool, error: BaseException
) -> None:
    target = tmp_path / "a.png"
    target.write_bytes(b"original")

    def writer(handle: BinaryIO) -> None:
        handle.write(b"half of the new")
        raise error

    with pytest.raises(type(error)):
        atomic_write(target if overwrite else tmp_path / "new.png", writer, overwrite=overwrite)
    assert target.read_bytes() == b"original"
    assert names(tmp_path) == ["a.png"]


def test_a_failing_rename_leaves_the_original_and_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "a.png"
    target.write_bytes(b"original")

    def crash(src: object, dst: object) -> None:
        raise OSError(errno.ENOSPC, "disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, b"new", overwrite=True)
    assert target.read_bytes() == b"original"
    assert names(tmp_path) == ["a.png"]


def test_context_manager_commits_or_discards(tmp_path: Path) -> None:
    with AtomicFile(tmp_path / "ok.txt") as handle:
        handle.write(b"done")
    with pytest.raises(ValueError), AtomicFile(tmp_path / "bad.txt") as handle:
        handle.write(b"half")
        raise ValueError("stop")
    assert names(tmp_path) == ["ok.txt"]
    assert (tmp_path / "ok.txt").read_bytes() == b"done"


def test_racing_writers_never_both_win(tmp_path: Path) -> None:
    target = tmp_path / "race.bin"
    outcomes: list[str] = []
    barrier = threading.Barrier(8)

    def write(number: int) -> None:
        barrier.wait()
        try:
            atomic_write(target, f"writer {number}".encode())
            outcomes.append("won")
        except fluxkit.OutputExistsError:
            outcomes.append("refused")

    threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["refused"] * 7 + ["won"]
    assert target.read_bytes().startswith(b"writer ")
    assert names(tmp_path) == ["race.bin"]


def test_without_hard_links_the_no_overwrite_rule_still_holds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_links(src: object, dst: object) -> None:
        raise OSError(errno.EPERM, "hard links not supported")

    monkeypatch.setattr(os, "link", no_links)
    target = atomic_write(tmp_path / "a.txt", b"first")
    with pytest.raises(fluxkit.OutputExistsError):
        atomic_write(target, b"second")
    assert target.read_bytes() == b"first"
    assert names(tmp_path) == ["a.txt"]


def test_free_names_keep_every_run(tmp_path: Path) -> None:
    paths = [atomic_write_free_name(tmp_path, "fox", ".txt", f"run {n}".encode()) for n in range(3)]
    assert [p.name for p in paths] == ["fox.txt", "fox-1.txt", "fox-2.txt"]
    assert [p.read_bytes() for p in paths] == [b"run 0", b"run 1", b"run 2"]
    assert names(tmp_path) == ["fox-1.txt", "fox-2.txt", "fox.txt"]


def test_free_name_writer_failure_leaves_nothing(tmp_path: Path) -> None:
    def writer(handle: BinaryIO) -> None:
        raise RuntimeError("no")

    with pytest.raises(RuntimeError):
        atomic_write_free_name(tmp_path, "fox", ".txt", writer)
    assert names(tmp_path) == []


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_stale_temps_of_dead_writers_are_cleaned_live_ones_kept(tmp_path: Path) -> None:
    final = tmp_path / "a.zip"
    mine = temp_name(final)
    mine.write_bytes(b"in progress")
    dead = Path(str(mine).replace(f"-{os.getpid()}-", f"-{_dead_pid()}-"))
    dead.write_bytes(b"left by a killed pack")
    unrelated = tmp_path / ".a.zip.123abc.tmp"  # not fluxkit's pattern: never touched
    unrelated.write_bytes(b"someone else's")
    assert clean_stale_temps(final) == [dead]
    assert sorted(names(tmp_path)) == sorted([mine.name, unrelated.name])


def test_an_interrupted_folder_swap_is_put_back(tmp_path: Path) -> None:
    final = tmp_path / "dataset"
    old = Path(str(temp_name(final)).replace(f"-{os.getpid()}-", f"-{_dead_pid()}-"))
    old = old.with_suffix(".old")
    old.mkdir()
    (old / "0001.jpg").write_bytes(b"the only copy")
    clean_stale_temps(final)
    assert (final / "0001.jpg").read_bytes() == b"the only copy"
    assert names(tmp_path) == ["dataset"]


_SLOW_WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from fluxkit._files import atomic_write

    def writer(handle):
        for _ in range(400):
            handle.write(b"n" * 4096)
            handle.flush()
            sys.stdout.write("w\\n")
            sys.stdout.flush()
            time.sleep(0.01)

    atomic_write(Path(sys.argv[1]), writer, overwrite=True)
    """
)


def test_kill_mid_write_never_leaves_a_torn_file(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    child = subprocess.Popen(
        [sys.executable, "-c", _SLOW_WRITER, str(target)], stdout=subprocess.PIPE
    )
    assert child.stdout is not None
    for _ in range(5):  # it has started writing
        child.stdout.readline()
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert target.read_bytes() == b"old"
    assert len(names(tmp_path)) == 2  # the killed writer's temp is still there...
    time.sleep(0.01)
    atomic_write(target, b"new", overwrite=True)  # ...until the next write beside it
    assert names(tmp_path) == ["out.bin"]
    assert target.read_bytes() == b"new"
