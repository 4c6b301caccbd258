"""Training progress from log text (pure): tqdm bars with ``loss`` postfixes, step counters.

ai-toolkit (Replicate's trainer) prints ``flux_train_replicate:  83%|████▎ | 2482/3000
[43:27<09:04, 1.05s/it, lr: 4.0e-04 loss: 2.472e-01]``, refreshed with ``\\r``; fal's trainers
are undocumented and parsed best-effort the same way (``step 120/1000 loss=0.31``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Progress", "parse_progress", "split_lines"]

_BAR = re.compile(r"(\d+)/(\d+)\s*\[")
_WORD = re.compile(r"\bstep[s]?\s*[:=]?\s*(\d+)\s*(?:/|of)\s*(\d+)", re.IGNORECASE)
_LOSS = re.compile(r"\bloss\s*[:=]\s*([-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)", re.IGNORECASE)


@dataclass(frozen=True)
class Progress:
    step: int
    total: int
    loss: float | None


def split_lines(text: str) -> list[str]:
    """Lines of a log, splitting on ``\\r`` too (tqdm redraws in place)."""
    return [line for line in re.split(r"[\r\n]+", text) if line.strip()]


def progress_of(line: str) -> Progress | None:
    """The step (and loss) a single log line reports, or None."""
    match = _BAR.search(line) or _WORD.search(line)
    if match is None:
        return None
    step, total = int(match[1]), int(match[2])
    if total <= 0 or not 0 <= step <= total:
        return None
    loss_match = _LOSS.search(line)
    return Progress(step, total, float(loss_match[1]) if loss_match else None)


def parse_progress(lines: list[str]) -> Progress | None:
    """The latest progress among ``lines`` (the last line that reports one).

    Example:
        ```python
        from fluxkit.training._logs import parse_progress

        parse_progress(["x: 50%|##  | 5/10 [00:01<00:01, 4it/s, lr: 4e-04 loss: 2.5e-01]"])
        # Progress(step=5, total=10, loss=0.25)
        ```
    """
    for line in reversed(lines):
        found = progress_of(line)
        if found is not None:
            return found
    return None
