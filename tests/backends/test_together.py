"""The together backend end to end: fluxkit.Generator/AsyncGenerator against TogetherEmulator."""

from __future__ import annotations

import asyncio
import base64
import io
import random
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from PIL import Image

import fluxkit
from fluxkit import LoRA
from fluxkit._events import Completed, Retrying
from fluxkit._exceptions import (
    AuthenticationError,
    DeadlineExceeded,
    InvalidRequestError,
    MissingCredentialsError,
    ProviderRejectedError,
    ProviderUnavailableError,
    RateLimitError,
    ResponseFormatError,
    UnsupportedFeatureError,
)
from fluxkit._types import GenerationRequest
from fluxkit._warnings import ContentFlagged
from fluxkit.backends._base import Call
from fluxkit.backends.together import (
    CAPABILITIES,
    DEV,
    DEV_LORA,
    FLUX2_DEV,
    FLUX2_PRO,
    KONTEXT_PRO,
    MODEL_ALIASES,
    SCHNELL,
    TogetherBackend,
    lora_path,
)
from fluxkit.testing.together import TogetherEmulator

KEY = "test-key-123"
GENERATIONS = r"^/v1/images/generations$"
SMALL = (256, 256)


def _png(size: tuple[int, int] = (64, 64), colour: str = "red") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def emu() -> TogetherEmulator:
    return TogetherEmulator(api_key=KEY)


@pytest.fixture
def gen(emu: TogetherEmulator) -> Iterator[fluxkit.Generator]:
    client = httpx.Client(transport=emu.transport())
    with fluxkit.Generator(
        "together", api_key=KEY, base_url=emu.base_url, http_client=client, timeout=10
    ) as generator:
        yield generator
    client.close()


@pytest.fixture
async def agen(emu: TogetherEmulator) -> AsyncIterator[fluxkit.AsyncGenerator]:
    client = httpx.AsyncClient(transport=emu.transport())
    async with fluxkit.AsyncGenerator(
        "together", api_key=KEY, base_url=emu.base_url, http_client=client, timeout=10
    ) as generator:
        yield generator
    await client.aclose()


def _sent(emu: TogetherEmulator) -> list[dict[str, Any]]:
    return [request.json() for request in emu.requests(GENERATIONS, method="POST")]


# -- txt2img, seeds -------------------------------------------------------------------------


def test_generate_returns_decoded_images_with_seed_and_request_id(
    gen: fluxkit.Generator, emu: TogetherEmulator
) -> None:
    result = gen.generate("a red fox", size=SMALL, seed=7)

    (image,) = result.images
    assert (image.seed, image.width, image.height, image.format) == (7, 256, 256, "png")
    assert result.model == SCHNELL
    assert len(result.request_ids) == 1 and result.request_ids[0].endswith("-together")
    body = _sent(emu)[0]
    assert body == {
        "model": SCHNELL, "prompt": "a red fox", "width": 256, "height": 256, "n": 1,
        "seed": 7, "response_format": "base64", "output_format": "png", "steps": 4,
    }  # fmt: skip
    assert emu.requests(r"^/v1/images/(?!generations)") == []  # no second download


def test_authorization_is_bearer_key(gen: fluxkit.Generator, emu: TogetherEmulator) -> None:
    gen.generate("a fox", size=SMALL, seed=1)
    assert emu.requests(GENERATIONS)[0].header("authorization") == f"Bearer {KEY}"


def test_n_images_are_sent_one_per_call_each_with_its_own_seed(
    gen: fluxkit.Generator, emu: TogetherEmulator
) -> None:
    result = gen.generate("a fox", size=SMALL, seed=7, n=3)

    assert result.seeds == (7, 8, 9)
    assert sorted((body["n"], body["seed"]) for body in _sent(emu)) == [(1, 7), (1, 8), (1, 9)]
    alone = gen.generate("a fox", size=SMALL, seed=8)
    assert alone.images[0].data == result.images[1].data  # each image reproducible from its seed


async def test_async_generate_with_n_and_seeds(
    agen: fluxkit.AsyncGenerator, emu: TogetherEmulator
) -> None:
    result = await agen.generate("a fox", size=SMALL, seed=40, n=2)

    assert [image.seed for image in result.images] == [40, 41]
    assert len(emu.requests(GENERATIONS)) == 2
    assert all(image.data and image.data.startswith(b"\x89PNG") for image in result.images)


