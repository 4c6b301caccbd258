"""The ``huggingface`` backend against the router emulator: routing, mapping, LoRAs, money rules."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

import fluxkit
from fluxkit import (
    BillingError,
    DeadlineExceeded,
    InvalidRequestError,
    JobMayExistError,
    MissingCredentialsError,
    ProviderNotice,
    Secret,
    UnsupportedFeatureError,
)
from fluxkit._core import Accepted, HttpRequest, HttpResponse
from fluxkit._core._media import encode_image
from fluxkit.backends._base import Call
from fluxkit.backends._huggingface._mapping import parse_mapping
from fluxkit.backends._huggingface._routing import RouterAuth, through_router
from fluxkit.backends.huggingface import HuggingFaceBackend, MappingCache
from fluxkit.testing import HuggingFaceEmulator, render_fake_image

TOKEN = "hf_emulator_token"
DEV = "black-forest-labs/FLUX.1-dev"
SMALL = (256, 256)
SIZES = {"replicate": (512, 512)}  # Replicate snaps sizes to aspect ratio + 0.25/1 megapixels
PROVIDERS = ("fal-ai", "replicate", "together", "hf-inference")


@pytest.fixture
def emu() -> HuggingFaceEmulator:
    return HuggingFaceEmulator(api_key=TOKEN)


@pytest.fixture
def cache() -> MappingCache:
    return MappingCache()


def make(emu: HuggingFaceEmulator, cache: MappingCache, **options: Any) -> fluxkit.Generator:
    return emu.generator(mapping_cache=cache, **options)


def routed_paths(emu: HuggingFaceEmulator) -> list[str]:
    return [f"{r.method} {r.path}" for r in emu.routed]


def hub_lookups(emu: HuggingFaceEmulator) -> list[str]:
    return [r.path for r in emu.requests(r"^/api/models/")]


# -- end to end --------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
def test_each_provider_generates_through_the_router(
    emu: HuggingFaceEmulator, cache: MappingCache, provider: str
) -> None:
    size = SIZES.get(provider, SMALL)
    with make(emu, cache, provider=provider) as gen:
        result = gen.generate("a red fox", size=size, seed=11, n=2)
    assert [image.seed for image in result.images] == [11, 12]
    assert {(image.width, image.height) for image in result.images} == {size}
    assert all(image.data and image.data.startswith(b"\x89PNG") for image in result.images)
    assert {r.provider for r in emu.routed} == {provider}
    # every routed request carried the Hugging Face token as a bearer token, nothing else
    for request in emu.requests(rf"^/{provider}/"):
        if "/files/" in request.path or "/delivery/" in request.path:
            continue
        assert request.header("authorization") == f"Bearer {TOKEN}"
    assert hub_lookups(emu) == [f"/api/models/{DEV}"]
    assert emu.requests(r"^/api/models/")[0].query == {"expand[]": "inferenceProviderMapping"}


def test_fal_runs_on_the_queue_subdomain_with_status_result_and_stream(
    emu: HuggingFaceEmulator, cache: MappingCache
) -> None:
    with make(emu, cache, provider="fal-ai") as gen:
        result = gen.generate("a fox", size=SMALL, seed=5)
    assert result.images[0].seed == 5
    fal_requests = [r for r in emu.requests(r"^/fal-ai/") if "/files/" not in r.path]
    assert fal_requests and all(r.query.get("_subdomain") == "queue" for r in fal_requests)
    job = next(iter(emu.fal.jobs.values()))
    assert routed_paths(emu) == [
        "POST /fal-ai/fal-ai/flux/dev",
        f"GET /fal-ai/fal-ai/flux/requests/{job.id}/status/stream",
        f"GET /fal-ai/fal-ai/flux/requests/{job.id}",
    ]
    # the provider flow is fal's own: same body as the fal backend sends
    assert job.payload["image_size"] == "square" or job.payload["image_size"] == {
        "width": 256,
        "height": 256,
    }
    assert job.payload["seed"] == 5 and job.payload["num_images"] == 1


async def test_async_generation_through_the_router(
    emu: HuggingFaceEmulator, cache: MappingCache
) -> None:
    async with emu.async_generator(provider="together", mapping_cache=cache) as agen:
        first, second = await asyncio.gather(
            agen.generate("a fox", size=SMALL, seed=1),
            agen.generate("a fox", size=SMALL, seed=1, model="flux-schnell"),
        )
    assert first.images[0].seed == second.images[0].seed == 1
    models = [body["model"] for body in emu.together.generations]
    assert sorted(models) == [DEV, "black-forest-labs/FLUX.1-schnell"]
    # the mapping of each repo was looked up once
    assert sorted(hub_lookups(emu)) == sorted(
        [f"/api/models/{DEV}", "/api/models/black-forest-labs/FLUX.1-schnell"]
    )


async def test_async_stream_ends_with_completed(
    emu: HuggingFaceEmulator, cache: MappingCache
) -> None:
    emu.fal.script.run_seconds = 0.05
    async with emu.async_generator(provider="fal-ai", mapping_cache=cache) as agen:
        events = [event async for event in agen.stream("a fox", size=SMALL, seed=2)]
    assert isinstance(events[-1], fluxkit.Completed)
    assert any(isinstance(event, fluxkit.Submitted) for event in events)
    assert events[-1].result.images[0].seed == 2


# -- the model mapping -------------------------------------------------------------------------


def test_mapping_is_fetched_once_per_process_cache(
    emu: HuggingFaceEmulator, cache: MappingCache
) -> None:
    with make(emu, cache, provider="together") as gen:
        gen.generate("a", size=SMALL, seed=1, n=2)
        gen.generate("b", size=SMALL, seed=3)
    with make(emu, cache, provider="together") as other:  # another generator, same cache
        other.generate("c", size=SMALL, seed=4)
    assert hub_lookups(emu) == [f"/api/models/{DEV}"]
    assert len(cache) == 1


def test_auto_follows_the_hubs_order(emu: HuggingFaceEmulator, cache: MappingCache) -> None:
    emu.add_model(DEV, {"replicate": "black-forest-labs/flux-dev", "fal-ai": "fal-ai/flux/dev"})
    with make(emu, cache) as gen:  # provider="auto" is the default
        result = gen.generate("a fox", size=(512, 512), seed=1)
    assert {r.provider for r in emu.routed} == {"replicate"}
    notices = [str(w) for w in result.warnings if isinstance(w, ProviderNotice)]
    assert notices == ["routed to replicate as black-forest-labs/flux-dev (provider='auto')"]


def test_auto_passes_over_mappings_that_are_not_live_or_not_spoken(
    emu: HuggingFaceEmulator, cache: MappingCache
) -> None:
    emu.add_model(
        DEV,
        {
            "nscale": "flux-dev",  # a provider fluxkit does not speak
            "fal-ai": "fal-ai/flux/dev",
            "together": "black-forest-labs/FLUX.1-dev",
        },
        status={"fal-ai": "error"},
    )
    with make(emu, cache) as gen:
        gen.generate("a fox", size=SMALL, seed=1)
    assert {r.provider for r in emu.routed} == {"together"}


@pytest.mark.parametrize("status", ["staging", "error"])
def test_a_provider_without_a_live_mapping_fails_before_any_call(
    emu: HuggingFaceEmulator, cache: MappingCache, status: str
) -> None:
    emu.add_model(
        DEV,
        {"fal-ai": "fal-ai/flux/dev", "replicate": "black-forest-labs/flux-dev"},
        status={"fal-ai": status},
    )
    with (
        make(emu, cache, provider="fal-ai") as gen,
        pytest.raises(UnsupportedFeatureError) as caught,
    ):
        gen.generate("a fox", size=SMALL)
    assert emu.routed == []  # nothing reached a provider: nothing was paid
    assert caught.value.supported_by == ("huggingface:replicate",)
    assert f"fal-ai ({status}, text-to-image)" in str(caught.value)
    assert caught.value.field == "provider"


def test_a_model_no_provider_serves_fails_naming_the_mappings(
    emu: HuggingFaceEmulator, cache: MappingCache
) -> None:
    emu.add_model("me/video-model", {"fal-ai": "fal-ai/some-video"}, task="text-to-video")
    with make(emu, cache) as gen, pytest.raises(UnsupportedFeatureError) as caught:
        gen.generate("a fox", model="me/video-model", size=SMALL)
    assert "fal-ai (live, text-to-video)" in str(caught.value)
    assert caught.value.supported_by == ()
    assert emu.routed == []


def test_staging_mappings_are_used_only_when_allowed(
    emu: HuggingFaceEmulator, cache: MappingCache
) -> None:
    emu.add_model(DEV, {"together": "black-forest-labs/FLUX.1-dev"}, status="staging")
    with make(emu, cache, provider="together", allow_staging=True) as gen:
        gen.generate("a fox", size=SMALL, seed=1)
    assert [r.provider for r in emu.routed] == ["together"]


def test_an_unknown_repo_is_refused_after_the_hub_lookup_only(
    emu: HuggingFaceEmulator, cache: MappingCache
) -> None:
    with make(emu, cache) as gen, pytest.raises(UnsupportedFeatureError, match="no-such/model"):
        gen.generate("a fox", model="no-such/model", size=SMALL)
    assert emu.routed == [] and hub_lookups(emu) == ["/api/models/no-such/model"]


def test_aliases_map_to_hub_repos(emu: HuggingFaceEmulator, cache: MappingCache) -> None:
    with make(emu, cache, provider="fal-ai") as gen:
        result = gen.generate("a fox", model="flux-schnell", size=SMALL, seed=1)
    assert routed_paths(emu)[0] == "POST /fal-ai/fal-ai/flux/schnell"
    assert result.images[0].seed == 1
    assert gen.capabilities("flux-schnell").default_steps == 4


def test_mapping_parser_reads_the_object_and_list_forms() -> None:
    body = b'{"id": "o/m", "inferenceProviderMapping": {"fal-ai": {"providerId": "x", "status": "live", "task": "text-to-image"}}}'
    as_object = parse_mapping(HttpResponse(200, {}, body), "o/m", "huggingface")
    listed = (
        b'{"id": "o/m", "inferenceProviderMapping": [{"provider": "fal-ai", "providerId": "x", '
        b'"status": "live", "task": "text-to-image"}]}'
    )
    as_list = parse_mapping(HttpResponse(200, {}, listed), "o/m", "huggingface")
    assert as_object == as_list
    assert as_object[0].provider_id == "x" and not as_object[0].is_lora


# -- LoRAs -------------------------------------------------------------------------------------


def test_a_lora_adapter_repo_as_the_model_uses_its_mapping(
    emu: HuggingFaceEmulator, cache: MappingCache
) -> None:
    emu.add_lora("me/tok-lora", {"fal-ai": "fal-ai/flux-lora"}, weights="tok.safetensors")
    with make(emu, cache, provider="fal-ai") as gen:
        gen.generate("tok person", model="me/tok-lora", size=SMALL, seed=1)
    job = next(iter(emu.fal.jobs.values()))
    assert job.endpoint == "fal-ai/flux-lora"
    assert job.payload["loras"] == [
        {"path": "https://huggingface.co/me/tok-lora/resolve/main/tok.safetensors", "scale": 1.0}
    ]


def test_registered_adapters_in_loras_get_their_weights_and_stack_on_fal(
    emu: HuggingFaceEmulator, cache: MappingCache
) -> None:
    emu.add_lora("me/style", {"fal-ai": "fal-ai/flux-lora"}, weights="style.safetensors")
    loras = [
        fluxkit.LoRA("hf://me/style", scale=0.7),  # registered: the mapping names its file
        fluxkit.LoRA("hf://me/tok/tok.safetensors", scale=1.2),
        fluxkit.LoRA("https://example.com/third.safetensors", scale=2.5),
    ]
    with make(emu, cache, provider="fal-ai") as gen:
        gen.generate("tok person", size=SMALL, seed=1, loras=loras)
    job = next(iter(emu.fal.jobs.values()))
    assert job.endpoint == "fal-ai/flux-lora"  # fal's own switch: flux/dev + LoRAs -> flux-lora
    assert job.payload["loras"] == [
        {"path": "https://huggingface.co/me/style/resolve/main/style.safetensors", "scale": 0.7},
        {"path": "https://huggingface.co/me/tok/resolve/main/tok.safetensors", "scale": 1.2},
        {"path": "https://example.com/third.safetensors", "scale": 2.5},
    ]
    assert f"/api/models/{DEV}" in hub_lookups(emu) and "/api/models/me/style" in hub_lookups(emu)


def test_replicate_takes_two_loras_in_its_own_fields(
    emu: HuggingFaceEmulator, cache: MappingCache
) -> None:
    loras = [("hf://me/a/a.safetensors", 0.8), ("hf://me/b/b.safetensors", -0.5)]
    with make(emu, cache, provider="replicate") as gen:
        gen.generate("x", size=(512, 512), seed=1, loras=loras)
    prediction = next(iter(emu.replicate.predictions.values()))
    assert prediction.model == "black-forest-labs/flux-dev-lora"
    assert prediction.input["lora_weights"].endswith("/me/a/resolve/main/a.safetensors")
    assert prediction.input["lora_scale"] == 0.8
    assert prediction.input["extra_lora_scale"] == -0.5


@pytest.mark.parametrize(
    ("provider", "loras", "match"),
    [
        ("replicate", [f"hf://me/l{i}/l.safetensors" for i in range(3)], "3 LoRAs"),
        ("replicate", [("hf://me/a/a.safetensors", 3.5)], r"scale"),
        ("together", ["hf://me/a/a.safetensors"], "LoRAs"),
        ("hf-inference", ["hf://me/a/a.safetensors"], "LoRAs"),
    ],
)
def test_loras_the_routed_provider_cannot_take_are_refused_before_the_call(
    emu: HuggingFaceEmulator, cache: MappingCache, provider: str, loras: list[Any], match: str
) -> None:
    with (
        make(emu, cache, provider=provider) as gen,
        pytest.raises(InvalidRequestError, match=match),
    ):
        gen.generate("x", size=(512, 512), seed=1, loras=loras)
    assert emu.routed == []


# -- money rules -------------------------------------------------------------------------------


def test_exhausted_credits_are_a_billing_error_sent_once(
    emu: HuggingFaceEmulator, cache: MappingCache
) -> None:
    emu.exhaust_credits()
    with make(emu, cache, provider="fal-ai") as gen, pytest.raises(BillingError) as caught:
        gen.generate("a fox", size=SMALL)
    error = caught.value
    assert isinstance(error, fluxkit.ProviderError) and error.status_code == 402
    assert "exceeded your monthly included credits" in str(error) and "bill_to=" in str(error)
    assert len(emu.requests(r"^/fal-ai/", method="POST")) == 1  # never retried
    assert emu.fal.jobs == {}


@pytest.mark.parametrize("provider", ["replicate", "together", "hf-inference"])
def test_402_is_a_billing_error_on_every_provider(
    emu: HuggingFaceEmulator, cache: MappingCache, provider: str
) -> None:
    emu.exhaust_credits()
    with make(emu, cache, provider=provider) as gen, pytest.raises(BillingError):
        gen.generate("a fox", size=SIZES.get(provider, SMALL))


def test_bill_to_names_the_paying_organisation_on_every_routed_request(
    emu: HuggingFaceEmulator, cache: MappingCache
) -> None:
    with make(emu, cache, provider="fal-ai", bill_to="my-org") as gen:
        gen.generate("a fox", size=SMALL, seed=1)
    assert emu.routed and {r.bill_to for r in emu.routed} == {"my-org"}


async def test_a_cancelled_task_cancels_the_fal_job_through_the_router(
    emu: HuggingFaceEmulator, cache: MappingCache
) -> None:
    emu.fal.script.run_seconds = 5.0
    accepted = asyncio.Event()
    async with emu.async_generator(provider="fal-ai", mapping_cache=cache) as agen:
        task = asyncio.create_task(
            agen.generate("a fox", size=SMALL, on_event=lambda event: accepted.set())
        )
        await accepted.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert emu.fal.cancelled == set(emu.fal.jobs) != set()
    cancel = emu.requests(r"/cancel$", method="PUT")[0]
    assert cancel.path.startswith("/fal-ai/fal-ai/flux/requests/")
    assert cancel.query == {"_subdomain": "queue"}
    assert cancel.header("authorization") == f"Bearer {TOKEN}"


def test_deadline_cancels_the_replicate_prediction_and_is_sent_as_cancel_after(
    emu: HuggingFaceEmulator, cache: MappingCache
) -> None:
    emu.replicate.script.run_seconds = 5.0
    with (
        emu.serve() as url,
        fluxkit.Generator(
            "huggingface", api_key=TOKEN, base_url=url, provider="replicate", mapping_cache=cache
        ) as gen,
        pytest.raises(DeadlineExceeded) as caught,
    ):
        gen.generate("a fox", size=(512, 512), timeout=0.5)
    assert caught.value.cancelled
    assert emu.replicate.cancelled == set(emu.replicate.predictions) != set()
    create = emu.requests(r"^/replicate/v1/models/", method="POST")[0]
    assert create.header("cancel-after") == "1s"


def test_fal_submission_carries_its_server_side_deadline(
    emu: HuggingFaceEmulator, cache: MappingCache
) -> None:
    with make(emu, cache, provider="fal-ai") as gen:
        gen.generate("a fox", size=SMALL, timeout=30)
    submit = emu.requests(r"^/fal-ai/fal-ai/flux/dev$", method="POST")[0]
    assert 2 <= int(submit.header("x-fal-request-timeout") or 0) <= 30


@pytest.mark.parametrize("provider", ["fal-ai", "together", "hf-inference"])
def test_a_gateway_timeout_after_acceptance_is_never_resent(
    emu: HuggingFaceEmulator, cache: MappingCache, provider: str
) -> None:
    emu.script.fail_after_accept(504, path=rf"^/{provider}/")
    with make(emu, cache, provider=provider) as gen, pytest.raises(JobMayExistError):
        gen.generate("a fox", size=SMALL)
    assert len(emu.requests(rf"^/{provider}/", method="POST")) == 1


def test_refusals_before_acceptance_are_retried(
    emu: HuggingFaceEmulator, cache: MappingCache
) -> None:
    emu.script.fail_next(429, count=2, path=r"^/hf-inference/", method="POST", retry_after=0.01)
    with make(emu, cache, provider="hf-inference") as gen:
        result = gen.generate("a fox", size=SMALL, seed=9)
    assert result.images[0].seed == 9
    assert len(emu.requests(r"^/hf-inference/", method="POST")) == 3


def test_the_token_never_leaves_hugging_face() -> None:
    auth = RouterAuth("https://router.huggingface.co", Secret("hf_x"), bill_to="org")
    inside = auth.rewrite(
        HttpRequest(
            "GET", "https://router.huggingface.co/fal-ai/x", headers={"authorization": "Key k"}
        )
    )
    outside = auth.rewrite(
        HttpRequest("GET", "https://v3.fal.media/files/x", headers={"Authorization": "Key k"})
    )
    assert inside.headers["authorization"] == Secret("Bearer hf_x")
    assert inside.headers["x-hf-bill-to"] == "org" and inside.raise_for_status is False
    assert dict(outside.headers) == {}


def test_the_cancel_request_is_rewritten_like_any_other() -> None:
    auth = RouterAuth("https://r.test", Secret("hf_x"), query={"_subdomain": "queue"})

    def inner() -> Iterator[Any]:
        yield Accepted("id1", HttpRequest("PUT", "https://r.test/fal-ai/a/requests/id1/cancel"))
        return "done"

    flow = through_router(inner(), auth)  # type: ignore[arg-type]
    accepted = next(flow)
    assert isinstance(accepted, Accepted) and accepted.cancel is not None
    assert accepted.cancel.params == {"_subdomain": "queue"}
    assert accepted.cancel.headers["authorization"] == Secret("Bearer hf_x")
    with pytest.raises(StopIteration) as stop:
        flow.send(None)
    assert stop.value.value == "done"


# -- configuration -----------------------------------------------------------------------------


def test_the_token_comes_from_hf_token(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(MissingCredentialsError, match="HF_TOKEN"):
        fluxkit.Generator("huggingface")
    monkeypatch.setenv("HF_TOKEN", "hf_from_env")
    backend = HuggingFaceBackend()
    assert backend.api_key == Secret("hf_from_env")
    assert "hf_from_env" not in repr(backend)
    assert backend.hub_url == "https://huggingface.co"


def test_unknown_providers_are_refused_at_construction() -> None:
    with pytest.raises(InvalidRequestError, match="provider"):
        HuggingFaceBackend(api_key="hf_x", provider="openai")


def test_capabilities_table_is_registered() -> None:
    gen = fluxkit.Generator("huggingface", api_key="hf_x")
    caps = gen.capabilities()
    assert caps.max_loras > 2 and not caps.img2img and not caps.seeds_per_image
    with pytest.raises(UnsupportedFeatureError, match="img2img"):
        gen.generate("x", image=encode_image(render_fake_image("init", 1, 64, 64), "png"))


def test_routed_call_is_pure_and_checks_the_provider_limits(emu: HuggingFaceEmulator) -> None:
    backend = HuggingFaceBackend(api_key="hf_x", base_url=emu.base_url)
    request = fluxkit.GenerationRequest(prompt="x", size=SMALL, steps=20, seed=1)
    mapping = parse_mapping(
        HttpResponse(
            200,
            {},
            b'{"inferenceProviderMapping": {"replicate": {"providerId": '
            b'"black-forest-labs/flux-schnell", "status": "live", "task": "text-to-image"}}}',
        ),
        "black-forest-labs/FLUX.1-schnell",
        "huggingface",
    )[0]
    call = Call(request, "black-forest-labs/FLUX.1-schnell", (1,))
    with pytest.raises(InvalidRequestError, match="steps"):  # Replicate schnell: at most 4
        backend.routed_call(call, mapping, ())
    routed = backend.routed_call(Call(request.evolve(steps=4), call.model, (1,)), mapping, ())
    assert routed.model == "black-forest-labs/flux-schnell" and routed.request.steps == 4
