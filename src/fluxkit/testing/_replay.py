"""Drive a flow with canned responses: backend logic tested without any transport."""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from typing import Any

from fluxkit._core import Accepted, HttpRequest, HttpResponse, Wait

__all__ = ["Replay", "replay"]


@dataclass
class Replay:
    """What a replayed flow did: its result, the requests it sent, its waits, events, acceptance."""

    result: Any
    requests: list[HttpRequest] = field(default_factory=list)
    waits: list[float] = field(default_factory=list)
    events: list[Any] = field(default_factory=list)
    accepted: Accepted | None = None


def replay(flow: Generator[Any, Any, Any], responses: Sequence[HttpResponse]) -> Replay:
    """Run ``flow``, answering its requests with ``responses`` in order.

    Raises AssertionError when the flow asks for more responses than given, or finishes with
    some unused (a half-used script means the test no longer describes the flow).

    Example:
        ```python
        from fluxkit._core import HttpResponse
        from fluxkit.testing import replay

        ok = HttpResponse(200, {}, b'{"status": "COMPLETED"}')
        run = replay(my_backend.flow(call), [submitted, ok, result])
        assert run.requests[0].retry == "submit"
        ```
    """
    record = Replay(result=None)
    pending = list(responses)
    reply: HttpResponse | None = None
    while True:
        try:
            step = flow.send(reply)
        except StopIteration as stop:
            assert not pending, f"{len(pending)} canned response(s) left unused"
            record.result = stop.value
            return record
        reply = None
        if isinstance(step, HttpRequest):
            assert pending, f"flow sent {step.method} {step.url} but no canned response is left"
            record.requests.append(step)
            reply = pending.pop(0)
        elif isinstance(step, Wait):
            record.waits.append(step.seconds)
        elif isinstance(step, Accepted):
            record.accepted = step
        else:
            record.events.append(step)
