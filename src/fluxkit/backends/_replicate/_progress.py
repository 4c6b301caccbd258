"""Reading a prediction as it runs: events from its logs, its seed and its timings (pure).

Replicate returns ``logs`` as one cumulative string that grows while the model runs
(https://replicate.com/docs/topics/predictions/lifecycle). cog-flux prints ``Using seed: N``
and the sampler's tqdm bar (``50%|█████     | 14/28 [...]``, the same pattern the official SDK's
``Prediction.progress`` parses), so steps and the seed actually used can be read from it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fluxkit._events import Log, Queued, Started, Step
from fluxkit.backends._steps import TQDM_BAR

__all__ = ["TERMINAL", "PredictionWatcher", "reported_seed", "timings"]

TERMINAL = frozenset({"succeeded", "failed", "canceled", "aborted"})
_TQDM = TQDM_BAR  # shared with fal (backends/_steps.py)
_SEED = re.compile(r"Using seed: (\d+)")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


@dataclass
class PredictionWatcher:
    """Turns successive views of one prediction into ``Queued``/``Started``/``Log``/``Step``.

    Log text is split into lines; a line still being written (no line break yet) waits for the
    next view, except that a progress bar in it already counts. Progress-bar lines become
    ``Step`` events, not ``Log`` lines.
    """

    request_id: str
    queued: bool = False
    started: bool = False
    step: int = 0
    lines: list[str] = field(default_factory=list)
    _consumed: int = 0
    _partial: str = ""

    def observe(self, prediction: dict[str, Any]) -> list[Any]:
        status = prediction.get("status")
        events: list[Any] = []
        if status == "starting" and not (self.queued or self.started):
            self.queued = True
            events.append(Queued(None, request_id=self.request_id))
        if status in ("processing", "succeeded") and not self.started:
            self.started = True
            events.append(Started(request_id=self.request_id))
        logs = prediction.get("logs") or ""
        if len(logs) < self._consumed:  # the provider rewrote the logs: start again
            self._consumed, self._partial = 0, ""
        text = self._partial + logs[self._consumed :]
        self._consumed = len(logs)
        *complete, self._partial = _LINE_BREAK.split(text)
        if status in TERMINAL:
            complete.append(self._partial)
            self._partial = ""
        for line in complete:
            if not self._steps(line, events) and line.strip():
                self.lines.append(line)
                events.append(Log(line))
        self._steps(self._partial, events)
        return events

    def _steps(self, line: str, events: list[Any]) -> bool:
        match = _TQDM.search(line)
        if match is None:
            return False
        current, total = int(match[2]), int(match[3])
        for step in range(self.step + 1, current + 1):
            events.append(Step(step, total))
        self.step = max(self.step, current)
        return True


def reported_seed(logs: str | None) -> int | None:
    """The seed the model says it used (cog-flux prints ``Using seed: N``)."""
    match = _SEED.search(logs or "")
    return int(match[1]) if match else None


def _instant(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def timings(prediction: dict[str, Any]) -> tuple[float | None, float | None]:
    """(queued, running) seconds as the provider reports them.

    Queued is ``started_at - created_at`` (cold boots included); running is
    ``metrics.predict_time``, else ``completed_at - started_at``.
    """
    created, started, completed = (
        _instant(prediction.get(key)) for key in ("created_at", "started_at", "completed_at")
    )
    queued = (started - created).total_seconds() if created and started else None
    metrics = prediction.get("metrics") or {}
    running: float | None = None
    if isinstance(metrics.get("predict_time"), int | float):
        running = float(metrics["predict_time"])
    elif started and completed:
        running = (completed - started).total_seconds()
    return queued, running
