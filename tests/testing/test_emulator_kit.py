from __future__ import annotations

import httpx
import pytest

from fluxkit.testing import Defer, Emulator, EmuRequest, EmuResponse, route


class Echo(Emulator):
    @route("GET", r"/echo/(?P<word>\w+)")
    def echo(self, request: EmuRequest, word: str) -> EmuResponse:
        return EmuResponse(200, json={"word": word, "q": request.query})

    @route("POST", r"/slow")
    def slow(self, request: EmuRequest) -> Defer:
        return Defer(0.05, lambda: EmuResponse(201, json=request.json()))


@pytest.fixture
def emulator() -> Echo:
    return Echo()


def test_routes_with_groups_and_query(emulator: Echo) -> None:
    with httpx.Client(transport=emulator.transport(), base_url="http://emu") as client:
        response = client.get("/echo/hello", params={"a": "1"})
    assert response.json() == {"word": "hello", "q": {"a": "1"}}
    assert [r.path for r in emulator.log] == ["/echo/hello"]


def test_unknown_path_and_wrong_method(emulator: Echo) -> None:
    with httpx.Client(transport=emulator.transport(), base_url="http://emu") as client:
        assert client.get("/nope").status_code == 404
        assert client.post("/echo/x").status_code == 405


def test_scripted_failures_match_path_and_count(emulator: Echo) -> None:
    emulator.script.fail_next(503, count=2, path="/echo", retry_after=3)
    with httpx.Client(transport=emulator.transport(), base_url="http://emu") as client:
        statuses = [client.get("/echo/a").status_code for _ in range(3)]
        assert client.get("/echo/a").headers.get("retry-after") is None
    assert statuses == [503, 503, 200]


async def test_deferred_answers_do_not_block_the_event_loop(emulator: Echo) -> None:
    import anyio

    async with httpx.AsyncClient(transport=emulator.transport(), base_url="http://emu") as client:
        with anyio.fail_after(0.5):  # 10 deferred answers of 50 ms overlap
            async with anyio.create_task_group() as group:
                for _ in range(10):
                    group.start_soon(client.post, "/slow")


def test_real_port_serves_the_same_app(emulator: Echo) -> None:
    emulator.script.latency = 0.01
    with emulator.serve() as url:
        assert url.startswith("http://127.0.0.1:")
        response = httpx.post(f"{url}/slow", json={"x": 1})
    assert (response.status_code, response.json()) == (201, {"x": 1})
