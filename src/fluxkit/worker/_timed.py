"""The local backend, timed: how long a job spent switching LoRAs and in the pipeline call."""

from __future__ import annotations

import time
from collections.abc import Callable

from fluxkit._events import Event
from fluxkit.backends._base import Call, CallOutput, CancelToken
from fluxkit.backends.diffusers import DiffusersBackend

__all__ = ["TimedBackend"]


class TimedBackend(DiffusersBackend):
    """:class:`DiffusersBackend` that records per-job LoRA switch and pipeline seconds."""

    lora_switch_seconds = 0.0
    pipeline_seconds = 0.0

    def reset_timings(self) -> None:
        self.lora_switch_seconds = 0.0
        self.pipeline_seconds = 0.0

    def _use_loras(self, call: Call, emit: Callable[[Event], None]) -> None:
        started = time.perf_counter()
        try:
            super()._use_loras(call, emit)
        finally:
            self.lora_switch_seconds += time.perf_counter() - started

    def run(self, call: Call, emit: Callable[[Event], None], token: CancelToken) -> CallOutput:
        started = time.perf_counter()
        switch_before = self.lora_switch_seconds
        try:
            return super().run(call, emit, token)
        finally:
            spent = time.perf_counter() - started
            self.pipeline_seconds += spent - (self.lora_switch_seconds - switch_before)