def test_jpeg_output_format_is_requested(gen: fluxkit.Generator, emu: TogetherEmulator) -> None:
    result = gen.generate("a fox", size=SMALL, seed=1, output_format="jpeg")
    assert result.images[0].format == "jpeg"
    assert _sent(emu)[0]["output_format"] == "jpeg"


def test_url_answers_are_downloaded_inside_the_call(
    gen: fluxkit.Generator, emu: TogetherEmulator
) -> None:
    result = gen.generate("a fox", size=SMALL, seed=3, extra={"response_format": "url"})

    assert result.images[0].data is not None and result.images[0].data.startswith(b"\x89PNG")
    assert len(emu.requests(r"^/v1/images/emu", method="GET")) == 1


def test_nsfw_flag_becomes_a_content_flagged_warning(emu: TogetherEmulator) -> None:
    emu.nsfw_keyword = "forbidden"
    client = httpx.Client(transport=emu.transport())
    gen = fluxkit.Generator("together", api_key=KEY, base_url=emu.base_url, http_client=client)
    result = gen.generate("something forbidden", size=SMALL, seed=1)
    assert [type(w) for w in result.warnings] == [ContentFlagged]
    assert len(result.images) == 1  # flagged, not dropped


# -- LoRAs ----------------------------------------------------------------------------------


def test_loras_without_a_model_are_refused_in_strict_mode_naming_the_lora_models(
    gen: fluxkit.Generator, emu: TogetherEmulator
) -> None:
    with pytest.raises(UnsupportedFeatureError) as caught:
        gen.generate("tok person", size=SMALL, loras=["hf://me/tok/lora.safetensors"])
    assert caught.value.field == "model"
    assert any(name.startswith("flux-dev-lora") for name in caught.value.supported_by)
    assert any(name.startswith("flux-2-dev") for name in caught.value.supported_by)
    assert emu.log == []


def test_flux1_lora_model_stays_reachable_by_its_alias(
    gen: fluxkit.Generator, emu: TogetherEmulator
) -> None:
    result = gen.generate(
        "tok person", model="flux-dev-lora", size=SMALL, seed=1,
        loras=["hf://me/tok/lora.safetensors"],
    )  # fmt: skip
    assert result.model == DEV_LORA
    body = _sent(emu)[0]
    assert body["model"] == DEV_LORA and body["guidance_scale"] == 3.5
    assert not [w for w in result.warnings if isinstance(w, fluxkit.RequestCoerced)]


def test_coerce_mode_picks_flux2_dev_with_a_warning_and_translates_hub_references(
    gen: fluxkit.Generator, emu: TogetherEmulator
) -> None:
    result = gen.generate(
        "tok person", size=SMALL, seed=1, validate="coerce",
        loras=[LoRA("hf://me/tok/lora.safetensors@v2", scale=0.8), LoRA("hf://me/style")],
    )  # fmt: skip

    assert result.model == FLUX2_DEV
    [chosen] = [w for w in result.warnings if isinstance(w, fluxkit.ModelChosen)]
    assert chosen.used == FLUX2_DEV and "flux-dev-lora" in str(chosen)
    body = _sent(emu)[0]
    assert body["model"] == FLUX2_DEV
    assert body["image_loras"] == [
        {"path": "https://huggingface.co/me/tok/resolve/v2/lora.safetensors", "scale": 0.8},
        {"path": "https://huggingface.co/me/style", "scale": 1.0},
    ]
    assert body["guidance"] == 3.5 and "guidance_scale" not in body


def test_three_loras_fail_before_any_request(gen: fluxkit.Generator, emu: TogetherEmulator) -> None:
    loras = [LoRA(f"hf://me/l{i}/w.safetensors") for i in range(3)]
    with pytest.raises(UnsupportedFeatureError) as caught:
        gen.generate("x", model="flux-2-dev", size=SMALL, loras=loras)
    assert "3 LoRAs" in str(caught.value) and "at most 2" in str(caught.value)
    assert emu.log == []


def test_loras_on_a_model_without_them_name_where_they_work(
    gen: fluxkit.Generator, emu: TogetherEmulator
) -> None:
    with pytest.raises(UnsupportedFeatureError) as caught:
        gen.generate("x", model="flux-schnell", loras=["hf://me/l/w.safetensors"])
    assert caught.value.model == SCHNELL and caught.value.field == "loras"
    assert emu.log == []


def test_local_lora_files_are_refused_before_any_request(
    gen: fluxkit.Generator, emu: TogetherEmulator, tmp_path: Any
) -> None:
    with pytest.raises(UnsupportedFeatureError, match="local files"):
        gen.generate("x", model="flux-2-dev", loras=[LoRA(tmp_path / "mine.safetensors")])
    assert emu.log == []


