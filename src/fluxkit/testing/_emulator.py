"""The emulator kit: provider-shaped HTTP apps for offline tests.

An `Emulator` subclass declares routes with `route`; each handler takes an
`EmuRequest` and returns an `EmuResponse` — or a `Defer` meaning "answer
later" (latency, long polls), so handlers never block. The same emulator runs

* in-process, through `Emulator.transport` (an httpx transport for sync *and* async
  clients; deferrals sleep with ``time.sleep`` or ``anyio.sleep`` as the client needs), and
* on a real ``127.0.0.1`` port, through `Emulator.serve` (for official SDKs and for
  anything that must cross a socket), served by asyncio + h11 on a background thread.

Behaviour is scripted through `Emulator.script` and every request is kept in
`Emulator.log`. The fault scripts cover what costs users money:

* ``fail_next(429, retry_after=...)`` — refusals *before* acceptance (rate limits, outages);
* ``fail_after_accept(504)`` — the provider takes the job, then a gateway answers 504;
* ``drop_after_accept()`` — the provider takes the job, then the connection drops unanswered;
* ``slow(seconds, path=...)`` — the job is taken at once but the answer comes late (a slow
  submit: the window in which a cancellation must not orphan the job);
* ``fail_jobs(count, skip=k)`` — call ``k + 1`` of ``n`` fails at the provider;
* ``fail_next(500, path="/files/")`` — the images of a finished job cannot be downloaded.
"""

from __future__ import annotations

import asyncio
import json as _json
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

import anyio
import h11
import httpx

if TYPE_CHECKING:
    from fluxkit._generator import AsyncGenerator, Generator

