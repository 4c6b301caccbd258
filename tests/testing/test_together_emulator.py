"""Conformance: the official ``together`` SDK against TogetherEmulator on a real loopback port.

Mechanism: the SDK's public ``base_url`` argument (the API root, without ``/v1``; the SDK adds
``/v1/images/generations``). No patching. If the SDK parses the emulator's answers and raises
its own exception classes for its error bodies, the emulator speaks Together's protocol.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator

import httpx
import pytest
import together
from PIL import Image
from together.types.image_generate_params import ImageLora

from fluxkit.testing.together import TogetherEmulator

KEY = "sdk-key"
SCHNELL = "black-forest-labs/FLUX.1-schnell"
FLUX2_DEV = "black-forest-labs/FLUX.2-dev"
LORA = "https://huggingface.co/me/tok/resolve/main/lora.safetensors"


@pytest.fixture
def emu() -> TogetherEmulator:
    return TogetherEmulator(api_key=KEY)


@pytest.fixture
def url(emu: TogetherEmulator) -> Iterator[str]:
    with emu.serve() as base_url:
        yield base_url


@pytest.fixture
def client(url: str) -> Iterator[together.Together]:
    with together.Together(api_key=KEY, base_url=url, max_retries=0) as sdk:
        yield sdk


def test_base64_generation_parses_into_the_sdks_types(
    client: together.Together, emu: TogetherEmulator
) -> None:
    response = client.images.generate(
        model=SCHNELL, prompt="a fox", width=256, height=256, steps=4, n=2, seed=7,
        response_format="base64", output_format="png",
    )  # fmt: skip

    assert (response.model, response.object, len(response.data)) == (SCHNELL, "list", 2)
    assert response.id.endswith("-together")
    first = response.data[0]
    assert first.type == "b64_json" and first.index == 0
    image = Image.open(io.BytesIO(base64.b64decode(first.b64_json)))
    assert (image.format, image.size) == ("PNG", (256, 256))
    sent = emu.requests("/v1/images/generations")[0]
    assert sent.header("authorization") == f"Bearer {KEY}"
    assert emu.generations[0]["response_format"] == "base64"


def test_url_generation_is_the_default_and_the_url_serves_the_image(
    client: together.Together,
) -> None:
    response = client.images.generate(model=SCHNELL, prompt="a fox", width=256, height=256)

    item = response.data[0]
    assert item.type == "url"
    fetched = httpx.get(item.url)
    assert fetched.status_code == 200
    assert Image.open(io.BytesIO(fetched.content)).format == "JPEG"  # Together's default format


def test_two_loras_are_accepted_and_a_third_is_a_bad_request(client: together.Together) -> None:
    loras: list[ImageLora] = [
        {"path": LORA, "scale": 0.8},
        {"path": "https://huggingface.co/me/style", "scale": 1},
    ]
    response = client.images.generate(
        model=FLUX2_DEV, prompt="tok", width=256, height=256, image_loras=loras,
        response_format="base64",
    )  # fmt: skip
    assert len(response.data) == 1

    with pytest.raises(together.BadRequestError) as caught:
        client.images.generate(
            model=FLUX2_DEV, prompt="tok", width=256, height=256,
            image_loras=[*loras, {"path": LORA, "scale": 0.5}],
        )  # fmt: skip
    assert caught.value.status_code == 400
    assert caught.value.body["error"]["param"] == "image_loras"  # type: ignore[index]


def test_loras_on_a_model_without_them_are_refused(client: together.Together) -> None:
    with pytest.raises(together.BadRequestError, match="Unsupported use of 'image_loras'"):
        client.images.generate(model=SCHNELL, prompt="x", image_loras=[{"path": LORA, "scale": 1}])


def test_wrong_key_is_an_authentication_error(url: str) -> None:
    with together.Together(api_key="wrong", base_url=url, max_retries=0) as sdk:
        with pytest.raises(together.AuthenticationError) as caught:
            sdk.images.generate(model=SCHNELL, prompt="x")
    assert caught.value.body["error"]["code"] == "invalid_api_key"  # type: ignore[index]


def test_out_of_range_field_is_unprocessable_and_named(client: together.Together) -> None:
    with pytest.raises(together.UnprocessableEntityError) as caught:
        client.images.generate(model=SCHNELL, prompt="x", width=100)
    assert caught.value.body["error"]["param"] == "width"  # type: ignore[index]


def test_unknown_model_is_not_found(client: together.Together) -> None:
    with pytest.raises(together.NotFoundError, match="Unable to access model"):
        client.images.generate(model="acme/nothing", prompt="x")


def test_rate_limit_is_a_rate_limit_error_and_the_sdk_retries_it(
    url: str, client: together.Together, emu: TogetherEmulator
) -> None:
    emu.fail_next(429, count=1, retry_after=0.01)
    with pytest.raises(together.RateLimitError):
        client.images.generate(model=SCHNELL, prompt="x", width=256, height=256)

    emu.fail_next(429, count=2, retry_after=0.01)
    with together.Together(api_key=KEY, base_url=url, max_retries=2) as patient:
        response = patient.images.generate(model=SCHNELL, prompt="x", width=256, height=256)
    assert len(response.data) == 1
    assert len(emu.requests("/v1/images/generations")) == 4  # 1 + (2 refused + 1 served)


async def test_async_client_generates_and_maps_errors(url: str) -> None:
    async with together.AsyncTogether(api_key=KEY, base_url=url, max_retries=0) as sdk:
        response = await sdk.images.generate(
            model=SCHNELL, prompt="a fox", width=256, height=256, response_format="base64"
        )
        assert response.data[0].type == "b64_json"
        with pytest.raises(together.UnprocessableEntityError):
            await sdk.images.generate(model=SCHNELL, prompt="x", n=5)
