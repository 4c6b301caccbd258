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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from fluxkit._config import Secret

__all__ = ["SUBMIT_MODES", "Accepted", "HttpRequest", "HttpResponse", "RetryMode", "Wait"]

RetryMode = Literal["submit", "submit-deduplicated", "idempotent", "never"]
"""How a failed request may be retried.

* ``"submit"`` — creates a job: resent only where the provider provably did not accept it (429,
  503, a connection that failed before the request was sent). 502, 504, a reset or a read
  timeout after sending mean "maybe accepted": the driver raises ``JobMayExistError`` instead of
  paying twice.
* ``"submit-deduplicated"`` — creates a job, but carries a key the provider deduplicates on
  (an idempotency key): resending is safe after any transient failure.
* ``"idempotent"`` — status, result, download, cancel: retried on 429, 5xx and network errors.
* ``"never"`` — sent once.
"""

SUBMIT_MODES = frozenset({"submit", "submit-deduplicated"})
"""The retry modes of a request that creates a (paid) job."""


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """One HTTP request a flow wants sent."""

    method: str
    url: str
    # never shown: they carry credentials (as ``Secret`` values, revealed only by the driver)
    headers: Mapping[str, str | Secret] = field(default_factory=dict, repr=False)
    json: Any = None
    """The JSON body. ``Secret`` values anywhere inside it (credentials a provider takes in the
    body, such as RunPod's ``s3Config``) are revealed by the driver only when it sends."""
    content: bytes | None = None
    params: Mapping[str, str] | None = None
    retry: RetryMode = "idempotent"
    raise_for_status: bool = True
    """When True the driver maps a final non-2xx answer to the error tree itself; when False the
    flow receives it and decides."""
    timeout: float | None = None
    """Per-read socket timeout in seconds (the driver also caps it by the deadline)."""
    deadline_headers: Callable[[float], Mapping[str, str]] | None = field(
        default=None, compare=False
    )
    """Headers that depend on the time left, built by the driver at send time from the seconds
    remaining before the call's deadline: a server-side deadline (fal ``X-Fal-Request-Timeout``,
    Replicate ``Cancel-After``) or a hold that must not outlast it (``Prefer: wait``). Flows hold
    no clock, so they say *how* and the driver says *when*. A header given as ``""`` is
    removed."""

    deadline_json: Callable[[float], Mapping[str, Any]] | None = field(default=None, compare=False)
    """JSON members that depend on the time left, merged into ``json`` by the driver at send time
    (mappings are merged recursively, other values replace): a server-side deadline carried in
    the body rather than a header, e.g. RunPod's ``{"policy": {"executionTimeout": ms, "ttl":
    ms}}``. Like :attr:`deadline_headers` it is called only when the call has a deadline."""

    submit_grace: bool = True
    """For a submission: may it outlive a cancellation or the deadline (bounded) so the job's
    id is learnt and the job cancelled? False for a one-shot call whose provider has no cancel
    (Together): its answer past the deadline is of no use to anyone."""

    @property
    def creates_job(self) -> bool:
        """Whether sending this may create a paid job."""
        return self.retry in SUBMIT_MODES


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
