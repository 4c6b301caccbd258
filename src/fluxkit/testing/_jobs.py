"""Clock-driven jobs for queue-style emulators: state follows from time, nothing sleeps."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["EmulatedJob", "JobState"]

JobState = Literal["queued", "running", "completed", "failed", "cancelled"]


@dataclass
class EmulatedJob:
    """A job accepted by an emulator.

    It waits ``queue_seconds`` after ``created`` (position counts down to 0), runs for
    ``run_seconds`` through ``steps`` steps, then completes — or fails with ``failure``.
    """

    id: str
    payload: Any
    created: float
    queue_seconds: float = 0.0
    run_seconds: float = 0.0
    steps: int = 4
    initial_position: int = 0
    failure: str | None = None
    cancelled_at: float | None = None
    logs: list[str] = field(default_factory=list)
    result: Any = None

    @property
    def started_at(self) -> float:
        return self.created + self.queue_seconds

    @property
    def finished_at(self) -> float:
        return self.started_at + self.run_seconds

    def state(self, now: float) -> JobState:
        if self.cancelled_at is not None and self.cancelled_at <= now:
            return "cancelled"
        if now < self.started_at:
            return "queued"
        if now < self.finished_at:
            return "running"
        return "failed" if self.failure else "completed"

    def position(self, now: float) -> int:
        """Queue position, counting down linearly while queued."""
        if self.state(now) != "queued" or self.queue_seconds <= 0:
            return 0
        left = (self.started_at - now) / self.queue_seconds
        return max(0, round(self.initial_position * left))

    def step(self, now: float) -> int:
        """Steps finished so far (all of them once the job is done)."""
        state = self.state(now)
        if state == "queued":
            return 0
        if state != "running" or self.run_seconds <= 0:
            return self.steps
        return min(self.steps, int(self.steps * (now - self.started_at) / self.run_seconds))

    def next_change(self, now: float) -> float | None:
        """When the observable state (position, step, state) next changes; None when final."""
        state = self.state(now)
        if state in ("completed", "failed", "cancelled"):
            return None
        if state == "queued":
            return self.started_at
        if self.run_seconds > 0 and self.steps > 0:
            step_length = self.run_seconds / self.steps
            upcoming = self.started_at + (self.step(now) + 1) * step_length
            return min(upcoming, self.finished_at)
        return self.finished_at
