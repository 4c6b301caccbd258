"""The job model every trainer shares: statuses, events, snapshots and the JSON handle."""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "TERMINAL",
    "StatusChanged",
    "TrainingHandle",
    "TrainingSnapshot",
    "TrainingStatus",
    "TrainingStep",
    "handle_path_for",
]

TrainingStatus = Literal["queued", "starting", "running", "succeeded", "failed", "canceled"]
TERMINAL: frozenset[str] = frozenset({"succeeded", "failed", "canceled"})
HANDLE_VERSION = 1


@dataclass(frozen=True)
class TrainingStep:
    """Training step ``step`` of ``total`` done; ``loss`` when the trainer reports it."""

    step: int
    total: int
    loss: float | None = None
    job: int = 0


@dataclass(frozen=True)
class StatusChanged:
    """The training moved to ``status``."""

    status: TrainingStatus
    job: int = 0


@dataclass(frozen=True)
class TrainingSnapshot:
    """What the provider (or the local loop) last said about a training."""

    status: TrainingStatus
    step: int = 0
    total: int | None = None
    loss: float | None = None
    logs: tuple[str, ...] = ()
    error: str | None = None
    output: Any = None
    run_seconds: float | None = None
    position: int | None = None
    """Place in the provider's queue, where it says (fal)."""


@dataclass
class TrainingHandle:
    """A small JSON record of one training, saved next to the dataset.

    It is written (atomically) *before* the paid submission and again the moment the provider
    accepts it, so a crashed script finds the job again instead of paying for a second one.
    ``job_id`` None with ``status == "submitting"`` means a submission was in flight when the
    process died: fluxkit then refuses to submit again until the user checks the provider.
    """

    backend: str
    fingerprint: str
    dataset: str
    trigger_word: str
    steps: int
    model: str
    status: str = "submitting"
    job_id: str | None = None
    destination: str | None = None
    lora_path: str | None = None
    lora_sha256: str | None = None
    push: str | None = None
    error: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    created_at: float = field(default_factory=time.time)
    version: int = HANDLE_VERSION

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write atomically (readers see the old or the new file, never half of one)."""
        from fluxkit._files import atomic_write

        target = Path(path)
        payload = json.dumps(asdict(self), indent=1, sort_keys=True).encode()
        atomic_write(target, payload, overwrite=True)
        return target

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> TrainingHandle:
        from fluxkit._exceptions import InvalidRequestError

        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
            return cls(**known)
        except (OSError, ValueError, TypeError) as exc:
            raise InvalidRequestError(
                "handle", str(path), "a training handle written by fluxkit", reason=str(exc)
            ) from exc


def handle_path_for(dataset: str | os.PathLike[str], backend: str) -> Path:
    """``photos/`` -> ``photos.fluxkit-train-fal.json`` beside it (a sibling, never inside)."""
    path = Path(dataset).expanduser().absolute()
    return path.with_name(f"{path.name}.fluxkit-train-{backend}.json")
