"""The batch journal: every job's life in SQLite (WAL), so no crash costs twice.

One row per job (one image: a request with ``n=1`` and a fixed seed)::

    planned --claim--> submitting --Submitted(id)--> submitted --> completed --> saved
                            \\                            \\              \\
                             +--------------------------+--------------+--> failed (typed)

* ``submitting`` is written *before* the submission leaves, ``submitted`` (with the provider's
  request id) the moment it is accepted. After a crash, a ``submitted`` job is collected by id,
  never resubmitted; a ``submitting`` one may or may not exist at the provider — it is resent
  only where the provider deduplicates on the job's idempotency key (the job key), else it is
  reported as uncertain.
* Two processes on one journal never run the same job: a job is *claimed* (owner and lease)
  in a ``BEGIN IMMEDIATE`` transaction; a claim lapses when its owner's lease runs out
  (a crashed owner, or one on another host).

Every state change is one short transaction (well under a millisecond on local disk: see
``benchmarks/bench_batch.py``).
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

__all__ = ["JOURNAL_NAME", "Job", "Journal", "State"]

JOURNAL_NAME = "journal.sqlite"
State = Literal["planned", "submitting", "submitted", "completed", "saved", "failed"]
LEASE_SECONDS = 60.0
"""How long a claim holds without renewal; owners renew theirs while they run."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    key TEXT PRIMARY KEY,
    line INTEGER NOT NULL,
    request TEXT NOT NULL,
    state TEXT NOT NULL,
    request_id TEXT,
    provider TEXT,
    submitted_at REAL,
    urls TEXT,
    files TEXT,
    hashes TEXT,
    error TEXT,
    error_type TEXT,
    cost REAL,
    cost_basis TEXT,
    owner TEXT,
    lease_until REAL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_claim ON jobs(state, line, key);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@dataclass(frozen=True)
class Job:
    """One row of the journal."""

    key: str
    line: int
    request: dict[str, Any]
    state: State
    request_id: str | None = None
    provider: str | None = None
    urls: tuple[str, ...] = ()
    files: tuple[str, ...] = ()
    error: str | None = None
    error_type: str | None = None
    cost: float | None = None