def test_hub_repo_at_a_revision_without_a_file_is_refused(
    gen: fluxkit.Generator, emu: TogetherEmulator
) -> None:
    with pytest.raises(InvalidRequestError, match="name the file"):
        gen.generate("x", model="flux-2-dev", size=SMALL, loras=[LoRA("hf://me/tok@v2")])
    assert emu.log == []


@pytest.mark.parametrize(
    ("source", "path"),
    [
        ("hf://me/tok", "https://huggingface.co/me/tok"),
        (
            "hf://me/tok/a/b.safetensors",
            "https://huggingface.co/me/tok/resolve/main/a/b.safetensors",
        ),
        ("https://civitai.com/api/download/models/1", "https://civitai.com/api/download/models/1"),
    ],
)
def test_lora_path_translation(source: str, path: str) -> None:
    assert lora_path(LoRA(source)) == path


# -- input images ---------------------------------------------------------------------------


def test_init_image_goes_inline_to_kontext_and_strength_is_dropped_only_in_coerce_mode(
    gen: fluxkit.Generator, emu: TogetherEmulator
) -> None:
    with pytest.raises(UnsupportedFeatureError) as caught:
        gen.generate("make it blue", model="flux-kontext-pro", image=_png(), strength=0.6)
    assert caught.value.field == "strength" and emu.log == []

    result = gen.generate(
        "make it blue", size=SMALL, seed=2, image=_png(), strength=0.6, validate="coerce"
    )
    assert result.model == KONTEXT_PRO
    body = _sent(emu)[0]
    assert body["image_url"].startswith("data:image/png;base64,")
    assert "strength" not in body
    fields = {w.field for w in result.warnings if isinstance(w, fluxkit.RequestCoerced)}
    assert fields == {"model", "strength"}


def test_init_image_without_a_model_is_refused_in_strict_mode(
    gen: fluxkit.Generator, emu: TogetherEmulator
) -> None:
    with pytest.raises(UnsupportedFeatureError) as caught:
        gen.generate("make it blue", image=_png())
    assert any(name.startswith("flux-kontext-pro") for name in caught.value.supported_by)
    assert emu.log == []


def test_reference_strength_is_refused_or_dropped_with_a_warning(
    gen: fluxkit.Generator, emu: TogetherEmulator
) -> None:
    asked = {"model": "flux-2-dev", "reference_image": _png(), "reference_strength": 0.4}
    with pytest.raises(UnsupportedFeatureError) as caught:
        gen.generate("same face", size=SMALL, **asked)
    assert caught.value.field == "reference_strength" and emu.log == []

    result = gen.generate("same face", size=SMALL, seed=1, validate="coerce", **asked)
    body = _sent(emu)[0]
    assert len(body["reference_images"]) == 1
    assert not any("strength" in key for key in body)
    [dropped] = [w for w in result.warnings if isinstance(w, fluxkit.RequestCoerced)]
    assert (dropped.field, dropped.given, dropped.used) == ("reference_strength", 0.4, None)


async def test_image_urls_pass_through_and_reference_images_go_to_flux2(
    agen: fluxkit.AsyncGenerator, emu: TogetherEmulator
) -> None:
    await agen.generate(
        "same car, blue", model="flux-2-pro", size=SMALL, seed=1,
        image="https://example.com/car.jpg", reference_image=_png(colour="blue"),
    )  # fmt: skip
    body = _sent(emu)[0]
    assert body["model"] == FLUX2_PRO
    assert body["image_url"] == "https://example.com/car.jpg"
    assert body["reference_images"][0].startswith("data:image/png;base64,")
    assert "steps" not in body  # fixed-step model


def test_img2img_on_a_model_without_it_fails_before_any_request(
    gen: fluxkit.Generator, emu: TogetherEmulator
) -> None:
    with pytest.raises(UnsupportedFeatureError, match="img2img"):
        gen.generate("x", model="flux-2-dev", image=_png())
    with pytest.raises(UnsupportedFeatureError, match="reference_image"):
        gen.generate("x", model="flux-dev", reference_image=_png())
    assert emu.log == []


