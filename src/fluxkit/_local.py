"""Running a local backend's job: one job per device at a time, across threads and loops."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from fluxkit._drivers import FlowOutcome
from fluxkit._events import Event
from fluxkit.backends._base import Call, CallOutput, CancelToken, LocalBackend

__all__ = ["local_outcome", "run_local"]

_DEVICE_LOCKS: dict[str, threading.Lock] = {}
_DEVICE_LOCKS_GUARD = threading.Lock()


def _device_lock(key: str) -> threading.Lock:
    """One lock per device, process-wide: a GPU runs one job at a time, sync or async."""
    with _DEVICE_LOCKS_GUARD:
        return _DEVICE_LOCKS.setdefault(key, threading.Lock())


def run_local(
    backend: LocalBackend, call: Call, emit: Callable[[Event], None], token: CancelToken
) -> CallOutput:
    with _device_lock(backend.device_key):
        token.raise_if_cancelled(backend.name)
        return backend.run(call, emit, token)


def local_outcome(output: CallOutput, started: float) -> FlowOutcome[CallOutput]:
    return FlowOutcome(
        output,
        output.request_id,
        output.queued_seconds,
        output.running_seconds or time.monotonic() - started,
    )
