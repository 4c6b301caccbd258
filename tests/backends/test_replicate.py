"""The replicate backend end to end: fluxkit.Generator / AsyncGenerator against ReplicateEmulator."""

from __future__ import annotations

import asyncio
import io
import json
import random
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from PIL import Image

import fluxkit
from fluxkit import (
    AuthenticationError,
    DeadlineExceeded,
    InvalidRequestError,
    JobCancelledError,
    JobFailedError,
    MissingCredentialsError,
    ProviderRejectedError,
    UnsupportedFeatureError,
)
from fluxkit._core import Accepted, HttpRequest, HttpResponse, Wait
from fluxkit._uploads import UploadCache
from fluxkit.backends._base import Call
from fluxkit.backends._replicate._inputs import FLUX_SCHNELL, lora_reference, snap_size
from fluxkit.backends._replicate._progress import PredictionWatcher, reported_seed, timings
from fluxkit.backends._replicate._results import refusal
from fluxkit.backends.replicate import CAPABILITIES, ReplicateBackend
from fluxkit.testing.replicate import ReplicateEmulator

CREATE_DEV = r"/v1/models/black-forest-labs/flux-dev/predictions$"


@pytest.fixture
def emu() -> ReplicateEmulator:
    emulator = ReplicateEmulator(api_key="test")
    emulator.script.run_seconds = 0.05
    return emulator


@pytest.fixture
def uploads() -> UploadCache:
    return UploadCache()


@pytest.fixture
def gen(emu: ReplicateEmulator, uploads: UploadCache) -> Iterator[fluxkit.Generator]:
    with emu.generator(
        api_key="test",
        upload_cache=uploads,
        timeout=20,
    ) as generator:
        yield generator


@pytest.fixture
async def agen(emu: ReplicateEmulator, uploads: UploadCache) -> Any:
    async with emu.async_generator(
        api_key="test",
        upload_cache=uploads,
        timeout=20,
    ) as generator:
        yield generator


def sent_input(emu: ReplicateEmulator, index: int = -1) -> dict[str, Any]:
    creates = emu.requests(r"/predictions$", method="POST")
    body: dict[str, Any] = creates[index].json()
    return body