def test_large_images_travel_inline_because_together_has_no_upload_api(
    gen: fluxkit.Generator, emu: TogetherEmulator
) -> None:
    noisy = Image.frombytes("RGB", (512, 512), random.Random(0).randbytes(512 * 512 * 3))
    buffer = io.BytesIO()
    noisy.save(buffer, format="PNG")
    assert len(buffer.getvalue()) > 256 * 1024
    gen.generate("x", model="flux-kontext-pro", size=SMALL, seed=1, image=buffer.getvalue())
    assert len(_sent(emu)[0]["image_url"]) > 256 * 1024
    assert [r.path for r in emu.log] == ["/v1/images/generations"]


# -- events, retries, deadlines -------------------------------------------------------------


def test_rate_limit_is_retried_after_retry_after_and_reported_as_events(
    gen: fluxkit.Generator, emu: TogetherEmulator
) -> None:
    emu.fail_next(429, count=2, retry_after=0.05)
    events: list[Any] = []
    started = time.monotonic()
    result = gen.generate("x", size=SMALL, seed=1, on_event=events.append)

    assert time.monotonic() - started >= 0.1
    assert len(emu.requests(GENERATIONS)) == 3
    retries = [e for e in events if isinstance(e, Retrying)]
    assert [(e.attempt, e.delay, e.reason) for e in retries] == [
        (1, 0.05, "HTTP 429"), (2, 0.05, "HTTP 429")
    ]  # fmt: skip
    assert isinstance(events[-1], Completed) and events[-1].result is result


async def test_async_stream_yields_retrying_then_completed(
    agen: fluxkit.AsyncGenerator, emu: TogetherEmulator
) -> None:
    emu.fail_next(503, count=1, retry_after=0.01)
    events = [event async for event in agen.stream("x", size=SMALL, seed=1)]
    assert [type(e) for e in events] == [Retrying, Completed]


def test_sync_stream_yields_completed_last(gen: fluxkit.Generator) -> None:
    events = list(gen.stream("x", size=SMALL, seed=1))
    assert isinstance(events[-1], Completed) and events[-1].result.seeds == (1,)


def test_rate_limit_outlasting_retries_raises_with_request_id(emu: TogetherEmulator) -> None:
    emu.fail_next(429, count=5, retry_after=0.01, message="slow down")
    client = httpx.Client(transport=emu.transport())
    gen = fluxkit.Generator(
        "together", api_key=KEY, base_url=emu.base_url, http_client=client, max_retries=1
    )
    with pytest.raises(RateLimitError) as caught:
        gen.generate("x", size=SMALL)
    error = caught.value
    assert (error.status_code, error.retry_after, error.provider_message) == (
        429,
        0.01,
        "slow down",
    )
    assert error.request_id is not None and error.request_id.endswith("-together")
    assert len(emu.requests(GENERATIONS)) == 2


def test_server_error_during_generation_is_not_resubmitted(
    gen: fluxkit.Generator, emu: TogetherEmulator
) -> None:
    emu.script.fail_jobs(1, "CUDA out of memory")
    with pytest.raises(ProviderUnavailableError, match="CUDA out of memory") as caught:
        gen.generate("x", size=SMALL)
    assert caught.value.status_code == 500
    assert len(emu.requests(GENERATIONS)) == 1  # a 500 may mean it ran: never pay twice


def test_deadline_abandons_the_request(emu: TogetherEmulator) -> None:
    # Over a real port: only a socket honours the read timeout the deadline sets.
    emu.script.run_seconds = 5.0
    with emu.serve() as url, fluxkit.Generator("together", api_key=KEY, base_url=url) as gen:
        gen.capabilities()  # plan once first: the deadline below is the request's, not setup's
        started = time.monotonic()
        with pytest.raises(DeadlineExceeded) as caught:
            gen.generate("x", size=SMALL, timeout=1.0)
        assert time.monotonic() - started < 3.0  # abandoned at the deadline, not after 5 s
    assert caught.value.cancelled is False  # Together has no cancel endpoint
    assert [r.path for r in emu.log] == ["/v1/images/generations"]


