"""Conformance: the official ``fal_client`` (1.0.x) against ``FalEmulator`` on a real port.

How fal-client is pointed at the emulator, and why: fal-client has no ``base_url``, transport or
``http_client`` parameter. Its only public redirection is ``FAL_RUN_HOST``/``FAL_QUEUE_RUN_HOST``,
read once when ``fal_client.auth`` is imported, with the scheme hard-coded to ``https://``, so it
would need a TLS emulator plus ``SSL_CERT_FILE``. Instead these tests use the private mechanism
that works with plain HTTP: the module globals ``fal_client.client.QUEUE_URL_FORMAT`` and
``RUN_URL_FORMAT``, which every submit/status/result/cancel call reads at call time (monkeypatched
per test, so nothing leaks). After submit, fal-client follows the absolute ``status_url`` /
``response_url`` / ``cancel_url`` the emulator returns. Uploads go through ``REST_URL`` (CDN token,
storage initiate) and ``CDN_URL``, module globals read when the first upload builds the token
manager: patched the same way, they reach the emulator's storage routes too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from fluxkit.testing.fal import FalEmulator

fal_client = pytest.importorskip("fal_client")
fal_module = pytest.importorskip("fal_client.client")

ARGS = {"prompt": "a fox", "image_size": {"width": 256, "height": 256}, "seed": 5}


@pytest.fixture
def emu() -> FalEmulator:
    emulator = FalEmulator(api_key="test")
    emulator.script.run_seconds = 0.05
    return emulator


@pytest.fixture
def url(emu: FalEmulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    with emu.serve() as root:
        for name in ("QUEUE_URL_FORMAT", "RUN_URL_FORMAT"):
            monkeypatch.setattr(fal_module, name, f"{root}/")
        for name in ("REST_URL", "CDN_URL"):
            monkeypatch.setattr(fal_module, name, root)
        yield root


def test_submit_status_result_with_sub_path_dropped(emu: FalEmulator, url: str) -> None:
    client = fal_client.SyncClient(key="test")
    handle = client.submit("fal-ai/flux/dev", ARGS)
    assert handle.status_url == f"{url}/fal-ai/flux/requests/{handle.request_id}/status"
    result = handle.get()
    assert result["seed"] == 5 and result["has_nsfw_concepts"] == [False]
    image = result["images"][0]
    assert (image["width"], image["height"], image["content_type"]) == (256, 256, "image/jpeg")
    assert httpx.get(image["url"]).content == emu.files[image["file_name"]]
    status = client.status("fal-ai/flux/dev", handle.request_id, with_logs=True)
    assert isinstance(status, fal_client.Completed)
    assert status.metrics == {"inference_time": 0.05} and status.logs
    assert client.result("fal-ai/flux/dev", handle.request_id) == result
    assert emu.requests("/status$")[0].header("authorization") == "Key test"


def test_queued_then_in_progress_then_completed(emu: FalEmulator, url: str) -> None:
    emu.queue_position, emu.script.queue_seconds, emu.script.run_seconds = 2, 0.3, 0.3
    updates: list[Any] = []
    fal_client.SyncClient(key="test").subscribe(
        "fal-ai/flux/schnell", ARGS, with_logs=True, on_queue_update=updates.append
    )
    kinds = [type(update).__name__ for update in updates]
    assert kinds[0] == "Queued" and updates[0].position == 2
    assert "InProgress" in kinds and kinds[-1] == "Completed"
    in_progress = next(u for u in updates if isinstance(u, fal_client.InProgress))
    assert in_progress.logs and in_progress.logs[0]["message"] == "Starting FLUX inference"


def test_cancel_stops_a_queued_request(emu: FalEmulator, url: str) -> None:
    emu.script.queue_seconds = 5.0
    client = fal_client.SyncClient(key="test")
    handle = client.submit("fal-ai/flux/dev", ARGS)
    handle.cancel()
    assert emu.cancelled == {handle.request_id}
    status = handle.status()
    assert isinstance(status, fal_client.Completed) and status.error_type == "request_cancelled"
    with pytest.raises(fal_client.FalClientHTTPError) as caught:
        handle.cancel()  # the request is over now: ALREADY_COMPLETED
    assert caught.value.status_code == 400


def test_errors_carry_fal_shapes(emu: FalEmulator, url: str) -> None:
    client = fal_client.SyncClient(key="test")
    emu.reject_jobs("image_url", "could not download")
    with pytest.raises(fal_client.FalClientHTTPError) as rejected:
        client.subscribe("fal-ai/flux/dev", ARGS)
    assert rejected.value.status_code == 422 and rejected.value.message[0]["loc"] == [
        "body",
        "image_url",
    ]
    with pytest.raises(fal_client.FalClientHTTPError) as denied:
        fal_client.SyncClient(key="wrong").submit("fal-ai/flux/dev", ARGS)
    assert denied.value.status_code == 401


def test_async_subscribe_and_upload(emu: FalEmulator, url: str) -> None:
    async def main() -> tuple[dict[str, Any], str]:
        client = fal_client.AsyncClient(key="test")
        result = await client.subscribe("fal-ai/flux-lora", {**ARGS, "loras": []})
        uploaded = await client.upload(b"\x89PNG\r\n\x1a\nxyz", "image/png", "face.png")
        return result, uploaded

    result, uploaded = asyncio.run(main())
    assert result["images"][0]["width"] == 256
    assert uploaded.startswith(f"{url}/files/") and uploaded.endswith("face.png")
    assert emu.uploads == 1 and httpx.get(uploaded).content == b"\x89PNG\r\n\x1a\nxyz"
    token_request = emu.requests("^/storage/auth/token$")[0]
    assert token_request.query == {"storage_type": "fal-cdn-v3"}


def test_status_stream_is_server_sent_events_closed_on_completion(
    emu: FalEmulator, url: str
) -> None:
    from httpx_sse import connect_sse

    handle = fal_client.SyncClient(key="test").submit("fal-ai/flux/dev", ARGS)
    with (
        httpx.Client(headers={"authorization": "Key test"}) as client,
        connect_sse(client, "GET", f"{handle.status_url}/stream", params={"logs": "1"}) as source,
    ):
        statuses = [event.json()["status"] for event in source.iter_sse()]
    assert statuses[-1] == "COMPLETED" and set(statuses) <= {"IN_QUEUE", "IN_PROGRESS", "COMPLETED"}


def test_results_expire_after_fals_retention() -> None:
    now = [100.0]
    emu = FalEmulator(clock=lambda: now[0])
    with httpx.Client(transport=emu.transport(), base_url=emu.base_url) as client:
        ticket = client.post(
            "/fal-ai/flux/schnell", json={**ARGS, "sync_mode": True, "output_format": "png"}
        ).json()
        assert client.get(ticket["status_url"]).json()["status"] == "COMPLETED"
        assert client.get(ticket["response_url"]).status_code == 200  # >= 10 KB: data URIs
        now[0] += 361  # fal keeps results of 10 KB or more for 6 minutes
        assert client.get(ticket["response_url"]).status_code == 404


def test_stream_closes_unfinished_after_stream_timeout() -> None:
    emu = FalEmulator()
    emu.script.run_seconds, emu.stream_timeout = 5.0, 0.1
    with httpx.Client(transport=emu.transport(), base_url=emu.base_url) as client:
        ticket = client.post("/fal-ai/flux/dev", json=ARGS).json()
        answer = client.get(f"{ticket['status_url']}/stream")
    assert answer.headers["content-type"] == "text/event-stream"
    assert [line for line in answer.text.splitlines() if line][-1].startswith("data: ")
    assert '"COMPLETED"' not in answer.text
