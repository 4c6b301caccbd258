"""The flow type and the tiny sub-flows every backend composes."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, TypeVar

from fluxkit._core._wire import Accepted, HttpRequest, HttpResponse, Wait

__all__ = ["Flow", "Step", "accept", "send", "wait"]

T = TypeVar("T")

Step = Any  # HttpRequest | Wait | Accepted | an Event; kept open so events need no import here
Flow = Generator[Step, "HttpResponse | None", T]
"""A generator yielding steps for a driver and returning the flow's result."""


def send(request: HttpRequest) -> Generator[Step, HttpResponse | None, HttpResponse]:
    """Yield ``request`` and return the driver's response, typed."""
    response = yield request
    if response is None:  # pragma: no cover - a driver bug, not a provider one
        raise RuntimeError("driver sent no response for an HttpRequest")
    return response


def wait(seconds: float) -> Generator[Step, HttpResponse | None, None]:
    yield Wait(seconds)


def accept(request_id: str, cancel: HttpRequest | None = None) -> Generator[Step, Any, None]:
    yield Accepted(request_id, cancel)
