"""Conformance: the official ``replicate`` SDK (1.x) runs against ReplicateEmulator on a real port.

The SDK is pointed at the emulator with its public ``Client(base_url=...)`` argument; no patching.
Against an ``http://`` emulator ``run()`` returns plain URL strings (the SDK wraps only
``https:``/``data:`` outputs in ``FileOutput``). Not covered: status ``aborted``, which
replicate 1.0.7's closed ``Prediction.status`` literal rejects (replicate-python PR #460).
"""

from __future__ import annotations

import io
from collections.abc import Iterator

import httpx
import pytest
from replicate.client import Client
from replicate.exceptions import ModelError, ReplicateError

from fluxkit.testing.replicate import ReplicateEmulator

FLUX_SCHNELL = "black-forest-labs/flux-schnell"
FLUX_DEV = "black-forest-labs/flux-dev"
SMALL = {"aspect_ratio": "1:1", "megapixels": "0.25", "output_format": "png"}


@pytest.fixture
def emu() -> ReplicateEmulator:
    emulator = ReplicateEmulator(api_key="r8_test")
    emulator.script.run_seconds = 0.05
    return emulator


@pytest.fixture
def url(emu: ReplicateEmulator) -> Iterator[str]:
    with emu.serve() as base_url:
        yield base_url


@pytest.fixture
def client(url: str, monkeypatch: pytest.MonkeyPatch) -> Client:
    monkeypatch.setenv("REPLICATE_POLL_INTERVAL", "0.02")  # read by Client()
    return Client(api_token="r8_test", base_url=url)


def test_create_then_wait_polls_to_success(client: Client, emu: ReplicateEmulator) -> None:
    emu.script.queue_seconds = 0.05
    prediction = client.predictions.create(model=FLUX_DEV, input={"prompt": "a fox", **SMALL})
    first_status = prediction.status

    prediction.wait()

    assert (first_status, prediction.status) == ("starting", "succeeded")
    assert prediction.progress is not None and prediction.progress.current == 28
    assert isinstance(prediction.output, list)
    (output,) = prediction.output
    image = httpx.get(output)
    assert image.headers["content-type"] == "image/png" and image.content.startswith(b"\x89PNG")
    assert emu.requests(r"/v1/predictions/\w+$", method="GET")


def test_get_and_reload_return_the_same_prediction(client: Client) -> None:
    created = client.predictions.create(model=FLUX_DEV, input={"prompt": "a fox", **SMALL})
    fetched = client.predictions.get(created.id)
    created.reload()
    assert fetched.id == created.id and fetched.model == FLUX_DEV
    assert fetched.urls is not None and fetched.urls["get"].endswith(
        f"/v1/predictions/{created.id}"
    )


def test_cancel_reaches_the_emulator(client: Client, emu: ReplicateEmulator) -> None:
    emu.script.run_seconds = 10
    prediction = client.predictions.create(model=FLUX_DEV, input={"prompt": "slow", **SMALL})

    canceled = client.predictions.cancel(prediction.id)

    assert canceled.status == "canceled"
    assert emu.cancelled == {prediction.id}
    prediction.reload()
    assert prediction.status == "canceled"


def test_run_with_a_model_name_uses_prefer_wait(client: Client, emu: ReplicateEmulator) -> None:
    output = client.run(FLUX_SCHNELL, input={"prompt": "a fox", "num_outputs": 2, **SMALL})

    assert isinstance(output, list) and len(output) == 2
    assert all(isinstance(item, str) and "/delivery/" in item for item in output)
    (create,) = emu.requests(r"/flux-schnell/predictions$")
    assert create.header("prefer") == "wait"
    assert create.header("authorization") == "Bearer r8_test"


def test_run_with_a_version_reference(client: Client, emu: ReplicateEmulator) -> None:
    ref = emu.add_model("me/tok-flux")

    output = client.run(
        ref,
        input={
            "prompt": "TOK",
            "aspect_ratio": "custom",
            "width": 256,
            "height": 256,
            "output_format": "png",
        },
    )

    (create,) = emu.requests(r"^/v1/predictions$", method="POST")
    assert create.json()["version"] == ref.split(":")[1]
    assert emu.requests(r"/v1/models/me/tok-flux/versions/\w+$", method="GET")
    assert isinstance(output, list) and len(output) == 1


async def test_async_run_and_async_create(client: Client) -> None:
    output = await client.async_run(FLUX_SCHNELL, input={"prompt": "a fox", **SMALL})
    assert isinstance(output, list) and len(output) == 1

    prediction = await client.predictions.async_create(
        model=FLUX_DEV, input={"prompt": "x", **SMALL}
    )
    await prediction.async_wait()
    assert prediction.status == "succeeded"


def test_files_create_and_use_as_input(client: Client, emu: ReplicateEmulator) -> None:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (320, 256), (10, 200, 30)).save(buffer, format="PNG")
    uploaded = client.files.create(io.BytesIO(buffer.getvalue()), filename="init.png")

    assert uploaded.content_type == "image/png" and uploaded.size == len(buffer.getvalue())
    assert client.files.get(uploaded.id).checksums["sha256"] == uploaded.checksums["sha256"]
    output = client.run(FLUX_DEV, input={"prompt": "paint it", "image": uploaded.urls["get"]})
    assert isinstance(output, list)
    assert Image.open(io.BytesIO(httpx.get(output[0]).content)).size == (320, 256)
    assert client.files.delete(uploaded.id) is True


def test_errors_map_to_replicate_error(client: Client, url: str) -> None:
    with pytest.raises(ReplicateError) as unknown:
        client.predictions.create(model="someone/nothing", input={"prompt": "x"})
    assert unknown.value.status == 404

    with pytest.raises(ReplicateError) as invalid:
        client.predictions.create(model=FLUX_DEV, input={"prompt": "x", "num_outputs": 9})
    assert invalid.value.status == 422 and "input.num_outputs" in str(invalid.value.detail)

    with pytest.raises(ReplicateError) as unauthenticated:
        Client(api_token="wrong", base_url=url).predictions.get("nothing")
    assert unauthenticated.value.status == 401 and unauthenticated.value.title == "Unauthenticated"


def test_failed_predictions_raise_model_error(client: Client, emu: ReplicateEmulator) -> None:
    emu.script.fail_jobs(1, "CUDA out of memory")
    with pytest.raises(ModelError, match="CUDA out of memory"):
        client.run(FLUX_DEV, input={"prompt": "x", **SMALL})


def test_sdk_retries_rate_limited_polls(client: Client, emu: ReplicateEmulator) -> None:
    prediction = client.predictions.create(model=FLUX_DEV, input={"prompt": "x", **SMALL})
    emu.script.fail_next(429, 2, path=r"/v1/predictions/\w+$", method="GET", retry_after=0)

    assert client.predictions.get(prediction.id).id == prediction.id
    assert len(emu.requests(r"/v1/predictions/\w+$", method="GET")) == 3
