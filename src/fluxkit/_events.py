"""Progress events, the same on every backend.

Delivered through ``on_event=`` callbacks and ``Generator.stream()``. ``job`` is the index of the
provider call when ``n`` is split across several calls (0 otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fluxkit._results import GenerationResult

__all__ = ["Completed", "Event", "Log", "Queued", "Retrying", "Started", "Step", "Submitted"]


@dataclass(frozen=True)
class Submitted:
    """The provider accepted the job: ``request_id`` identifies it there from now on.

    The first event of every hosted job, emitted the moment the id is known — before any
    waiting — so an app (or ``fluxkit.batch``'s journal) can record it and collect the job
    after a crash instead of paying for it twice.
    """

    request_id: str
    job: int = 0


@dataclass(frozen=True)
class Queued:
    """Waiting in the provider's queue; ``position`` when the provider reports it."""

    position: int | None = None
    request_id: str | None = None
    job: int = 0


@dataclass(frozen=True)
class Started:
    """The provider started running the job."""

    request_id: str | None = None
    job: int = 0


@dataclass(frozen=True)
class Step:
    """Denoising step ``i`` of ``total`` finished (1-based)."""

    i: int
    total: int
    job: int = 0


@dataclass(frozen=True)
class Log:
    """A log line from the provider or the local pipeline."""

    message: str
    job: int = 0


@dataclass(frozen=True)
class Retrying:
    """A request failed transiently; the driver waits ``delay`` seconds and tries again."""

    attempt: int
    delay: float
    reason: str
    job: int = 0


@dataclass(frozen=True)
class Completed:
    """The whole generation finished; the last event of every stream."""

    result: GenerationResult


Event = Submitted | Queued | Started | Step | Log | Retrying | Completed
EVENT_TYPES = (Submitted, Queued, Started, Step, Log, Retrying, Completed)