__all__ = [
    "AfterAccept",
    "Defer",
    "Drop",
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


class Drop(Exception):
    """Raised by an emulator to drop the connection without answering (after handling)."""


@dataclass
class AfterAccept:
    """A fault applied *after* the real handler ran (the job exists): a status or a drop."""

    remaining: int
    path: re.Pattern[str] | None = None
    method: str | None = "POST"
    status: int | None = None
    """Answer this status instead of the handler's; None drops the connection."""
    delay: float = 0.0
    """Seconds to hold the (real) answer: a slow submission."""

    def matches(self, request: EmuRequest) -> bool:
        if self.method and request.method != self.method.upper():
            return False
        return self.path is None or bool(self.path.search(request.path))


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
    job_failures: list[str | None] = field(default_factory=list)
    after_accept: list[AfterAccept] = field(default_factory=list)

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

    def fail_jobs(
        self, count: int = 1, message: str = "scripted job failure", *, skip: int = 0
    ) -> None:
        """After ``skip`` more jobs succeed, the next ``count`` end in the failed state.

        ``fail_jobs(1, skip=2)`` makes the third call of an ``n=4`` generation fail.
        """
        self.job_failures.extend([None] * skip + [message] * count)

    def fail_after_accept(
        self, status: int = 504, count: int = 1, *, path: str | None = None, method: str = "POST"
    ) -> None:
        """The next ``count`` matching requests are handled (the job is created) but answered
        with ``status`` — a gateway that gave up after forwarding."""
        self.after_accept.append(
            AfterAccept(count, re.compile(path) if path else None, method, status)
        )

    def drop_after_accept(
        self, count: int = 1, *, path: str | None = None, method: str = "POST"
    ) -> None:
        """The next ``count`` matching requests are handled (the job is created), then the
        connection drops without an answer."""
        self.after_accept.append(AfterAccept(count, re.compile(path) if path else None, method))

    def slow(
        self, seconds: float, count: int = 1, *, path: str | None = None, method: str = "POST"
    ) -> None:
        """The next ``count`` matching requests are handled at once but answered ``seconds``
        later: a slow submission whose job already exists."""
        self.after_accept.append(
            AfterAccept(count, re.compile(path) if path else None, method, delay=seconds)
        )

    def take_after_accept(self, request: EmuRequest) -> AfterAccept | None:
        for fault in self.after_accept:
            if fault.remaining > 0 and fault.matches(request):
                fault.remaining -= 1
                return fault
        return None

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
            with self.lock:
                fault = self.script.take_after_accept(request)
            if fault is not None:
                answer = _after_accept(answer, fault)
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
        """An httpx transport that answers in-process (usable by Client and AsyncClient).

        Pass it to a generator — the one seam: ``Generator("fal", transport=emu.transport())``.
        """
        return EmulatorTransport(self)

    def async_transport(self) -> EmulatorTransport:
        """The same transport, for ``httpx.AsyncClient``/``AsyncGenerator`` (it serves both)."""
        return EmulatorTransport(self)

    backend: str | None = None
    """The fluxkit backend this emulator stands in for (``"fal"``, ...)."""

    def generator(self, **options: Any) -> Generator:
        """A ``fluxkit.Generator`` for `backend` talking to this emulator in-process.

        Example:
            ```python
            from fluxkit.testing import FalEmulator

            emu = FalEmulator()
            gen = emu.generator(timeout=30)   # Generator("fal", api_key=..., transport=...)
            gen.generate("a fox", seed=1)
            ```
        """
        from fluxkit._generator import Generator

        return Generator(self._backend_name(), **self._generator_options(options))

    def async_generator(self, **options: Any) -> AsyncGenerator:
        """A ``fluxkit.AsyncGenerator`` for `backend` talking to this emulator in-process."""
        from fluxkit._generator import AsyncGenerator

        return AsyncGenerator(self._backend_name(), **self._generator_options(options))

    def _backend_name(self) -> str:
        if self.backend is None:
            raise TypeError(f"{type(self).__name__} stands in for no generation backend")
        return self.backend

    def _generator_options(self, options: dict[str, Any]) -> dict[str, Any]:
        options.setdefault("transport", self.transport())
        options.setdefault("base_url", self.base_url)
        if self.backend != "fake":
            options.setdefault("api_key", getattr(self, "api_key", None) or "emulator-key")
        elif getattr(self, "api_key", None):
            options.setdefault("api_key", self.api_key)  # type: ignore[attr-defined]
        return options

    @contextmanager
    def serve(self, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
        """Run on a real loopback port; yields the base URL (``http://127.0.0.1:PORT``).

        The server is asyncio + h11 on a background thread: HTTP/1.1 keep-alive, chunked request
        bodies, deferred answers awaited without holding a thread each.
        """
        server = _LoopbackServer(self, host, port)
        server.start()
        try:
            yield server.url
        finally:
            server.stop()


def _after_accept(answer: EmuResponse | Defer, fault: AfterAccept) -> EmuResponse | Defer:
    """Apply an after-acceptance fault to the real answer (the handler has already run)."""

    def faulted() -> EmuResponse | Defer:
        if fault.status is None:
            raise Drop
        if fault.status:
            return EmuResponse(fault.status, json={"detail": f"scripted {fault.status}"})
        return answer

    if fault.delay > 0:
        return Defer(fault.delay, faulted if fault.status is not None else lambda: answer)
    if fault.status is None:
        raise Drop
    return faulted()


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
        body = request.read()
        emu_request = _emu_request(request.method, str(request.url), dict(request.headers), body)
        try:
            status, headers, content = self.emulator.resolve(
                emu_request, timeout=_read_timeout(request)
            )
        except TimeoutError as exc:
            raise httpx.ReadTimeout(str(exc), request=request) from exc
        except Drop as exc:
            raise httpx.RemoteProtocolError(_DROPPED, request=request) from exc
        return httpx.Response(status, headers=headers, content=content, request=request)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        emu_request = _emu_request(request.method, str(request.url), dict(request.headers), body)
        try:
            status, headers, content = await self.emulator.aresolve(
                emu_request, timeout=_read_timeout(request)
            )
        except TimeoutError as exc:
            raise httpx.ReadTimeout(str(exc), request=request) from exc
        except Drop as exc:
            raise httpx.RemoteProtocolError(_DROPPED, request=request) from exc
        return httpx.Response(status, headers=headers, content=content, request=request)


_DROPPED = "Server disconnected without sending a response."


def _read_timeout(request: httpx.Request) -> float | None:
    value = (request.extensions.get("timeout") or {}).get("read")
    return float(value) if value is not None else None


class _LoopbackServer:
    """An emulator on 127.0.0.1: an asyncio loop in a daemon thread speaking HTTP/1.1 with h11."""

    def __init__(self, emulator: Emulator, host: str, port: int) -> None:
        self.emulator, self.host, self.port = emulator, host, port
        self.loop = asyncio.new_event_loop()
        self.url = ""
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fluxkit-emulator", daemon=True)
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self._thread.start()
        self._ready.wait()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self._shutdown)
        self._thread.join()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self._server = self.loop.run_until_complete(
            asyncio.start_server(self._connection, self.host, self.port, backlog=512)
        )
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://{self.host}:{port}"
        self._ready.set()
        self.loop.run_forever()
        self.loop.close()

    def _shutdown(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._connections:
            task.cancel()
        self.loop.call_later(0.01, self.loop.stop)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        protocol = h11.Connection(h11.SERVER)
        try:
            while True:
                request = await self._read_request(protocol, reader)
                if request is None:
                    return
                try:
                    status, headers, content = await self.emulator.aresolve(request)
                except Drop:
                    return  # close the connection unanswered (the finally below)
                head = [(k, v) for k, v in headers.items() if k.lower() != "content-length"]
                head.append(("content-length", str(len(content))))
                data = protocol.send(h11.Response(status_code=status, headers=head))
                if content and request.method != "HEAD":
                    data += protocol.send(h11.Data(data=content))
                data += protocol.send(h11.EndOfMessage())
                writer.write(data)
                await writer.drain()
                if protocol.our_state is h11.MUST_CLOSE:
                    return
                protocol.start_next_cycle()
        except (ConnectionError, h11.ProtocolError, asyncio.CancelledError):
            return  # a client that gave up (deadline, cancelled task) is normal here
        finally:
            self._connections.discard(task)
            writer.close()

    @staticmethod
    async def _read_request(
        protocol: h11.Connection, reader: asyncio.StreamReader
    ) -> EmuRequest | None:
        head: h11.Request | None = None
        body: list[bytes] = []
        while True:
            event = protocol.next_event()
            if event is h11.NEED_DATA:
                protocol.receive_data(await reader.read(65536))
            elif isinstance(event, h11.Request):
                head = event
            elif isinstance(event, h11.Data):
                body.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                assert head is not None
                headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in head.headers}
                return _emu_request(
                    head.method.decode(), head.target.decode("latin-1"), headers, b"".join(body)
                )
            elif isinstance(event, h11.ConnectionClosed):
                return None
