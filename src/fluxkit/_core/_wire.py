"""What flows and drivers exchange: plain frozen values, no sockets, no clocks.

A flow yields one of these steps and receives an :class:`HttpResponse` back after each
:class:`HttpRequest` (``None`` after the others):

* :class:`HttpRequest` — send this; ``retry`` says what the driver may do when it fails;
* :class:`Wait` — sleep this long (the driver shortens it to the deadline);
* :class:`Accepted` — the provider accepted the job: from now on the driver never resubmits, and
  on cancellation or deadline it sends ``cancel`` so the job stops at the provider too;
* any progress event (``fluxkit.Queued``, ``Log``, ...) — forwarded to the caller's ``on_event``.
"""

from __future__ import annotations

import json as _json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["Accepted", "HttpRequest", "HttpResponse", "RetryMode", "Wait"]

RetryMode = Literal["submit", "idempotent", "never"]
"""How a failed request may be retried.

* ``"submit"`` — creates a job: retried only on answers that prove it was *not* accepted
  (429, 502, 503, 504, connection refused), never on a read timeout after the body was sent.
* ``"idempotent"`` — status, result, download, cancel: retried on 429, 5xx and network errors.
* ``"never"`` — sent once.
"""


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """One HTTP request a flow wants sent."""

    method: str
    url: str
    # never shown: they carry credentials
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    json: Any = None
    content: bytes | None = None
    params: Mapping[str, str] | None = None
    retry: RetryMode = "idempotent"
    raise_for_status: bool = True
    """When True the driver maps a final non-2xx answer to the error tree itself; when False the
    flow receives it and decides."""
    timeout: float | None = None
    """Per-request socket timeout in seconds (the driver also caps it by the deadline)."""


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """An HTTP response as flows see it: status, lower-cased headers and the whole body."""

    status_code: int
    headers: Mapping[str, str]
    content: bytes
    url: str = ""

    @property
    def ok(self) -> bool:
        return 200 <= self.status_code < 300

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return _json.loads(self.content) if self.content else None

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass(frozen=True, slots=True)
class Wait:
    """Sleep ``seconds`` before the next step."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Accepted:
    """The provider accepted the job. ``cancel`` stops it there, if the provider can."""

    request_id: str
    cancel: HttpRequest | None = None