class Journal:
    """A batch's SQLite journal. Thread-safe (one connection, one lock).

    Example:
        ```python
        from fluxkit.batch._journal import Journal

        with Journal.open("out/journal.sqlite") as journal:
            journal.plan([("k1", 1, {"prompt": "a fox", "seed": 1})])
            journal.counts()     # {"planned": 1}
        ```
    """

    def __init__(self, path: Path, connection: sqlite3.Connection) -> None:
        self.path = path
        self._db = connection
        self._lock = threading.Lock()
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{os.urandom(4).hex()}"

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> Journal:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        # synchronous=NORMAL in WAL mode: a committed change survives a process crash (kill -9);
        # only a power loss can drop the last transactions.
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(_SCHEMA)
        return cls(path, db)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # -- meta ------------------------------------------------------------------------------

    def meta(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        with self._write() as db:
            db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))

    # -- planning --------------------------------------------------------------------------

    def plan(self, jobs: Iterable[tuple[str, int, dict[str, Any]]]) -> int:
        """Add jobs not in the journal yet (by key); returns how many were new."""
        now = time.time()
        rows = [
            (key, line, json.dumps(request, sort_keys=True), now) for key, line, request in jobs
        ]
        with self._write() as db:
            before = db.total_changes
            db.executemany(
                "INSERT OR IGNORE INTO jobs(key, line, request, state, updated_at) "
                "VALUES (?, ?, ?, 'planned', ?)",
                rows,
            )
            return db.total_changes - before

    # -- claims ----------------------------------------------------------------------------

    def claim(self, states: tuple[State, ...], limit: int) -> list[Job]:
        """Take up to ``limit`` unowned jobs in ``states`` for this process (atomically)."""
        now = time.time()
        marks = ",".join("?" * len(states))
        with self._write() as db:
            keys: list[str] = []
            for state in states:  # one indexed, ordered scan per state: no sort of the table
                rows = db.execute(
                    "SELECT key FROM jobs WHERE state = ? "
                    "AND (owner IS NULL OR lease_until < ?) ORDER BY line, key LIMIT ?",
                    (state, now, limit - len(keys)),
                ).fetchall()
                keys.extend(row[0] for row in rows)
                if len(keys) >= limit:
                    break
            if len(keys) < limit:
                # Claims still leased: take over those of processes on this host that died.
                held = db.execute(
                    f"SELECT key, owner FROM jobs WHERE state IN ({marks}) "
                    "AND owner IS NOT NULL AND owner != ? AND lease_until >= ? ORDER BY line, key",
                    (*states, self.owner, now),
                ).fetchall()
                dead: dict[str, bool] = {}
                for key, owner in held:
                    if owner not in dead:
                        dead[owner] = _dead_here(owner)
                    if dead[owner] and len(keys) < limit:
                        keys.append(key)
            db.executemany(
                "UPDATE jobs SET owner = ?, lease_until = ?, updated_at = ? WHERE key = ?",
                [(self.owner, now + LEASE_SECONDS, now, key) for key in keys],
            )
        return [job for job in (self.get(key) for key in keys) if job is not None]

    def renew(self, keys: Iterable[str]) -> None:
        """Extend this process's leases on ``keys`` (while their jobs run)."""
        now = time.time()
        with self._write() as db:
            db.executemany(
                "UPDATE jobs SET lease_until = ? WHERE key = ? AND owner = ?",
                [(now + LEASE_SECONDS, key, self.owner) for key in keys],
            )

    def release(self, key: str) -> None:
        with self._write() as db:
            db.execute(
                "UPDATE jobs SET owner = NULL, lease_until = NULL WHERE key = ? AND owner = ?",
                (key, self.owner),
            )

    # -- transitions -----------------------------------------------------------------------

    def _update(self, key: str, **values: Any) -> None:
        values["updated_at"] = time.time()
        columns = ", ".join(f"{name} = ?" for name in values)
        with self._write() as db:
            db.execute(
                f"UPDATE jobs SET {columns} WHERE key = ?",
                (*values.values(), key),
            )

    def submitting(self, key: str, provider: str) -> None:
        self._update(key, state="submitting", provider=provider, error=None, error_type=None)

    def release_to_planned(self, key: str) -> None:
        """The provider provably refused it (429, outage before acceptance): plan it again."""
        self._update(key, state="planned", owner=None, lease_until=None)

    def submitted(self, key: str, request_id: str) -> None:
        self._update(key, state="submitted", request_id=request_id, submitted_at=time.time())

    def completed(
        self, key: str, urls: Iterable[str], cost: float | None, basis: str | None
    ) -> None:
        self._update(
            key, state="completed", urls=json.dumps(list(urls)), cost=cost, cost_basis=basis
        )

    def saved(self, key: str, files: Iterable[str], hashes: Iterable[str]) -> None:
        self._update(
            key,
            state="saved",
            files=json.dumps(list(files)),
            hashes=json.dumps(list(hashes)),
            owner=None,
            lease_until=None,
        )

    def failed(self, key: str, error: BaseException | str, error_type: str | None = None) -> None:
        message = str(error)
        kind = error_type or (type(error).__name__ if isinstance(error, BaseException) else "error")
        self._update(
            key, state="failed", error=message, error_type=kind, owner=None, lease_until=None
        )

    def reset_failed(self) -> int:
        """Put failed jobs back to ``planned`` (``--retry-failed``); returns how many."""
        with self._write() as db:
            before = db.total_changes
            db.execute(
                "UPDATE jobs SET state = 'planned', error = NULL, error_type = NULL "
                "WHERE state = 'failed' AND request_id IS NULL"
            )
            db.execute(
                "UPDATE jobs SET state = 'submitted', error = NULL, error_type = NULL "
                "WHERE state = 'failed' AND request_id IS NOT NULL AND error_type != 'JobFailedError'"
            )
            return db.total_changes - before

    # -- reading ---------------------------------------------------------------------------

    def get(self, key: str) -> Job | None:
        with self._lock:
            row = self._db.execute(
                "SELECT key, line, request, state, request_id, provider, urls, files, error, "
                "error_type, cost FROM jobs WHERE key = ?",
                (key,),
            ).fetchone()
        return None if row is None else _job(row)

    def jobs(self, state: State | None = None) -> list[Job]:
        query = (
            "SELECT key, line, request, state, request_id, provider, urls, files, error, "
            "error_type, cost FROM jobs"
        )
        with self._lock:
            if state is None:
                rows = self._db.execute(query + " ORDER BY line, key").fetchall()
            else:
                rows = self._db.execute(
                    query + " WHERE state = ? ORDER BY line, key", (state,)
                ).fetchall()
        return [_job(row) for row in rows]

    def unfinished_elsewhere(self) -> int:
        """Jobs not done that another live process holds."""
        now = time.time()
        with self._lock:
            rows = self._db.execute(
                "SELECT owner, lease_until FROM jobs WHERE state NOT IN ('saved', 'failed') "
                "AND owner IS NOT NULL AND owner != ?",
                (self.owner,),
            ).fetchall()
        return sum(1 for owner, lease in rows if (lease or 0) >= now and not _dead_here(owner))

    def counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state").fetchall()
        return {str(state): int(count) for state, count in rows}

    def cost(self) -> tuple[float, float]:
        """(reported, estimated) USD of the jobs that completed."""
        with self._lock:
            rows = self._db.execute(
                "SELECT cost_basis, COALESCE(SUM(cost), 0) FROM jobs WHERE cost IS NOT NULL "
                "GROUP BY cost_basis"
            ).fetchall()
        totals = {str(basis): float(total) for basis, total in rows}
        return totals.get("reported", 0.0), totals.get("estimated", 0.0)


def _dead_here(owner: str) -> bool:
    """Whether ``owner`` was a process on this host that no longer runs (kill -9, a crash):
    its claims lapse at once instead of after the lease."""
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, someone else's
        return False
    return False


def _job(row: tuple[Any, ...]) -> Job:
    key, line, request, state, request_id, provider, urls, files, error, error_type, cost = row
    return Job(
        key=key,
        line=int(line),
        request=json.loads(request),
        state=state,
        request_id=request_id,
        provider=provider,
        urls=tuple(json.loads(urls)) if urls else (),
        files=tuple(json.loads(files)) if files else (),
        error=error,
        error_type=error_type,
        cost=cost,
    )
