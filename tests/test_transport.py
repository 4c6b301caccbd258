"""The lean async transport against real sockets: keep-alive, stale connections, timeouts."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest

from fluxkit._transport import LeanAsyncTransport, default_async_transport
from fluxkit.testing import Defer, Emulator, EmuRequest, EmuResponse, route


class Echo(Emulator):
    @route("POST", r"/echo")
    def echo(self, request: EmuRequest) -> EmuResponse:
        return EmuResponse(200, json={"body": request.body.decode(), "query": request.query})

    @route("GET", r"/slow")
    def slow(self, request: EmuRequest) -> Defer:
        return Defer(1.0, lambda: EmuResponse(200, json={}))

    @route("GET", r"/close")
    def close(self, request: EmuRequest) -> EmuResponse:
        return EmuResponse(200, body=b"bye", headers={"connection": "close"})


@pytest.fixture
def server() -> Iterator[tuple[Echo, str]]:
    emulator = Echo()
    with emulator.serve() as url:
        yield emulator, url


async def test_requests_reuse_one_keep_alive_connection(server: tuple[Echo, str]) -> None:
    _, url = server
    transport = LeanAsyncTransport()
    async with httpx.AsyncClient(transport=transport) as client:
        for index in range(5):
            response = await client.post(f"{url}/echo", params={"i": str(index)}, content=b"hi")
            assert response.json() == {"body": "hi", "query": {"i": str(index)}}
    assert transport.connections_opened == 1


async def test_concurrent_requests_open_parallel_connections(server: tuple[Echo, str]) -> None:
    _, url = server
    transport = LeanAsyncTransport(max_connections=4)
    async with httpx.AsyncClient(transport=transport) as client:
        responses = await asyncio.gather(
            *(client.post(f"{url}/echo", content=b"x") for _ in range(12))
        )
    assert all(r.status_code == 200 for r in responses)
    assert 1 <= transport.connections_opened <= 4


async def test_server_closing_the_connection_is_handled(server: tuple[Echo, str]) -> None:
    _, url = server
    transport = LeanAsyncTransport()
    async with httpx.AsyncClient(transport=transport) as client:
        assert (await client.get(f"{url}/close")).content == b"bye"
        assert (await client.post(f"{url}/echo", content=b"again")).json()["body"] == "again"
    assert transport.connections_opened == 2


async def test_a_stale_pooled_connection_is_replaced_transparently() -> None:
    emulator = Echo()
    transport = LeanAsyncTransport()
    async with httpx.AsyncClient(transport=transport) as client:
        with emulator.serve() as url:
            assert (await client.post(f"{url}/echo", content=b"1")).status_code == 200
            port = url.rsplit(":", 1)[1]
        # the server went away and came back on the same port: the pooled socket is dead
        with Echo().serve(port=int(port)) as url:
            assert (await client.post(f"{url}/echo", content=b"2")).json()["body"] == "2"


async def test_read_timeout_is_an_httpx_timeout(server: tuple[Echo, str]) -> None:
    _, url = server
    async with httpx.AsyncClient(transport=LeanAsyncTransport()) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.get(f"{url}/slow", timeout=0.1)


async def test_connection_refused_is_a_connect_error() -> None:
    async with httpx.AsyncClient(transport=LeanAsyncTransport()) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get("http://127.0.0.1:9/")


def test_a_proxy_in_the_environment_keeps_httpx_transport(monkeypatch: pytest.MonkeyPatch) -> None:
    limits = httpx.Limits(max_connections=10)
    assert default_async_transport(limits) is not None
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    assert default_async_transport(limits) is None


async def test_chunked_request_bodies_reach_the_emulator(server: tuple[Echo, str]) -> None:
    _, url = server

    async def body() -> object:
        yield b"chunk-1 "
        yield b"chunk-2"

    async with httpx.AsyncClient() as client:  # httpx sends an async iterator chunked
        response = await client.post(f"{url}/echo", content=body())
    assert response.json()["body"] == "chunk-1 chunk-2"
