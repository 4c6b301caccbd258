"""Polling schedules: how long a flow waits between status checks.

Starts fast, so a job that finishes quickly is picked up within tens of milliseconds, and backs
off geometrically to a ceiling, so a long job costs few requests.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["PollSchedule"]


@dataclass(frozen=True)
class PollSchedule:
    initial: float = 0.05
    factor: float = 1.5
    ceiling: float = 2.0

    def intervals(self) -> Iterator[float]:
        """An endless sequence of waits: initial, initial*factor, ..., ceiling, ceiling, ..."""
        delay = self.initial
        while True:
            yield delay
            delay = min(self.ceiling, delay * self.factor)
