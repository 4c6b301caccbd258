"""The HTTP stack behind the drivers, over real sockets: per-read timeouts, nothing resent.

Scaled-down timings: a "status stream" that sends a keep-alive every 0.1 s for 1.2 s must
outlive a 0.4 s read timeout (fal's stream sends one every 15 s against a 60 s timeout); a
connection dropped after a POST was sent must reach the driver as "maybe sent", never be
retried underneath it.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import anyio
import httpx
import pytest

from fluxkit._core import HttpRequest
from fluxkit._drivers import Deadline, FlowContext, arun_flow, run_flow
from fluxkit._exceptions import DeadlineExceeded, JobMayExistError
from fluxkit._http import default_async_transport, pool_limits


@contextmanager
def server(behaviour: str) -> Iterator[tuple[str, list[bytes]]]:
    """A raw loopback server: ``stream`` (keep-alives, then data) or ``drop`` (close unanswered)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    received: list[bytes] = []
    stop = threading.Event()

    def handle(conn: socket.socket) -> None:
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            received.append(data.split(b"\r\n", 1)[0])
            if behaviour == "drop":
                return  # the request arrived; close without an answer
            conn.sendall(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                b"transfer-encoding: chunked\r\n\r\n"
            )
            for _ in range(12):
                time.sleep(0.1)
                conn.sendall(b"3\r\n:\n\n\r\n")  # an SSE comment: a keep-alive
            body = b'data: {"status": "COMPLETED"}\n\n'
            conn.sendall(f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n")

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}", received
    finally:
        stop.set()
        thread.join()
        listener.close()


def one_request(request: HttpRequest):  # type: ignore[no-untyped-def]
    response = yield request
    return response


STREAM = HttpRequest("GET", "/status/stream", timeout=0.4)


def test_a_stream_with_keep_alives_outlives_the_read_timeout_sync() -> None:
    with server("stream") as (url, _), httpx.Client(base_url=url) as client:
        request = HttpRequest("GET", f"{url}/status/stream", timeout=0.4)
        outcome = run_flow(one_request(request), client, FlowContext("test"))
    assert b"COMPLETED" in outcome.value.content


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_a_stream_with_keep_alives_outlives_the_read_timeout_async(backend: str) -> None:
    async def main(url: str) -> bytes:
        transport = default_async_transport(pool_limits(8))
        if backend == "asyncio":
            assert transport is not None and "aiohttp" in type(transport).__mro__[1].__module__
        async with httpx.AsyncClient(transport=transport) as client:
            request = HttpRequest("GET", f"{url}/status/stream", timeout=0.4)
            outcome = await arun_flow(one_request(request), client, FlowContext("test"))
            return bytes(outcome.value.content)

    with server("stream") as (url, _):
        assert b"COMPLETED" in anyio.run(main, url, backend=backend)


def test_the_deadline_still_ends_a_long_stream() -> None:
    with server("stream") as (url, _), httpx.Client() as client:
        request = HttpRequest("GET", f"{url}/status/stream", timeout=0.4)
        ctx = FlowContext("test", deadline=Deadline.after(0.5))
        started = time.monotonic()
        with pytest.raises(DeadlineExceeded):
            run_flow(one_request(request), client, ctx)
    assert time.monotonic() - started < 1.0


@pytest.mark.parametrize("side", ["sync", "asyncio", "trio"])
def test_a_submission_dropped_after_sending_is_sent_once_and_reported(side: str) -> None:
    submit = HttpRequest("POST", "/jobs", json={"prompt": "fox"}, retry="submit")
    with server("drop") as (url, received):
        request = HttpRequest("POST", f"{url}/jobs", json={"prompt": "fox"}, retry="submit")
        with pytest.raises(JobMayExistError):
            if side == "sync":
                with httpx.Client() as client:
                    run_flow(one_request(request), client, FlowContext("test"))
            else:

                async def main() -> None:
                    transport = default_async_transport(pool_limits(8))
                    async with httpx.AsyncClient(transport=transport) as client:
                        await arun_flow(one_request(request), client, FlowContext("test"))

                anyio.run(main, backend=side)
        time.sleep(0.05)
    assert received == [b"POST /jobs HTTP/1.1"]  # never resent underneath the driver
    assert submit.creates_job
