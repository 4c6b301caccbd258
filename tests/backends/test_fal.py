"""The fal backend end to end: fluxkit.Generator / AsyncGenerator against FalEmulator."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

import fluxkit
from fluxkit import LoRA
from fluxkit._events import Log, Queued, Retrying, Started, Step
from fluxkit._exceptions import (
    AuthenticationError,
    DeadlineExceeded,
    InvalidRequestError,
    JobCancelledError,
    JobFailedError,
    MissingCredentialsError,
    ProviderRejectedError,
    RateLimitError,
    UnsupportedFeatureError,
)
from fluxkit._uploads import DEFAULT_INLINE_LIMIT, UploadCache
from fluxkit._warnings import ContentFlagged, ProviderNotice
from fluxkit.backends._fal._queue import parse_sse, ticket_from_submit
from fluxkit.backends.fal import CAPABILITIES, MODEL_ALIASES, FalBackend
from fluxkit.testing.fal import FalEmulator

SMALL = (256, 256)


@pytest.fixture
def emu() -> FalEmulator:
    emulator = FalEmulator(api_key="test")
    emulator.script.run_seconds = 0.02
    return emulator


@pytest.fixture
def cache() -> UploadCache:
    return UploadCache()


@pytest.fixture
def gen(emu: FalEmulator, cache: UploadCache) -> Iterator[fluxkit.Generator]:
    with emu.generator(api_key="test", upload_cache=cache) as generator:
        yield generator


def submits(emu: FalEmulator) -> list[tuple[str, Any]]:
    """(endpoint path, body) of every submit the emulator received."""
    return [(r.path, r.json()) for r in emu.requests(r"^/(?!storage|files)", method="POST")]


def png(size: int) -> bytes:
    import numpy as np
    from PIL import Image

    pixels = np.random.default_rng(size).integers(0, 255, (size, size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


# -- txt2img, seeds, models ------------------------------------------------------------------


def test_txt2img_sends_fal_fields_and_returns_the_image(
    gen: fluxkit.Generator, emu: FalEmulator
) -> None:
    result = gen.generate("a red fox", size=SMALL, seed=11)

    [(path, body)] = submits(emu)
    assert path == "/fal-ai/flux/dev"
    assert body == {
        "prompt": "a red fox",
        "seed": 11,
        "num_images": 1,
        "output_format": "png",
        "image_size": {"width": 256, "height": 256},
        "num_inference_steps": 28,
        "guidance_scale": 3.5,
    }
    assert emu.log[0].header("authorization") == "Key test"
    image = result.images[0]
    assert (image.seed, image.width, image.height, image.format) == (11, 256, 256, "png")
    assert result.request_ids == (next(iter(emu.jobs)),)
    assert result.timings.running == pytest.approx(0.02)


async def test_async_txt2img_matches_sync(emu: FalEmulator) -> None:
    async with emu.async_generator(
        api_key="test",
    ) as agen:
        result = await agen.generate("a red fox", size="square", seed=11, model="flux-schnell")
    [(path, body)] = submits(emu)
    assert (path, body["image_size"], body["num_inference_steps"]) == (
        "/fal-ai/flux/schnell",
        "square",
        4,
    )
    assert "guidance_scale" not in body
    assert [image.seed for image in result.images] == [11]


def test_n_images_are_one_call_each_so_every_seed_regenerates_its_image(
    gen: fluxkit.Generator, emu: FalEmulator
) -> None:
    result = gen.generate("a fox", size=SMALL, seed=5, n=3)

    assert sorted(body["seed"] for _, body in submits(emu)) == [5, 6, 7]
    assert {body["num_images"] for _, body in submits(emu)} == {1}
    assert result.seeds == (5, 6, 7)
    assert len(set(result.request_ids)) == 3


def test_flux_pro_sends_no_steps_or_guidance(gen: fluxkit.Generator, emu: FalEmulator) -> None:
    gen.generate("a fox", size="landscape_16_9", seed=1, model="flux-pro")
    [(path, body)] = submits(emu)
    assert path == "/fal-ai/flux-pro/v1.1"
    assert body["image_size"] == "landscape_16_9"
    assert "num_inference_steps" not in body and "guidance_scale" not in body


def test_ultra_takes_the_nearest_aspect_ratio_with_a_notice(
    gen: fluxkit.Generator, emu: FalEmulator
) -> None:
    result = gen.generate("a fox", size=(1024, 592), seed=1, model="flux-pro-ultra")
    [(path, body)] = submits(emu)
    assert (path, body["aspect_ratio"]) == ("/fal-ai/flux-pro/v1.1-ultra", "16:9")
    assert "image_size" not in body
    assert any(isinstance(w, ProviderNotice) and "16:9" in str(w) for w in result.warnings)


def test_other_endpoint_ids_pass_through_with_extra_fields(
    gen: fluxkit.Generator, emu: FalEmulator
) -> None:
    gen.generate(
        "a fox", size=SMALL, model="someone/custom-flux/v2", extra={"acceleration": "high"}
    )
    [(path, body)] = submits(emu)
    assert (path, body["acceleration"]) == ("/someone/custom-flux/v2", "high")
    # status and result live under the app's base id, without the endpoint's sub-path
    assert emu.requests(r"^/someone/custom-flux/requests/[\w-]+$", method="GET")


# -- LoRAs -------------------------------------------------------------------------------------


def test_loras_switch_to_flux_lora_with_urls_fal_accepts(
    gen: fluxkit.Generator, emu: FalEmulator
) -> None:
    loras = [
        LoRA("hf://me/style/style.safetensors@v2", scale=0.7),
        LoRA("hf://me/face", scale=1.1),
        LoRA("https://example.com/x.safetensors"),
    ]
    gen.generate("portrait of tok", size=SMALL, seed=1, loras=loras)
    [(path, body)] = submits(emu)
    assert path == "/fal-ai/flux-lora"
    assert body["loras"] == [
        {"path": "https://huggingface.co/me/style/resolve/v2/style.safetensors", "scale": 0.7},
        {"path": "me/face", "scale": 1.1},
        {"path": "https://example.com/x.safetensors", "scale": 1.0},
    ]


def test_loras_on_schnell_fail_before_any_request(gen: fluxkit.Generator, emu: FalEmulator) -> None:
    with pytest.raises(UnsupportedFeatureError, match="LoRAs"):
        gen.generate("a fox", model="flux-schnell", loras=["hf://me/style/s.safetensors"])
    assert emu.log == []


def test_bare_hub_repo_at_a_revision_is_refused_before_any_request(
    gen: fluxkit.Generator, emu: FalEmulator
) -> None:
    with pytest.raises(InvalidRequestError, match="name the file"):
        gen.generate("a fox", size=SMALL, loras=["hf://me/style@v2"])
    assert emu.log == []


# -- input images --------------------------------------------------------------------------------


def test_img2img_goes_to_image_to_image_with_inline_image_and_strength(
    gen: fluxkit.Generator, emu: FalEmulator
) -> None:
    init = png(64)
    result = gen.generate("a fox", image=init, strength=0.4, seed=2)
    [(path, body)] = submits(emu)
    assert path == "/fal-ai/flux/dev/image-to-image"
    assert body["image_url"].startswith("data:image/png;base64,")
    assert (body["strength"], body["num_inference_steps"]) == (0.4, 40)
    assert "image_size" not in body
    assert (result.images[0].width, result.images[0].height) == (64, 64)  # follows the input


def test_img2img_with_loras_uses_flux_lora_image_to_image(
    gen: fluxkit.Generator, emu: FalEmulator
) -> None:
    gen.generate("a fox", image=png(32), loras=["https://example.com/a.safetensors"])
    [(path, body)] = submits(emu)
    assert path == "/fal-ai/flux-lora/image-to-image"
    assert body["strength"] == 0.75  # fluxkit's default, the same on every backend


def test_large_init_image_is_uploaded_once_for_many_requests(
    gen: fluxkit.Generator, emu: FalEmulator, cache: UploadCache
) -> None:
    init = png(384)
    assert len(init) > DEFAULT_INLINE_LIMIT
    for seed in range(3):
        gen.generate("a fox", image=init, seed=seed)

    assert emu.uploads == 1 and cache.uploads == 1 and cache.hits == 2
    assert len(emu.requests("^/storage/auth/token$", method="POST")) == 1
    upload = emu.requests("^/files/upload$", method="POST")[0]
    assert upload.body == init and upload.header("content-type") == "image/png"
    urls = {body["image_url"] for _, body in submits(emu)}
    assert len(urls) == 1 and urls.pop().startswith("http://fal.emulator.local/files/")


def test_upload_falls_back_to_fal_storage_when_the_cdn_fails(
    gen: fluxkit.Generator, emu: FalEmulator
) -> None:
    emu.script.fail_next(500, count=5, path="^/files/upload$")
    gen.generate("a fox", image=png(384), seed=1)
    assert emu.requests("^/storage/upload/initiate$", method="POST")
    assert emu.requests("^/storage/upload/put/", method="PUT")
    [(_, body)] = submits(emu)
    assert emu.files[body["image_url"].rsplit("/files/", 1)[1]] == png(384)


def test_reference_image_on_ultra_is_an_image_prompt(
    gen: fluxkit.Generator, emu: FalEmulator
) -> None:
    gen.generate(
        "a fox", size="square_hd", model="flux-pro-ultra", reference_image=png(32),
        reference_strength=0.3,
    )  # fmt: skip
    [(_, body)] = submits(emu)
    assert (body["aspect_ratio"], body["image_prompt_strength"]) == ("1:1", 0.3)
    assert body["image_url"].startswith("data:image/png")


def test_reference_image_on_dev_is_refused_before_any_request(
    gen: fluxkit.Generator, emu: FalEmulator
) -> None:
    with pytest.raises(UnsupportedFeatureError, match="reference_image"):
        gen.generate("a fox", reference_image=png(32))
    assert emu.log == []


# -- events, results -----------------------------------------------------------------------------


def test_queue_positions_start_and_logs_become_events(
    gen: fluxkit.Generator, emu: FalEmulator
) -> None:
    emu.queue_position, emu.script.queue_seconds, emu.script.steps = 3, 0.6, 2
    emu.script.run_seconds = 0.8
    events: list[Any] = []
    gen.generate("a fox", size=SMALL, on_event=events.append)

    positions = [e.position or 0 for e in events if isinstance(e, Queued)]
    assert positions[0] == 3 and positions == sorted(positions, reverse=True)
    assert len(positions) >= 2
    started = next(i for i, e in enumerate(events) if isinstance(e, Started))
    logs = [e.message for e in events if isinstance(e, Log)]
    assert logs == ["Starting FLUX inference"]  # the sampler's bar lines became Step events
    assert [(e.i, e.total) for e in events if isinstance(e, Step)] == [(1, 2), (2, 2)]
    assert all(not isinstance(e, Queued) for e in events[started:])
    # polled while others were ahead, then one status stream until completion
    assert len(emu.requests(r"/status/stream$")) == 1
    assert emu.requests(r"/status$")


def test_result_is_fetched_the_moment_the_job_completes(
    gen: fluxkit.Generator, emu: FalEmulator
) -> None:
    emu.script.run_seconds = 0.3
    gen.generate("a fox", size=SMALL)
    job = next(iter(emu.jobs.values()))
    [fetch] = emu.requests(rf"/requests/{job.id}$", method="GET")
    assert 0 <= fetch.received_at - job.finished_at < 0.2


def test_polls_when_the_status_stream_is_unavailable(
    gen: fluxkit.Generator, emu: FalEmulator
) -> None:
    emu.script.fail_next(404, count=1, path="/status/stream$")
    emu.script.run_seconds = 0.1
    result = gen.generate("a fox", size=SMALL, seed=4)
    assert result.seeds == (4,)
    assert len(emu.requests(r"/status$", method="GET")) >= 2


def test_nsfw_flag_becomes_a_content_flagged_warning(gen: fluxkit.Generator) -> None:
    result = gen.generate("nsfw test", size=SMALL)
    assert [type(w) for w in result.warnings] == [ContentFlagged]


def test_sync_mode_data_uris_need_no_download(gen: fluxkit.Generator, emu: FalEmulator) -> None:
    result = gen.generate("a fox", size=SMALL, extra={"sync_mode": True})
    assert result.images[0].url is not None and result.images[0].url.startswith("data:")
    assert not emu.requests("^/files/", method="GET")


# -- cancellation and deadlines ------------------------------------------------------------------


async def test_cancelled_task_cancels_the_request_at_fal(emu: FalEmulator) -> None:
    emu.script.run_seconds = 5.0
    accepted = asyncio.Event()
    async with emu.async_generator(
        api_key="test",
    ) as agen:
        task = asyncio.create_task(
            agen.generate("a fox", size=SMALL, on_event=lambda event: accepted.set())
        )
        await accepted.wait()  # the first event comes once fal has accepted the request
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert emu.cancelled == set(emu.jobs)
    assert emu.requests("/cancel$", method="PUT")[0].header("authorization") == "Key test"


def test_deadline_cancels_the_request_at_fal(emu: FalEmulator) -> None:
    # Over a real port: the in-process transport does not enforce socket timeouts, and the
    # deadline cuts the open status stream through its socket timeout.
    emu.script.run_seconds = 5.0
    with (
        emu.serve() as url,
        fluxkit.Generator("fal", api_key="test", base_url=url) as gen,
        pytest.raises(DeadlineExceeded) as caught,
    ):
        gen.generate("a fox", size=SMALL, timeout=0.3)
    assert caught.value.cancelled and caught.value.request_id in emu.cancelled


def test_request_cancelled_elsewhere_raises_job_cancelled(
    gen: fluxkit.Generator, emu: FalEmulator
) -> None:
    emu.script.run_seconds = 0.5

    def cancel_it(event: Any) -> None:
        if isinstance(event, Queued):
            emu.jobs[event.request_id or ""].cancelled_at = emu.clock()

    with pytest.raises(JobCancelledError, match="cancelled"):
        gen.generate("a fox", size=SMALL, on_event=cancel_it)


# -- errors --------------------------------------------------------------------------------------


def test_429_with_retry_after_is_retried_before_acceptance(
    gen: fluxkit.Generator, emu: FalEmulator
) -> None:
    emu.script.fail_next(429, count=2, path="^/fal-ai", method="POST", retry_after=0.05)
    events: list[Any] = []
    gen.generate("a fox", size=SMALL, on_event=events.append)
    retries = [e for e in events if isinstance(e, Retrying)]
    assert [r.delay for r in retries] == [0.05, 0.05]
    assert len(emu.jobs) == 1 and len(submits(emu)) == 3


def test_429_that_outlasts_retries_maps_to_rate_limit(emu: FalEmulator) -> None:
    emu.script.fail_next(429, count=9, method="POST", retry_after=0.01)
    with (
        emu.generator(api_key="test", max_retries=2) as gen,
        pytest.raises(RateLimitError) as caught,
    ):
        gen.generate("a fox", size=SMALL)
    assert (caught.value.status_code, caught.value.retry_after) == (429, 0.01)


async def test_503_burst_is_retried_and_not_resubmitted_after_acceptance(
    emu: FalEmulator,
) -> None:
    body = {"detail": "No runner available", "error_type": "runner_scheduling_failure"}
    emu.script.fail_next(503, count=2, method="POST", retry_after=0.01, body=body)
    emu.script.fail_next(503, count=1, path=r"/requests/[\w-]+$", retry_after=0.01)
    async with emu.async_generator(
        api_key="test",
    ) as agen:
        result = await agen.generate("a fox", size=SMALL, seed=9)
    assert result.seeds == (9,) and len(emu.jobs) == 1


def test_wrong_key_maps_to_authentication_error(emu: FalEmulator) -> None:
    with (
        emu.generator(
            api_key="wrong",
        ) as gen,
        pytest.raises(AuthenticationError, match="Invalid Key") as caught,
    ):
        gen.generate("a fox", size=SMALL)
    assert caught.value.status_code == 401 and "wrong" not in str(caught.value)


def test_422_at_submit_names_the_field(gen: fluxkit.Generator, emu: FalEmulator) -> None:
    detail = [{"loc": ["body", "image_size"], "msg": "bad size", "type": "value_error"}]
    emu.script.fail_next(422, method="POST", body={"detail": detail})
    with pytest.raises(ProviderRejectedError) as caught:
        gen.generate("a fox", size=SMALL)
    assert (caught.value.field, caught.value.status_code) == ("image_size", 422)


def test_model_validation_error_at_result_names_the_field(
    gen: fluxkit.Generator, emu: FalEmulator
) -> None:
    emu.reject_jobs("image_url", "image could not be downloaded")
    with pytest.raises(ProviderRejectedError, match="could not be downloaded") as caught:
        gen.generate("a fox", size=SMALL)
    assert caught.value.field == "image_url"
    assert caught.value.request_id == next(iter(emu.jobs))


def test_failed_job_raises_job_failed_with_logs(gen: fluxkit.Generator, emu: FalEmulator) -> None:
    emu.script.fail_jobs(1, "CUDA out of memory")
    with pytest.raises(JobFailedError, match="CUDA out of memory") as caught:
        gen.generate("a fox", size=SMALL)
    assert caught.value.status_code == 500
    assert "Starting FLUX inference" in caught.value.logs
    # the failed result is read once, not retried
    assert len(emu.requests(r"/requests/[\w-]+$", method="GET")) == 1


# -- credentials, configuration, real port -------------------------------------------------------


def test_credentials_come_from_fal_key_then_key_id_and_secret() -> None:
    assert FalBackend(environ={"FAL_KEY": "k1"}).api_key is not None
    backend = FalBackend(environ={"FAL_KEY_ID": "id", "FAL_KEY_SECRET": "s3cret"})
    assert backend.api_key is not None and backend.api_key.reveal() == "id:s3cret"
    assert "s3cret" not in repr(backend)
    with pytest.raises(MissingCredentialsError, match="FAL_KEY_ID \\+ FAL_KEY_SECRET"):
        FalBackend(environ={"FAL_KEY_ID": "id"})


def test_custom_base_url_carries_uploads_unless_told_otherwise() -> None:
    backend = FalBackend(api_key="k", base_url="https://gw.example.com/fal/")
    assert (backend.base_url, backend.rest_url, backend.cdn_url) == (
        "https://gw.example.com/fal",
        "https://gw.example.com/fal",
        "https://gw.example.com/fal",
    )
    default = FalBackend(api_key="k")
    assert (default.rest_url, default.cdn_url) == ("https://rest.fal.ai", "https://v3.fal.media")


def test_ticket_urls_from_fal_are_moved_onto_a_gateway() -> None:
    answer = {
        "request_id": "r1",
        "status_url": "https://queue.fal.run/fal-ai/flux/requests/r1/status",
        "response_url": "https://queue.fal.run/fal-ai/flux/requests/r1",
    }
    ticket = ticket_from_submit(answer, "fal-ai/flux/dev", "https://gw.example.com/fal")
    assert ticket.status_url == "https://gw.example.com/fal/fal-ai/flux/requests/r1/status"
    assert ticket.cancel_url == "https://gw.example.com/fal/fal-ai/flux/requests/r1/cancel"
    direct = ticket_from_submit(answer, "fal-ai/flux/dev", "https://queue.fal.run")
    assert direct.response_url == answer["response_url"]


def test_sse_parser_skips_comments_and_joins_data_lines() -> None:
    body = b': keep-alive\n\ndata: {"status": "IN_QUEUE",\ndata:  "queue_position": 1}\n\n'
    body += b'event: x\ndata: {"status": "COMPLETED"}\n\ndata: not json\n\n'
    assert parse_sse(body) == [{"status": "IN_QUEUE", "queue_position": 1}, {"status": "COMPLETED"}]


def test_capability_table_covers_every_alias() -> None:
    assert set(MODEL_ALIASES.values()) <= set(CAPABILITIES)
    assert not CAPABILITIES["fal-ai/flux/dev"].seeds_per_image


def test_sync_over_a_real_port(emu: FalEmulator, cache: UploadCache) -> None:
    with (
        emu.serve() as url,
        fluxkit.Generator("fal", api_key="test", base_url=url, upload_cache=cache) as gen,
    ):
        result = gen.generate("a fox", image=png(384), seed=3)
    assert result.images[0].seed == 3 and emu.uploads == 1
    assert emu.log[0].header("host") == url.removeprefix("http://")


async def test_async_over_a_real_port_with_own_http_client(emu: FalEmulator) -> None:
    with emu.serve() as url:
        async with (
            httpx.AsyncClient() as client,
            fluxkit.AsyncGenerator("fal", api_key="test", base_url=url, http_client=client) as agen,
        ):
            result = await agen.generate("a fox", size=SMALL, seed=8, n=2)
    assert result.seeds == (8, 9)
