"""What a hosted trainer implements, and the follow flow they share (pure: flows only)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any

from fluxkit._core import Accepted, Flow, HttpRequest, HttpResponse, Wait, send
from fluxkit._exceptions import JobCancelledError, JobFailedError, ResultUnavailableError
from fluxkit.training._events import SnapshotEvents
from fluxkit.training._model import TERMINAL, TrainingSnapshot

__all__ = ["HostedTrainer", "download", "follow"]


class HostedTrainer(ABC):
    """One provider's training API as flows; `fluxkit.training.Trainer` runs them."""

    name: str
    model: str

    @abstractmethod
    def prepare(self, archive: bytes, sha256: str, options: Mapping[str, Any]) -> Flow[Any]:
        """Upload the dataset and validate options; returns the submission body. Creates no
        paid job (uploads are storage, not training)."""

    @abstractmethod
    def submit(self, body: Any) -> Flow[str]:
        """Create the training (paid) and yield `Accepted`; returns its id."""

    @abstractmethod
    def cancel_request(self, job_id: str) -> HttpRequest:
        """The request that stops the training at the provider."""

    @abstractmethod
    def snapshot(self, job_id: str) -> Flow[TrainingSnapshot]:
        """One look at the training."""

    @abstractmethod
    def weights(self, job_id: str, snapshot: TrainingSnapshot) -> Flow[dict[str, bytes]]:
        """Download the finished training's files (``lora.safetensors`` and others) at once."""

    def estimate_steps(self, options: Mapping[str, Any]) -> int:
        return int(options.get("steps") or 1000)


def follow(
    trainer: HostedTrainer, job_id: str, *, poll_interval: float, raise_on_failure: bool = True
) -> Flow[TrainingSnapshot]:
    """Follow a training until it ends: the driver cancels it on deadline or interruption."""
    yield Accepted(job_id, trainer.cancel_request(job_id))
    tracker = SnapshotEvents(job_id)
    while True:
        snapshot = yield from trainer.snapshot(job_id)
        yield from tracker.events(snapshot)
        if snapshot.status in TERMINAL:
            break
        yield Wait(poll_interval)
    if raise_on_failure:
        raise_for(trainer.name, job_id, snapshot)
    return snapshot


def raise_for(backend: str, job_id: str, snapshot: TrainingSnapshot) -> None:
    if snapshot.status == "failed":
        raise JobFailedError(
            f"training failed: {snapshot.error or 'no error given'}",
            backend=backend,
            request_id=job_id,
            logs=list(snapshot.logs[-20:]),
            provider_message=snapshot.error,
        )
    if snapshot.status == "canceled":
        raise JobCancelledError("the training was cancelled", backend=backend, request_id=job_id)


def download(url: str, *, backend: str, job_id: str, what: str) -> Flow[bytes]:
    """GET a provider output URL now (they expire); a dead URL is a ResultUnavailableError."""
    answer: HttpResponse = yield from send(
        HttpRequest("GET", url, retry="idempotent", raise_for_status=False, timeout=300.0)
    )
    if not answer.ok:
        raise ResultUnavailableError(
            f"the training finished but its {what} could not be downloaded (HTTP "
            f"{answer.status_code}); provider URLs expire — download promptly",
            backend=backend,
            request_id=job_id,
            status_code=answer.status_code,
            urls=[url],
        )
    return answer.content