def png(width: int, height: int, colour: tuple[int, int, int] = (200, 40, 40)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def noisy_png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    noise = random.Random(width * height).randbytes(width * height * 3)
    Image.frombytes("RGB", (width, height), noise).save(buffer, format="PNG")
    return buffer.getvalue()


# -- txt2img -------------------------------------------------------------------------------


def test_txt2img_creates_an_official_model_prediction(
    gen: fluxkit.Generator, emu: ReplicateEmulator
) -> None:
    result = gen.generate("a red fox", seed=7, size=(512, 512))

    image = result.image
    assert (image.seed, image.width, image.height, image.format) == (7, 512, 512, "png")
    assert image.to_pil().size == (512, 512)
    create = emu.requests(CREATE_DEV, method="POST")[0]
    assert create.header("authorization") == "Bearer test"
    assert create.header("prefer") is None  # flux-dev is polled, with progress
    assert create.json()["input"] == {
        "prompt": "a red fox",
        "seed": 7,
        "num_outputs": 1,
        "aspect_ratio": "1:1",
        "megapixels": "0.25",
        "num_inference_steps": 28,
        "guidance": 3.0,
        "output_format": "png",
    }
    assert result.request_ids == (image.record["request_id"],)
    assert result.timings.running == pytest.approx(0.05)
    assert result.warnings == ()


async def test_async_txt2img_matches_sync(
    agen: fluxkit.AsyncGenerator, gen: fluxkit.Generator
) -> None:
    async_result = await agen.generate("a red fox", seed=7, size=(512, 512))
    sync_result = await asyncio.to_thread(gen.generate, "a red fox", seed=7, size=(512, 512))
    assert async_result.image.data == sync_result.image.data


def test_sizes_snap_to_an_aspect_ratio_with_a_warning(
    gen: fluxkit.Generator, emu: ReplicateEmulator
) -> None:
    result = gen.generate("a fox", size="portrait_4_3", model="flux-schnell")

    assert (result.image.width, result.image.height) == (896, 1152)
    assert result.image.to_pil().size == (896, 1152)
    assert sent_input(emu)["input"]["aspect_ratio"] == "3:4"
    (warning,) = result.warnings
    assert isinstance(warning, fluxkit.RequestCoerced) and warning.used == (896, 1152)


def test_schnell_holds_the_create_request_and_needs_no_poll(
    gen: fluxkit.Generator, emu: ReplicateEmulator
) -> None:
    result = gen.generate("a fox", seed=1, size=(512, 512), model="flux-schnell")

    create = emu.requests(r"/flux-schnell/predictions$")[0]
    assert create.header("prefer") == "wait=5"
    assert "guidance" not in create.json()["input"]
    assert create.json()["input"]["num_inference_steps"] == 4
    assert emu.requests(r"/v1/predictions/\w+$", method="GET") == []
    assert result.image.seed == 1


def test_flux_pro_takes_custom_sizes_and_returns_one_url(
    gen: fluxkit.Generator, emu: ReplicateEmulator
) -> None:
    result = gen.generate("a fox", seed=3, size=(256, 384), model="flux-pro", output_format="jpeg")

    body = sent_input(emu)["input"]
    assert {k: body[k] for k in ("aspect_ratio", "width", "height", "output_format")} == {
        "aspect_ratio": "custom",
        "width": 256,
        "height": 384,
        "output_format": "jpg",
    }
    assert "num_inference_steps" not in body and "num_outputs" not in body
    assert result.image.format == "jpeg" and result.image.to_pil().size == (256, 384)
    with pytest.raises(InvalidRequestError, match="multiples of 32"):
        gen.generate("a fox", size=(272, 256), model="flux-pro")


# -- seeds -----------------------------------------------------------------------------------


def test_n_images_get_their_own_seeds_one_prediction_each(
    gen: fluxkit.Generator, emu: ReplicateEmulator
) -> None:
    result = gen.generate("a lighthouse", seed=10, n=3, size=(512, 512))

    assert result.seeds == (10, 11, 12)
    creates = [r.json()["input"] for r in emu.requests(CREATE_DEV)]
    assert sorted((c["seed"], c["num_outputs"]) for c in creates) == [(10, 1), (11, 1), (12, 1)]
    again = gen.generate("a lighthouse", seed=11, size=(512, 512))
    assert again.image.data == result.images[1].data


def test_seed_zero_reports_the_seed_replicate_used(gen: fluxkit.Generator) -> None:
    result = gen.generate("a fox", seed=0, size=(512, 512))

    assert result.image.seed not in (None, 0)
    assert any(isinstance(w, fluxkit.ProviderNotice) for w in result.warnings)


# -- LoRAs -----------------------------------------------------------------------------------


def test_loras_switch_flux_dev_to_flux_dev_lora_and_translate_sources(
    gen: fluxkit.Generator, emu: ReplicateEmulator
) -> None:
    result = gen.generate(
        "tok person",
        seed=1,
        size=(512, 512),
        loras=[fluxkit.LoRA("hf://me/tok/lora.safetensors@v2", scale=0.8), ("hf://me/style", 0.5)],
    )

    assert result.model == "black-forest-labs/flux-dev-lora"
    body = emu.requests(r"/flux-dev-lora/predictions$")[0].json()["input"]
    assert body["lora_weights"] == "https://huggingface.co/me/tok/resolve/v2/lora.safetensors"
    assert body["lora_scale"] == 0.8
    assert (body["extra_lora"], body["extra_lora_scale"]) == ("huggingface.co/me/style", 0.5)


def test_lora_limits_fail_before_any_request(
    gen: fluxkit.Generator, emu: ReplicateEmulator
) -> None:
    three = ["hf://a/b", "hf://c/d", "hf://e/f"]
    with pytest.raises(UnsupportedFeatureError, match="at most 2"):
        gen.generate("x", loras=three)
    with pytest.raises(UnsupportedFeatureError, match="LoRAs"):
        gen.generate("x", model="flux-schnell", loras=["hf://a/b"])
    with pytest.raises(InvalidRequestError, match="revision"):
        gen.generate("x", size=(512, 512), loras=["hf://a/b@main"])
    assert emu.log == []


def test_trained_lora_model_runs_by_version(gen: fluxkit.Generator, emu: ReplicateEmulator) -> None:
    ref = emu.add_model("me/tok-flux")
    result = gen.generate(
        "TOK at the beach",
        model=ref,
        seed=4,
        size=(256, 384),
        guidance=2.5,
        loras=["https://example.com/style.safetensors"],
    )

    create = emu.requests(r"^/v1/predictions$", method="POST")[0].json()
    assert create["version"] == ref.split(":")[1]
    body = create["input"]
    assert (body["aspect_ratio"], body["width"], body["height"]) == ("custom", 256, 384)
    assert body["guidance_scale"] == 2.5 and "guidance" not in body
    assert body["extra_lora"] == "https://example.com/style.safetensors"
    assert result.image.to_pil().size == (256, 384)
    with pytest.raises(UnsupportedFeatureError, match="at most 1"):
        gen.generate("x", model=ref, loras=["hf://a/b", "hf://c/d"])


# -- input images ----------------------------------------------------------------------------


def test_img2img_sends_a_small_image_inline(gen: fluxkit.Generator, emu: ReplicateEmulator) -> None:
    result = gen.generate("a painting", image=png(320, 480), strength=0.6, seed=2)

    body = sent_input(emu)["input"]
    assert body["image"].startswith("data:image/png;base64,")
    assert body["prompt_strength"] == 0.6
    assert "aspect_ratio" not in body
    assert (result.image.width, result.image.height) == (320, 480)
    assert result.image.to_pil().size == (320, 480)
    assert emu.files == {}


def test_reference_images_are_unsupported_everywhere_on_replicate(
    gen: fluxkit.Generator, emu: ReplicateEmulator
) -> None:
    with pytest.raises(UnsupportedFeatureError, match="reference_image"):
        gen.generate("x", reference_image=png(64, 64))
    assert emu.log == []


def test_large_images_are_uploaded_once(emu: ReplicateEmulator, uploads: UploadCache) -> None:
    image = noisy_png(256, 256)
    with emu.generator(
        api_key="test",
        upload_cache=uploads,
        inline_limit=1024,
    ) as generator:
        for seed in range(3):
            generator.generate("a painting", image=image, seed=seed)

    (upload,) = emu.requests(r"^/v1/files$", method="POST")
    assert str(upload.header("content-type")).startswith("multipart/form-data")
    (file_id,) = emu.files
    assert emu.files[file_id]["data"] == image
    assert {r.json()["input"]["image"] for r in emu.requests(CREATE_DEV)} == {
        f"http://replicate.emulator.fluxkit.local/v1/files/{file_id}"
    }
    assert (uploads.uploads, uploads.hits) == (1, 2)


async def test_concurrent_calls_share_one_upload(
    emu: ReplicateEmulator, uploads: UploadCache
) -> None:
    async with emu.async_generator(
        api_key="test",
        upload_cache=uploads,
        inline_limit=1024,
    ) as generator:
        result = await generator.generate("a painting", image=noisy_png(256, 256), n=4, seed=1)

    assert len(result.images) == 4
    assert len(emu.requests(r"^/v1/files$", method="POST")) == 1


def test_upload_cache_is_per_account() -> None:
    one = ReplicateBackend(api_key="one")._upload_namespace()
    assert one == ReplicateBackend(api_key="one")._upload_namespace()
    assert one != ReplicateBackend(api_key="two")._upload_namespace()
    assert "one" not in one


# -- events, cancellation, deadlines -----------------------------------------------------------


def test_events_follow_the_prediction(gen: fluxkit.Generator, emu: ReplicateEmulator) -> None:
    emu.script.queue_seconds = 0.05
    events = list(gen.stream("a fox", seed=9, size=(512, 512), steps=4))

    kinds = [type(e).__name__ for e in events]
    assert kinds[:2] == ["Submitted", "Queued"] and kinds[-1] == "Completed"
    assert kinds.index("Started") < kinds.index("Step")
    steps = [(e.i, e.total) for e in events if isinstance(e, fluxkit.Step)]
    assert steps == [(1, 4), (2, 4), (3, 4), (4, 4)]
    logs = [e.message for e in events if isinstance(e, fluxkit.Log)]
    assert logs[0] == "Using seed: 9" and logs[-1] == "Total safe images: 1 out of 1"


async def test_async_stream_yields_the_same_events(agen: fluxkit.AsyncGenerator) -> None:
    kinds = [type(e).__name__ async for e in agen.stream("a fox", seed=9, size=(512, 512), steps=2)]
    assert kinds[-1] == "Completed" and kinds.count("Step") == 2


async def test_cancelling_the_task_cancels_the_prediction(
    agen: fluxkit.AsyncGenerator, emu: ReplicateEmulator
) -> None:
    emu.script.run_seconds = 10
    started = asyncio.Event()

    def on_event(event: Any) -> None:
        if isinstance(event, fluxkit.Started):
            started.set()

    task = asyncio.create_task(agen.generate("slow", size=(512, 512), on_event=on_event))
    await asyncio.wait_for(started.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    (prediction_id,) = emu.predictions
    assert emu.cancelled == {prediction_id}


def test_deadline_cancels_the_prediction(gen: fluxkit.Generator, emu: ReplicateEmulator) -> None:
    emu.script.run_seconds = 10
    with pytest.raises(DeadlineExceeded) as caught:
        gen.generate("slow", size=(512, 512), timeout=0.3)

    assert caught.value.cancelled is True
    assert emu.cancelled == {caught.value.request_id}


def test_a_prediction_canceled_elsewhere_raises(
    gen: fluxkit.Generator, emu: ReplicateEmulator
) -> None:
    emu.script.run_seconds = 0.3

    def cancel_soon(event: Any) -> None:
        if isinstance(event, fluxkit.Started):
            emu.resolve(_request(f"/v1/predictions/{event.request_id}/cancel"))

    with pytest.raises(JobCancelledError, match="canceled"):
        gen.generate("x", size=(512, 512), on_event=cancel_soon)


def test_aborted_predictions_raise_a_typed_error(
    gen: fluxkit.Generator, emu: ReplicateEmulator
) -> None:
    emu.script.queue_seconds = 0.05
    emu.abort_jobs(1)
    with pytest.raises(JobCancelledError, match="aborted") as caught:
        gen.generate("x", size=(512, 512))
    assert caught.value.request_id in emu.predictions


# -- retries and errors ----------------------------------------------------------------------


def test_rate_limited_creates_are_retried_after_retry_after(
    gen: fluxkit.Generator, emu: ReplicateEmulator
) -> None:
    emu.script.fail_next(429, 2, path=r"/predictions$", method="POST", retry_after=0.02)
    events: list[Any] = []
    result = gen.generate("x", size=(512, 512), on_event=events.append)

    assert len(emu.requests(CREATE_DEV)) == 3
    retries = [e for e in events if isinstance(e, fluxkit.Retrying)]
    assert [(r.attempt, r.delay) for r in retries] == [(1, 0.02), (2, 0.02)]
    assert len(result.images) == 1


def test_server_errors_are_retried_on_create_and_poll(
    gen: fluxkit.Generator, emu: ReplicateEmulator
) -> None:
    emu.script.run_seconds = 0.2
    emu.script.fail_next(503, 1, path=r"/predictions$", method="POST", retry_after=0)
    emu.script.fail_next(502, 1, path=r"/v1/predictions/\w+$", method="GET", retry_after=0)
    assert len(gen.generate("x", size=(512, 512)).images) == 1
    assert len(emu.predictions) == 1


def test_wrong_token_is_an_authentication_error(emu: ReplicateEmulator) -> None:
    with emu.generator(
        api_key="wrong",
    ) as generator:
        with pytest.raises(AuthenticationError) as caught:
            generator.generate("x", size=(512, 512))
    assert caught.value.status_code == 401
    assert "valid authentication token" in str(caught.value.provider_message)
    assert "wrong" not in repr(generator) and "wrong" not in str(caught.value)


def test_invalid_input_names_the_field(gen: fluxkit.Generator) -> None:
    with pytest.raises(ProviderRejectedError) as caught:
        gen.generate("x", size=(512, 512), extra={"num_outputs": 9})
    assert (caught.value.field, caught.value.status_code) == ("num_outputs", 422)
    assert "num_outputs" in str(caught.value)


def test_unknown_models_are_refused_with_the_providers_message(gen: fluxkit.Generator) -> None:
    with pytest.raises(ProviderRejectedError) as caught:
        gen.generate("x", model="someone/nothing", size=(512, 512))
    assert caught.value.status_code == 404


def test_guidance_above_replicates_range_fails_before_sending(
    gen: fluxkit.Generator, emu: ReplicateEmulator
) -> None:
    with pytest.raises(InvalidRequestError, match="guidance"):
        gen.generate("x", size=(512, 512), guidance=12)
    assert emu.log == []


def test_failed_predictions_raise_with_logs(gen: fluxkit.Generator, emu: ReplicateEmulator) -> None:
    emu.script.fail_jobs(1, "CUDA out of memory")
    with pytest.raises(JobFailedError, match="CUDA out of memory") as caught:
        gen.generate("x", seed=5, size=(512, 512))
    assert "Using seed: 5" in caught.value.logs


def test_nsfw_refusals_become_content_flagged_warnings(gen: fluxkit.Generator) -> None:
    result = gen.generate("nsfw thing", seed=1, n=2, size=(512, 512))

    assert result.images == ()
    flagged = [w for w in result.warnings if isinstance(w, fluxkit.ContentFlagged)]
    assert sorted(w.index for w in flagged) == [0, 1]


def test_answers_that_are_not_predictions_are_format_errors(
    gen: fluxkit.Generator, emu: ReplicateEmulator
) -> None:
    emu.script.fail_next(201, 1, path=r"/predictions$", body={"unexpected": True})
    with pytest.raises(fluxkit.ResponseFormatError, match="prediction object"):
        gen.generate("x", size=(512, 512))


def test_missing_token_names_the_variable() -> None:
    with pytest.raises(MissingCredentialsError, match="REPLICATE_API_TOKEN"):
        fluxkit.Generator("replicate", environ={})


def test_token_comes_from_the_environment(emu: ReplicateEmulator) -> None:
    backend = ReplicateBackend(environ={"REPLICATE_API_TOKEN": "test"}, base_url=emu.base_url)
    assert backend.api_key is not None and backend.api_key.reveal() == "test"
    assert "test" not in repr(backend)


# -- over a real port --------------------------------------------------------------------------


def test_generation_over_a_real_port(emu: ReplicateEmulator, uploads: UploadCache) -> None:
    with (
        emu.serve() as url,
        fluxkit.Generator(
            "replicate", api_key="test", base_url=url, upload_cache=uploads
        ) as generator,
    ):
        result = generator.generate("a fox", seed=3, n=2, size=(512, 512))

    assert result.seeds == (3, 4)
    assert all(image.url and image.url.startswith(url) for image in result.images)
    assert all(image.to_pil().size == (512, 512) for image in result.images)


async def test_async_generation_with_an_injected_client(
    emu: ReplicateEmulator, uploads: UploadCache
) -> None:
    client = httpx.AsyncClient(transport=emu.transport())
    async with (
        client,
        fluxkit.AsyncGenerator(
            "replicate",
            api_key="test",
            base_url=emu.base_url,
            http_client=client,
            upload_cache=uploads,
        ) as generator,
    ):
        result = await generator.generate("a fox", seed=3, size=(512, 512))
    assert result.image.seed == 3


# -- capabilities ------------------------------------------------------------------------------


def test_capabilities_describe_each_model(gen: fluxkit.Generator) -> None:
    assert gen.capabilities("flux-dev-lora").max_loras == 2
    assert gen.capabilities("flux-dev").seeds_per_image is False
    assert gen.capabilities("black-forest-labs/flux-schnell:" + "0" * 64).max_steps == 4
    assert gen.capabilities("me/trained:" + "a" * 64) is CAPABILITIES["*"]


def _request(path: str) -> Any:
    from fluxkit.testing._emulator import EmuRequest

    return EmuRequest("POST", path, {}, {"authorization": "Bearer test"}, json.dumps({}).encode())


# -- pure pieces -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "ratio", "megapixels", "snapped"),
    [
        ((1024, 1024), "1:1", "1", (1024, 1024)),
        ((512, 512), "1:1", "0.25", (512, 512)),
        ((1344, 768), "16:9", "1", (1344, 768)),
        ((1024, 576), "16:9", "1", (1344, 768)),
        ((768, 1024), "3:4", "1", (896, 1152)),
        ((256, 256), "1:1", "0.25", (512, 512)),
    ],
)
def test_snap_size_picks_the_closest_aspect_ratio(
    size: tuple[int, int], ratio: str, megapixels: str, snapped: tuple[int, int]
) -> None:
    assert snap_size(*size) == (ratio, megapixels, snapped)


def test_lora_sources_translate_to_what_lora_weights_accepts() -> None:
    assert lora_reference(fluxkit.LoRA("hf://a/b")) == "huggingface.co/a/b"
    assert lora_reference(fluxkit.LoRA("a/b")) == "huggingface.co/a/b"
    assert (
        lora_reference(fluxkit.LoRA("hf://a/b", weight_name="w.safetensors"))
        == "https://huggingface.co/a/b/resolve/main/w.safetensors"
    )
    url = "https://civitai.com/api/download/models/1?type=Model&format=SafeTensor"
    assert lora_reference(fluxkit.LoRA(url)) == url


def test_watcher_reads_cumulative_logs_with_carriage_returns() -> None:
    watcher = PredictionWatcher("p1")
    first = watcher.observe(
        {"status": "processing", "logs": "Using seed: 4\n 25%|##  | 1/4\r 50%|"}
    )
    second = watcher.observe(
        {"status": "succeeded", "logs": "Using seed: 4\n 25%|##  | 1/4\r 50%|####| 2/4\rdone"}
    )

    assert [type(e).__name__ for e in first] == ["Started", "Log", "Step"]
    assert [(e.i, e.total) for e in second if isinstance(e, fluxkit.Step)] == [(2, 4)]
    assert [e.message for e in second if isinstance(e, fluxkit.Log)] == ["done"]
    assert reported_seed("Using seed: 4\n") == 4 and reported_seed("") is None


def test_timings_come_from_the_prediction() -> None:
    prediction = {
        "created_at": "2025-01-01T00:00:00.000Z",
        "started_at": "2025-01-01T00:00:01.500Z",
        "completed_at": "2025-01-01T00:00:09Z",
        "metrics": {"predict_time": 7.25},
    }
    assert timings(prediction) == (1.5, 7.25)
    assert timings({**prediction, "metrics": {}}) == (1.5, 7.5)
    assert timings({}) == (None, None)


def test_refusals_name_the_field_from_detail_lines() -> None:
    body = {
        "title": "Input validation failed",
        "status": 422,
        "detail": "- input.guidance: Must be less than or equal to 10\n",
    }
    error = refusal("replicate", HttpResponse(422, {}, json.dumps(body).encode()))
    assert isinstance(error, ProviderRejectedError) and error.field == "guidance"


def test_create_request_by_version_and_prefer_wait_option() -> None:
    backend = ReplicateBackend(api_key="k", prefer_wait=90)
    request = backend.create_request("me/model:" + "b" * 64, {"prompt": "x"})
    assert request.url == "https://api.replicate.com/v1/predictions"
    assert request.json == {"version": "b" * 64, "input": {"prompt": "x"}}
    assert request.headers["prefer"] == "wait=60" and request.retry == "submit"
    held = ReplicateBackend(api_key="k", prefer_wait=0).create_request(FLUX_SCHNELL, {})
    assert "prefer" not in held.headers


def test_polls_and_cancel_go_through_base_url_not_urls_get() -> None:
    backend = ReplicateBackend(api_key="k", base_url="https://proxy.example/replicate/")
    request = fluxkit.GenerationRequest(prompt="x", width=512, height=512, seed=1, steps=2)
    flow = backend.flow(Call(request, "black-forest-labs/flux-dev", (1,)))
    create = next(flow)
    assert (
        create.url
        == "https://proxy.example/replicate/v1/models/black-forest-labs/flux-dev/predictions"
    )
    answer = {
        "id": "p1",
        "status": "starting",
        "logs": "",
        "urls": {"get": "https://api.replicate.com/v1/predictions/p1"},
    }
    accepted = flow.send(HttpResponse(201, {}, json.dumps(answer).encode()))

    assert isinstance(accepted, Accepted) and accepted.cancel is not None
    assert accepted.cancel.url == "https://proxy.example/replicate/v1/predictions/p1/cancel"
    steps = [flow.send(None) for _ in range(3)]
    assert isinstance(steps[0], fluxkit.Queued) and isinstance(steps[1], Wait)
    assert isinstance(steps[2], HttpRequest)
    assert steps[2].url == "https://proxy.example/replicate/v1/predictions/p1"
