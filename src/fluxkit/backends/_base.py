"""The backend contract.

Two kinds of backend plug into the façade:

* `HttpBackend` — a hosted provider. It builds requests and parses responses in a *flow*
  (a generator yielding ``HttpRequest``/``Wait``/``Accepted``/events, see ``fluxkit._core``) and
  never touches a socket or a clock: the drivers in ``fluxkit._drivers`` do that.
* `LocalBackend` — work done in this process (the diffusers pipeline). It has a blocking
  `LocalBackend.run`; the async façade calls it in a worker thread.

Either way the façade hands the backend one `Call` at a time (a slice of the user's ``n``
images with their seeds) and gets a `CallOutput` back.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from fluxkit._capabilities import Capabilities
from fluxkit._config import Secret, resolve_secret
from fluxkit._exceptions import UnsupportedFeatureError

if TYPE_CHECKING:
    import httpx

    from fluxkit._core import Flow
    from fluxkit._events import Event
    from fluxkit._types import GenerationRequest

__all__ = ["Call", "CallOutput", "CancelToken", "HttpBackend", "ImageOutput", "LocalBackend"]


@dataclass(frozen=True)
class Call:
    """One provider call: ``request.n`` images whose seeds are ``seeds``.

    ``request`` is resolved (defaults filled, ``seed == seeds[0]``, ``n == len(seeds)``);
    ``model`` is the provider's model id; ``index`` numbers the calls of one generation.
    """

    request: GenerationRequest
    model: str
    seeds: tuple[int, ...]
    index: int = 0
    idempotency_key: str | None = None
    """A key the provider deduplicates submissions on, where it supports one
    (``HttpBackend.deduplicates()``); set from ``generate(..., idempotency_key=)``."""
    follow_request_id: str | None = None
    """Collect this already accepted job instead of submitting (``Generator.collect``)."""


@dataclass
class ImageOutput:
    """One image as a backend returns it: bytes or a URL, plus what the provider said."""

    seed: int | None
    width: int
    height: int
    format: str = "png"
    data: bytes | None = None
    url: str | None = None
    nsfw: bool = False


@dataclass
class CallOutput:
    images: list[ImageOutput]
    request_id: str | None = None
    warnings: list[Warning] = field(default_factory=list)
    queued_seconds: float | None = None
    running_seconds: float | None = None


class CancelToken:
    """Cross-thread cancellation for local work: set by the façade, polled at each step."""

    def __init__(
        self, deadline: float | None = None, *, linked: threading.Event | None = None
    ) -> None:
        self._event = threading.Event()
        self._linked = linked
        self.deadline = deadline
        self.timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        self.reason: str | None = None

    def cancel(self, reason: str = "cancelled") -> None:
        self.reason = reason
        self._event.set()

    @property
    def cancelled(self) -> bool:
        if self._event.is_set():
            return True
        if self._linked is not None and self._linked.is_set():
            self.reason = self.reason or "cancelled"
            return True
        if self.deadline is not None and time.monotonic() >= self.deadline:
            self.reason = "deadline"
            return True
        return False

    def raise_if_cancelled(self, backend: str, *, request_id: str | None = None) -> None:
        """Raise DeadlineExceeded or JobCancelledError when the job must stop."""
        if not self.cancelled:
            return
        if self.reason == "deadline" and self.deadline is not None:
            from fluxkit._exceptions import DeadlineExceeded

            raise DeadlineExceeded(
                self.timeout or 0.0,
                backend=backend,
                request_id=request_id,
                cancelled=True,
                local=True,
            )
        from fluxkit._exceptions import JobCancelledError

        raise JobCancelledError(
            f"cancelled ({self.reason})", backend=backend, request_id=request_id
        )


class _BackendBase(ABC):
    name: ClassVar[str]
    capabilities_table: ClassVar[Mapping[str, Capabilities]] = {}
    model_aliases: ClassVar[Mapping[str, str]] = {}
    default_model: ClassVar[str]

    def __init__(self, *, model: str | None = None) -> None:
        self.model = model

    def resolve_model(self, request: GenerationRequest) -> str:
        """The provider model id for ``request`` (request.model, then the backend's, then default)."""
        wanted = request.model or self.model or self.default_model
        return self.model_aliases.get(wanted, wanted)

    def capabilities(self, model: str) -> Capabilities:
        """Facts for ``model``; a table entry ``"*"`` covers models not listed."""
        caps = self.capabilities_table.get(model) or self.capabilities_table.get("*")
        if caps is None:
            known = sorted(set(self.capabilities_table) | set(self.model_aliases))
            raise UnsupportedFeatureError(
                f"model {model!r}",
                backend=self.name,
                model=None,
                field="model",
                value=model,
                allowed=", ".join(known),
            )
        return caps

    def close(self) -> None:  # noqa: B027 - an optional hook, not an abstract method
        """Release resources the backend holds (none by default)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={self.model!r})"


class HttpBackend(_BackendBase):
    """A hosted provider spoken to over HTTP through flows."""

    env_vars: ClassVar[tuple[str, ...]] = ()
    default_base_url: ClassVar[str] = ""

    def __init__(
        self,
        *,
        api_key: str | Secret | None = None,
        base_url: str | None = None,
        model: str | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(model=model)
        self.api_key = self.resolve_credentials(api_key, environ)
        self.base_url = (base_url or self.default_base_url).rstrip("/")

    def resolve_credentials(
        self, api_key: str | Secret | None, environ: Mapping[str, str] | None
    ) -> Secret | None:
        if not self.env_vars:
            return None
        return resolve_secret(api_key, env_vars=self.env_vars, backend=self.name, environ=environ)

    def deduplicates(self) -> bool:
        """Whether a submission carrying ``Call.idempotency_key`` can be sent again safely —
        the provider (or the flow, by looking the job up first) makes it the same job. Batches
        then resend jobs a crash left mid-submission instead of reporting them uncertain."""
        return False

    @abstractmethod
    def flow(self, call: Call) -> Flow[CallOutput]:
        """The submit -> poll -> fetch flow for one call."""

    def follow(self, call: Call, request_id: str) -> Flow[CallOutput]:
        """Collect a job this backend accepted earlier (by id) without submitting anything.

        Used to resume after a crash (``fluxkit.batch``, `Generator.collect`): the job
        is polled and its result fetched exactly as `flow` would have.

        Raises:
            UnsupportedFeatureError: the backend cannot look a job up by id.
        """
        raise UnsupportedFeatureError(
            "collecting a job by id",
            backend=self.name,
            model=call.model,
            supported_by=("fake", "fal", "replicate"),
        )

    def default_transport(self) -> httpx.BaseTransport | httpx.AsyncBaseTransport | None:
        """A transport of the backend's own, used when the user gives none (None: the network).

        Only the offline ``fake`` provider has one; emulators and proxies come in through the
        generators' ``transport=``/``http_client=``, the one seam.
        """
        return None

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(base_url={self.base_url!r}, model={self.model!r}, "
            f"api_key={self.api_key!r})"
        )


class LocalBackend(_BackendBase):
    """Work done in this process; `run` blocks and is called in a thread by async code."""

    @abstractmethod
    def run(self, call: Call, emit: Callable[[Event], None], token: CancelToken) -> CallOutput:
        """Generate the call's images, emitting events and honouring ``token`` at every step."""

    @property
    def device_key(self) -> str:
        """Jobs sharing a key run one at a time (one per GPU)."""
        return "cpu"

    def options(self) -> Mapping[str, Any]:
        return {}
