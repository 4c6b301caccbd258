"""The emulator kit: provider-shaped HTTP apps for offline tests.

An :class:`Emulator` subclass declares routes with :func:`route`; each handler takes an
:class:`EmuRequest` and returns an :class:`EmuResponse` — or a :class:`Defer` meaning "answer
later" (latency, long polls), so handlers never block. The same emulator runs

* in-process, through :meth:`Emulator.transport` (an httpx transport for sync *and* async
  clients; deferrals sleep with ``time.sleep`` or ``anyio.sleep`` as the client needs), and
* on a real ``127.0.0.1`` port, through :meth:`Emulator.serve` (for official SDKs and for
  anything that must cross a socket).

Behaviour is scripted through :attr:`Emulator.script` (failure bursts with ``Retry-After``,
response latency) and every request is kept in :attr:`Emulator.log`.
"""

from __future__ import annotations

import json as _json
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import anyio
import httpx

__all__ = [
    "Defer",
    "EmuRequest",
    "EmuResponse",
    "Emulator",
    "EmulatorTransport",
    "Failure",
    "Script",
    "route",
]


@dataclass
class EmuRequest:
    """A request as an emulator handler sees it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes = b""
    received_at: float = 0.0

    def json(self) -> Any:
        return _json.loads(self.body) if self.body else None

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass
class EmuResponse:
    """An emulator's answer. ``json`` wins over ``body`` when both are given."""

    status: int = 200
    json: Any = None
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    def encoded(self) -> tuple[int, dict[str, str], bytes]:
        headers = dict(self.headers)
        body = self.body
        if self.json is not None:
            body = _json.dumps(self.json).encode()
            headers.setdefault("content-type", "application/json")
        return self.status, headers, body


@dataclass
class Defer:
    """Answer after ``seconds`` by calling ``resume`` (which may defer again)."""

    seconds: float
    resume: Callable[[], EmuResponse | Defer]


Handler = Callable[..., "EmuResponse | Defer"]


def route(method: str, pattern: str) -> Callable[[Handler], Handler]:
    """Declare an emulator handler for ``method`` and a full-match path regex.

    Named groups become keyword arguments of the handler.
    """

    def mark(function: Handler) -> Handler:
        function._emulator_route = (method.upper(), re.compile(pattern))  # type: ignore[attr-defined]
        return function

    return mark


@dataclass
class Failure:
    """A scripted failure answered instead of the real handler."""

    status: int
    remaining: int
    path: re.Pattern[str] | None = None
    method: str | None = None
    retry_after: float | None = None
    retry_after_ms: float | None = None
    body: Any = None

    def matches(self, request: EmuRequest) -> bool:
        if self.method and request.method != self.method.upper():
            return False
        return self.path is None or bool(self.path.search(request.path))

    def response(self) -> EmuResponse:
        headers: dict[str, str] = {}
        if self.retry_after is not None:
            headers["retry-after"] = f"{self.retry_after:g}"
        if self.retry_after_ms is not None:
            headers["retry-after-ms"] = f"{self.retry_after_ms:g}"
        body = self.body if self.body is not None else {"detail": f"scripted failure {self.status}"}
        return EmuResponse(self.status, json=body, headers=headers)


@dataclass
class Script:
    """Scriptable behaviour shared by every emulator.

    Attributes:
        latency: seconds added before every answer.
        queue_seconds: how long new jobs wait in the queue (queue-style emulators).
        run_seconds: how long jobs run once started.
        steps: denoising steps jobs report while running.
    """

    latency: float = 0.0
    queue_seconds: float = 0.0
    run_seconds: float = 0.0
    steps: int = 4
    failures: list[Failure] = field(default_factory=list)
    job_failures: list[str] = field(default_factory=list)

    def fail_next(
        self,
        status: int,
        count: int = 1,
        *,
        path: str | None = None,
        method: str | None = None,
        retry_after: float | None = None,
        retry_after_ms: float | None = None,
        body: Any = None,
    ) -> None:
        """Answer the next ``count`` matching requests with ``status`` (e.g. a 429 burst)."""
        self.failures.append(
            Failure(
                status,
                count,
                re.compile(path) if path else None,
                method,
                retry_after,
                retry_after_ms,
                body,
            )
        )

    def fail_jobs(self, count: int = 1, message: str = "scripted job failure") -> None:
        """The next ``count`` jobs accepted end in the provider's failed state."""
        self.job_failures.extend([message] * count)

    def take_failure(self, request: EmuRequest) -> EmuResponse | None:
        for failure in self.failures:
            if failure.remaining > 0 and failure.matches(request):
                failure.remaining -= 1
                return failure.response()
        return None

    def take_job_failure(self) -> str | None:
        return self.job_failures.pop(0) if self.job_failures else None