async def test_async_deadline_and_task_cancellation_abandon_the_request(
    emu: TogetherEmulator,
) -> None:
    emu.script.run_seconds = 2.0
    with emu.serve() as url:
        async with fluxkit.AsyncGenerator("together", api_key=KEY, base_url=url) as agen:
            started = time.monotonic()
            with pytest.raises(DeadlineExceeded):
                await agen.generate("x", size=SMALL, timeout=0.2)
            assert time.monotonic() - started < 1.0
            task = asyncio.ensure_future(agen.generate("y", size=SMALL))
            await asyncio.sleep(0.1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert time.monotonic() - started < 1.5
    assert {r.path for r in emu.log} == {"/v1/images/generations"}  # nothing else to call


# -- 4xx mapping ----------------------------------------------------------------------------


def test_wrong_key_raises_authentication_error_without_leaking_it(emu: TogetherEmulator) -> None:
    client = httpx.Client(transport=emu.transport())
    gen = fluxkit.Generator(
        "together", api_key="sk-wrong", base_url=emu.base_url, http_client=client
    )
    with pytest.raises(AuthenticationError) as caught:
        gen.generate("x", size=SMALL)
    assert caught.value.status_code == 401 and "Invalid API key" in str(caught.value)
    assert "sk-wrong" not in str(caught.value) and "sk-wrong" not in repr(gen)


def test_invalid_field_is_named(gen: fluxkit.Generator) -> None:
    with pytest.raises(ProviderRejectedError) as caught:
        gen.generate("x", size=SMALL, extra={"n": 9})
    assert (caught.value.status_code, caught.value.field) == (422, "n")
    assert "field n" in str(caught.value)


def test_unknown_model_passes_through_and_maps_not_found(gen: fluxkit.Generator) -> None:
    assert gen.capabilities("acme/new-model").notes.startswith("any other Together")
    with pytest.raises(ProviderRejectedError, match="Unable to access model") as caught:
        gen.generate("x", model="acme/new-model", size=SMALL)
    assert caught.value.status_code == 404


def test_missing_key_names_the_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TOGETHER_API_KEY", raising=False)
    with pytest.raises(MissingCredentialsError, match="TOGETHER_API_KEY"):
        fluxkit.Generator("together")
    monkeypatch.setenv("TOGETHER_API_KEY", "from-env")
    backend = TogetherBackend()
    assert backend.api_key is not None and backend.api_key.reveal() == "from-env"
    assert backend.base_url == "https://api.together.xyz"


# -- a real port ----------------------------------------------------------------------------


def test_sync_and_async_over_a_real_port(emu: TogetherEmulator) -> None:
    with emu.serve() as url:
        with fluxkit.Generator("together", api_key=KEY, base_url=url) as gen:
            sync_result = gen.generate("a fox", size=SMALL, seed=5, n=2)

        async def run() -> fluxkit.GenerationResult:
            async with fluxkit.AsyncGenerator("together", api_key=KEY, base_url=url) as agen:
                return await agen.generate("a fox", size=SMALL, seed=5)

        async_result = asyncio.run(run())
    assert sync_result.seeds == (5, 6)
    assert async_result.images[0].data == sync_result.images[0].data


# -- pure parts -----------------------------------------------------------------------------


def _call(model: str, **fields: Any) -> Call:
    request = GenerationRequest(prompt="p", width=256, height=256, seed=3, **fields)
    return Call(request, model, (3,))


def test_payload_uses_each_models_guidance_field_and_merges_extra() -> None:
    backend = TogetherBackend(api_key=KEY)
    assert backend.payload(_call(DEV, guidance=2.0))["guidance_scale"] == 2.0
    assert backend.payload(_call(FLUX2_DEV, guidance=2.0))["guidance"] == 2.0
    extra = {"negative_prompt": "blur", "disable_safety_checker": True}
    assert backend.payload(_call(SCHNELL, extra=extra)).items() >= extra.items()


@pytest.mark.parametrize(
    "body",
    [{"id": "x", "data": []}, {"id": "x", "data": [{"index": 0}]}, "oops", {"data": [None]}],
)
def test_unreadable_answers_raise_response_format_error(body: Any) -> None:
    with pytest.raises(ResponseFormatError):
        TogetherBackend(api_key=KEY).parse(body, _call(SCHNELL))


def test_items_without_type_are_read_and_timings_kept() -> None:
    png = _png()
    body = {
        "id": "r1",
        "data": [{"b64_json": base64.b64encode(png).decode(), "timings": {"inference": 0.8}}],
    }
    output = TogetherBackend(api_key=KEY).parse(body, _call(SCHNELL))
    assert output.images[0].data == png and (output.images[0].width, output.images[0].height) == (
        64,
        64,
    )
    assert (output.request_id, output.running_seconds) == ("r1", 0.8)


def test_every_alias_names_a_model_in_the_capability_table() -> None:
    assert set(MODEL_ALIASES.values()) <= set(CAPABILITIES)
    assert all(caps.max_loras <= 2 and not caps.seeds_per_image for caps in CAPABILITIES.values())
