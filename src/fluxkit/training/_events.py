"""Turn successive snapshots into events (pure): status changes, new log lines, steps + loss."""

from __future__ import annotations

from typing import Any

from fluxkit._events import Log, Queued, Started
from fluxkit.training._logs import progress_of
from fluxkit.training._model import StatusChanged, TrainingSnapshot, TrainingStep

__all__ = ["SnapshotEvents"]


class SnapshotEvents:
    """Remembers what was reported so each change is announced once."""

    def __init__(self, request_id: str | None = None) -> None:
        self.request_id = request_id
        self.status: str | None = None
        self.lines_seen = 0
        self.step = 0
        self.loss: float | None = None
        self.total: int | None = None
        self.position: int | None = None

    def events(self, snapshot: TrainingSnapshot) -> list[Any]:
        found: list[Any] = []
        if snapshot.status != self.status:
            if snapshot.status == "running" and self.status in (None, "queued", "starting"):
                found.append(Started(request_id=self.request_id))
            self.status = snapshot.status
            found.append(StatusChanged(snapshot.status))
        if snapshot.status == "queued" and snapshot.position not in (None, self.position):
            self.position = snapshot.position
            found.append(Queued(snapshot.position, request_id=self.request_id))
        fresh = snapshot.logs[self.lines_seen :] if len(snapshot.logs) >= self.lines_seen else ()
        self.lines_seen = len(snapshot.logs)
        for line in fresh:
            progress = progress_of(line)
            if progress is None:
                found.append(Log(line))
            elif progress.step > self.step:
                self.step, self.total = progress.step, progress.total
                self.loss = progress.loss if progress.loss is not None else self.loss
                found.append(TrainingStep(progress.step, progress.total, progress.loss))
        return found