class Emulator:
    """Base of every provider emulator. Thread-safe; the clock is injectable."""

    base_url = "http://emulator.fluxkit.local"

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.script = Script()
        self.log: list[EmuRequest] = []
        self.lock = threading.RLock()
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []
        for name in dir(type(self)):
            function = getattr(type(self), name)
            spec = getattr(function, "_emulator_route", None)
            if spec is not None:
                self._routes.append((spec[0], spec[1], getattr(self, name)))

    # -- dispatch ------------------------------------------------------------------------

    def handle(self, request: EmuRequest) -> EmuResponse | Defer:
        request.received_at = self.clock()
        with self.lock:
            self.log.append(request)
            failure = self.script.take_failure(request)
        if failure is not None:
            answer: EmuResponse | Defer = failure
        else:
            answer = self._dispatch(request)
        latency = self.script.latency
        if latency > 0:
            return Defer(latency, lambda: answer)
        return answer

    def _dispatch(self, request: EmuRequest) -> EmuResponse | Defer:
        allowed = False
        for method, pattern, handler in self._routes:
            match = pattern.fullmatch(request.path)
            if match is None:
                continue
            if method != request.method:
                allowed = True
                continue
            with self.lock:
                return handler(request, **match.groupdict())
        if allowed:
            return EmuResponse(405, json={"detail": "Method Not Allowed"})
        return EmuResponse(404, json={"detail": f"Not Found: {request.path}"})

    def requests(self, path: str | None = None, method: str | None = None) -> list[EmuRequest]:
        """Logged requests whose path matches the regex ``path`` (and ``method``)."""
        pattern = re.compile(path) if path else None
        with self.lock:
            return [
                r
                for r in self.log
                if (pattern is None or pattern.search(r.path))
                and (method is None or r.method == method.upper())
            ]

    def resolve(
        self, request: EmuRequest, *, timeout: float | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        """Answer ``request`` synchronously, sleeping through deferrals (server threads).

        Raises:
            TimeoutError: the deferrals would outlast the client's read ``timeout``.
        """
        answer = self.handle(request)
        waited = 0.0
        while isinstance(answer, Defer):
            if timeout is not None and waited + answer.seconds > timeout:
                time.sleep(max(0.0, timeout - waited))
                raise TimeoutError("emulated read timeout")
            time.sleep(answer.seconds)
            waited += answer.seconds
            answer = answer.resume()
        return answer.encoded()

    async def aresolve(
        self,
        request: EmuRequest,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - emulates the client's read timeout
    ) -> tuple[int, dict[str, str], bytes]:
        answer = self.handle(request)
        waited = 0.0
        while isinstance(answer, Defer):
            if timeout is not None and waited + answer.seconds > timeout:
                await anyio.sleep(max(0.0, timeout - waited))
                raise TimeoutError("emulated read timeout")
            await anyio.sleep(answer.seconds)
            waited += answer.seconds
            answer = answer.resume()
        return answer.encoded()

    # -- adapters ------------------------------------------------------------------------

    def transport(self) -> EmulatorTransport:
        """An httpx transport that answers in-process (usable by Client and AsyncClient)."""
        return EmulatorTransport(self)

    @contextmanager
    def serve(self, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
        """Run on a real loopback port; yields the base URL (``http://127.0.0.1:PORT``)."""
        server = _Server((host, port), _handler_class(self))
        thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="fluxkit-emulator",
            daemon=True,
        )
        thread.start()
        try:
            yield f"http://{host}:{server.server_address[1]}"
        finally:
            server.shutdown()
            server.server_close()
            thread.join()


def _emu_request(method: str, url: str, headers: dict[str, str], body: bytes) -> EmuRequest:
    parts = urlsplit(url)
    return EmuRequest(
        method.upper(),
        parts.path or "/",
        dict(parse_qsl(parts.query)),
        {k.lower(): v for k, v in headers.items()},
        body,
    )


class EmulatorTransport(httpx.BaseTransport, httpx.AsyncBaseTransport):
    """Routes httpx requests to an emulator without a socket."""

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        emu_request = _emu_request(
            request.method, str(request.url), dict(request.headers), request.read()
        )
        status, headers, body = self.emulator.resolve(emu_request)
        return httpx.Response(status, headers=headers, content=body, request=request)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        emu_request = _emu_request(request.method, str(request.url), dict(request.headers), body)
        status, headers, content = await self.emulator.aresolve(emu_request)
        return httpx.Response(status, headers=headers, content=content, request=request)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (deadline, cancelled task) is normal here, not a server error.
        import sys

        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


def _handler_class(emulator: Emulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as real providers
        disable_nagle_algorithm = True  # headers and body go out as two writes

        def _serve(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            request = _emu_request(self.command, self.path, dict(self.headers.items()), body)
            status, headers, content = emulator.resolve(request)
            self.send_response(status)
            for key, value in headers.items():
                if key.lower() not in ("content-length", "transfer-encoding"):
                    self.send_header(key, value)
            self.send_header("content-length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _serve

        def log_message(self, format: str, *args: Any) -> None:
            """Silence the default stderr access log."""

    return Handler
