"""A lean HTTP/1.1 transport for ``AsyncGenerator``: asyncio streams, h11, a LIFO keep-alive pool.

Why not httpx's default: httpcore's pool re-examines every pooled connection (a socket query
each) whenever a request starts or ends, so with dozens of jobs in flight the client spends more
CPU on bookkeeping than on HTTP — on a 2-core machine, fan-out of short jobs became CPU-bound at
about 4x the ideal wall time. This transport keeps idle connections per origin in a stack and
touches only the one it takes.

Scope, deliberately narrow: HTTP/1.1 over TCP or TLS on asyncio, whole bodies (fluxkit reads every
response completely), no proxies. ``AsyncGenerator`` uses it only where that holds — no proxy
in the environment, running on asyncio — and httpx's own transport otherwise.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from dataclasses import dataclass, field
from typing import Any

import h11
import httpx

__all__ = ["LeanAsyncTransport", "default_async_transport"]

_KEEPALIVE_EXPIRY = 5.0
_READ_CHUNK = 64 * 1024


@dataclass(eq=False)
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    protocol: h11.Connection = field(default_factory=lambda: h11.Connection(h11.CLIENT))
    idle_since: float = 0.0
    uses: int = 0

    def usable(self, now: float) -> bool:
        return (
            self.protocol.our_state is h11.IDLE
            and not self.reader.at_eof()
            and not self.writer.is_closing()
            and now - self.idle_since < _KEEPALIVE_EXPIRY
        )

    def close(self) -> None:
        self.writer.close()


class _StaleConnection(Exception):
    """A reused keep-alive connection was closed by the server before answering."""


class LeanAsyncTransport(httpx.AsyncBaseTransport):
    """HTTP/1.1 keep-alive transport for asyncio (see the module docstring for its scope).

    Args:
        max_connections: connections open at once, across origins.
        verify: an SSL context, or True for the default trust store.
    """

    def __init__(self, *, max_connections: int = 100, verify: ssl.SSLContext | bool = True) -> None:
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._slots = asyncio.Semaphore(max_connections)
        self._verify = verify
        self._ssl: ssl.SSLContext | None = None
        self.connections_opened = 0

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            if isinstance(self._verify, ssl.SSLContext):
                self._ssl = self._verify
            else:
                self._ssl = httpx.create_ssl_context(verify=self._verify)
        return self._ssl

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeouts = request.extensions.get("timeout") or {}
        origin = (request.url.scheme, request.url.host, request.url.port or _default_port(request))
        body = await request.aread()
        if self._slots.locked():  # only a wait needs a timer
            async with _timeout(timeouts.get("pool"), httpx.PoolTimeout, request):
                await self._slots.acquire()
        else:
            await self._slots.acquire()
        try:
            connection = self._take_idle(origin)
            if connection is not None:
                try:
                    return await self._exchange(connection, origin, request, body, timeouts)
                except _StaleConnection:
                    pass  # the server dropped it while idle: nothing was processed, send anew
            connection = await self._connect(origin, request, timeouts)
            try:
                return await self._exchange(connection, origin, request, body, timeouts)
            except _StaleConnection as exc:
                raise httpx.RemoteProtocolError(
                    "server closed the connection without answering", request=request
                ) from exc
        finally:
            self._slots.release()

    def _take_idle(self, origin: tuple[str, str, int]) -> _Connection | None:
        stack = self._idle.get(origin)
        now = time.monotonic()
        while stack:
            connection = stack.pop()
            if connection.usable(now):
                return connection
            connection.close()
        return None

    async def _connect(
        self, origin: tuple[str, str, int], request: httpx.Request, timeouts: dict[str, Any]
    ) -> _Connection:
        scheme, host, port = origin
        secure = scheme == "https"
        try:
            async with _timeout(timeouts.get("connect"), httpx.ConnectTimeout, request):
                reader, writer = await asyncio.open_connection(
                    host,
                    port,
                    ssl=self._ssl_context() if secure else None,
                    server_hostname=host if secure else None,
                    limit=_READ_CHUNK * 4,
                )
        except OSError as exc:
            raise httpx.ConnectError(str(exc) or type(exc).__name__, request=request) from exc
        self.connections_opened += 1
        return _Connection(reader, writer)

    async def _exchange(
        self,
        connection: _Connection,
        origin: tuple[str, str, int],
        request: httpx.Request,
        body: bytes,
        timeouts: dict[str, Any],
    ) -> httpx.Response:
        reused = connection.uses > 0
        connection.uses += 1
        protocol = connection.protocol
        headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in request.headers.items()]
        if body and not any(name.lower() == b"content-length" for name, _ in headers):
            headers.append((b"content-length", str(len(body)).encode()))
        target = request.url.raw_path
        try:
            outgoing = protocol.send(
                h11.Request(method=request.method, target=target, headers=headers)
            )
            if body:
                outgoing += protocol.send(h11.Data(data=body))
            outgoing += protocol.send(h11.EndOfMessage())
            connection.writer.write(outgoing)
            # Only what the kernel did not take at once needs a wait (and a timer).
            if connection.writer.transport.get_write_buffer_size():
                async with _timeout(timeouts.get("write"), httpx.WriteTimeout, request):
                    await connection.writer.drain()
            async with _timeout(timeouts.get("read"), httpx.ReadTimeout, request):
                status, response_headers, content = await self._read_response(connection, reused)
        except (_StaleConnection, httpx.TimeoutException):
            connection.close()
            raise
        except h11.ProtocolError as exc:
            connection.close()
            raise httpx.RemoteProtocolError(str(exc), request=request) from exc
        except OSError as exc:
            connection.close()
            if reused:
                raise _StaleConnection from exc
            raise httpx.ReadError(str(exc) or type(exc).__name__, request=request) from exc
        except BaseException:
            connection.close()  # cancelled mid-exchange: the connection's state is unknown
            raise
        self._release(connection, origin)
        return httpx.Response(
            status,
            headers=response_headers,
            content=content,
            request=request,
            extensions={"http_version": b"HTTP/1.1"},
        )

    async def _read_response(
        self, connection: _Connection, reused: bool
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        protocol = connection.protocol
        status = 0
        headers: list[tuple[bytes, bytes]] = []
        chunks: list[bytes] = []
        received_any = False
        while True:
            event = protocol.next_event()
            if event is h11.NEED_DATA:
                data = await connection.reader.read(_READ_CHUNK)
                if not data and not received_any and reused:
                    raise _StaleConnection
                received_any = received_any or bool(data)
                protocol.receive_data(data)
                continue
            if isinstance(event, h11.Response):
                status, headers = event.status_code, list(event.headers)
            elif isinstance(event, h11.InformationalResponse):
                continue
            elif isinstance(event, h11.Data):
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                return status, headers, b"".join(chunks)
            elif isinstance(event, h11.ConnectionClosed):
                raise h11.RemoteProtocolError("connection closed mid-response")

    def _release(self, connection: _Connection, origin: tuple[str, str, int]) -> None:
        protocol = connection.protocol
        if protocol.our_state is h11.DONE and protocol.their_state is h11.DONE:
            protocol.start_next_cycle()
            connection.idle_since = time.monotonic()
            self._idle.setdefault(origin, []).append(connection)
        else:
            connection.close()

    async def aclose(self) -> None:
        for stack in self._idle.values():
            for connection in stack:
                connection.close()
        self._idle.clear()


def _default_port(request: httpx.Request) -> int:
    return 443 if request.url.scheme == "https" else 80


class _timeout:
    """``asyncio.timeout`` that raises the matching httpx error."""

    def __init__(
        self, seconds: float | None, error: type[httpx.TimeoutException], request: httpx.Request
    ) -> None:
        self._scope = asyncio.timeout(seconds)
        self._error = error
        self._request = request

    async def __aenter__(self) -> None:
        await self._scope.__aenter__()

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        try:
            await self._scope.__aexit__(exc_type, exc, tb)
        except TimeoutError as timeout:
            raise self._error("timed out", request=self._request) from timeout
        return False


class _AsyncioOnly(httpx.AsyncBaseTransport):
    """The lean transport on asyncio; httpx's own under any other event loop (trio)."""

    def __init__(self, lean: LeanAsyncTransport, limits: httpx.Limits) -> None:
        self._lean, self._limits = lean, limits
        # made on first need: building it loads the CA bundle (tens of ms per generator)
        self._fallback: httpx.AsyncBaseTransport | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # trio, or another loop asyncio doesn't know
            if self._fallback is None:
                self._fallback = httpx.AsyncHTTPTransport(limits=self._limits)
            return await self._fallback.handle_async_request(request)
        return await self._lean.handle_async_request(request)

    async def aclose(self) -> None:
        await self._lean.aclose()
        if self._fallback is not None:
            await self._fallback.aclose()


def default_async_transport(limits: httpx.Limits) -> httpx.AsyncBaseTransport | None:
    """The transport ``AsyncGenerator`` uses for its own client, or None for httpx's default.

    httpx's default is kept where the lean transport's scope ends: when a proxy is configured in
    the environment (httpx honours it; this transport does not).
    """
    import urllib.request

    proxies = urllib.request.getproxies()
    if any(proxies.get(scheme) for scheme in ("http", "https", "all")):
        return None
    return _AsyncioOnly(LeanAsyncTransport(max_connections=limits.max_connections or 100), limits)
