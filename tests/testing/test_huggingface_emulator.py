"""Conformance: ``huggingface_hub.InferenceClient.text_to_image(provider=...)`` runs against the
router emulator on a real loopback port and gets the same images fluxkit gets.

How the official client is pointed at the emulator (``huggingface_hub`` 2.4, read from
``inference/_providers/``): it has no router URL argument. ``base_url=``/``model=<URL>`` and
``HF_INFERENCE_ENDPOINT`` only reach ``hf-inference`` and skip the provider mapping, so they
cannot test routing. Instead the test patches, for its duration:

* ``huggingface_hub.constants.INFERENCE_PROXY_TEMPLATE`` (``https://router.huggingface.co/{provider}``,
  read at call time by ``TaskProviderHelper._prepare_base_url``) -> ``{url}/{provider}``;
* ``constants.ENDPOINT`` (read by ``HfApi()`` when the mapping is fetched) -> ``{url}``;
* the ``base_url`` of the ``hf-inference`` helper instance (built at import from the template);
* the ``lru_cache``s of ``_fetch_inference_provider_mapping`` / ``_check_supported_task``;
* offline mode off (the suite sets ``HF_HUB_OFFLINE``; the emulator is on loopback).

The token must start with ``hf_``: only then does the client route through the router.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest

import fluxkit
from fluxkit.backends.huggingface import MappingCache
from fluxkit.testing import HuggingFaceEmulator
from fluxkit.testing.hub import hub_client_settings

huggingface_hub = pytest.importorskip("huggingface_hub")

TOKEN = "hf_conformance"
DEV = "black-forest-labs/FLUX.1-dev"


@pytest.fixture
def served() -> Iterator[tuple[HuggingFaceEmulator, str]]:
    from huggingface_hub import constants
    from huggingface_hub.inference._providers import PROVIDERS
    from huggingface_hub.inference._providers._common import _fetch_inference_provider_mapping
    from huggingface_hub.inference._providers.hf_inference import _check_supported_task

    emu = HuggingFaceEmulator(api_key=TOKEN)
    helper = PROVIDERS["hf-inference"]["text-to-image"]
    saved = (constants.INFERENCE_PROXY_TEMPLATE, constants.ENDPOINT, helper.base_url)
    with emu.serve() as url, hub_client_settings():
        constants.INFERENCE_PROXY_TEMPLATE = url + "/{provider}"
        constants.ENDPOINT = url
        helper.base_url = f"{url}/hf-inference"
        _fetch_inference_provider_mapping.cache_clear()
        _check_supported_task.cache_clear()
        try:
            yield emu, url
        finally:
            constants.INFERENCE_PROXY_TEMPLATE, constants.ENDPOINT, helper.base_url = saved
            _fetch_inference_provider_mapping.cache_clear()
            _check_supported_task.cache_clear()


def _pixels(data: bytes) -> bytes:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        return image.convert("RGB").tobytes()


# (provider, size, fluxkit output_format matching what the client's request yields)
CASES = [
    ("fal-ai", (256, 256), "jpeg"),  # the client sends no output_format: fal answers jpeg
    ("together", (256, 256), "jpeg"),  # likewise Together
    ("hf-inference", (256, 256), "png"),  # the client asks Accept: image/png
    ("replicate", (1024, 1024), "webp"),  # flux-dev ignores width/height: 1:1 at 1 MP, webp
    ("auto", (256, 256), "jpeg"),  # the Hub's first mapping: fal-ai
]


@pytest.mark.parametrize(("provider", "size", "fmt"), CASES)
def test_inference_client_gets_the_images_fluxkit_gets(
    served: tuple[HuggingFaceEmulator, str], provider: str, size: tuple[int, int], fmt: str
) -> None:
    from huggingface_hub import InferenceClient

    emu, url = served
    client = InferenceClient(provider=provider, api_key=TOKEN)  # type: ignore[arg-type]
    theirs = client.text_to_image(
        "a lighthouse at dusk", model=DEV, width=size[0], height=size[1], seed=42
    )
    with fluxkit.Generator(
        "huggingface", api_key=TOKEN, base_url=url, provider=provider, mapping_cache=MappingCache()
    ) as gen:
        ours = gen.generate(
            "a lighthouse at dusk",
            size=size,
            seed=42,
            output_format="png" if fmt == "webp" else fmt,  # type: ignore[arg-type]
        ).images[0]
    assert ours.data is not None
    assert theirs.size == (ours.width, ours.height) == size
    routed = {r.provider for r in emu.routed}
    assert routed == {"fal-ai" if provider == "auto" else provider}
    buffer = io.BytesIO()
    theirs.convert("RGB").save(buffer, format="PNG")
    if fmt == "webp":
        # Replicate: the client takes flux-dev's default (webp, lossy); fluxkit asks for png.
        # The same render underneath: compare after the lossy round trip, loosely.
        a, b = _pixels(buffer.getvalue()), _pixels(ours.data)
        mean_error = sum(abs(x - y) for x, y in zip(a, b, strict=True)) / len(a)
        assert mean_error < 4
    else:
        assert _pixels(buffer.getvalue()) == _pixels(ours.data)


def test_inference_client_sees_402_as_an_http_error(
    served: tuple[HuggingFaceEmulator, str],
) -> None:
    from huggingface_hub import InferenceClient
    from huggingface_hub.errors import HfHubHTTPError

    emu, _ = served
    emu.exhaust_credits()
    client = InferenceClient(provider="together", api_key=TOKEN)
    with pytest.raises(HfHubHTTPError) as caught:
        client.text_to_image("a fox", model=DEV, width=256, height=256, seed=1)
    assert caught.value.response.status_code == 402
    assert "included credits" in caught.value.response.text


def test_inference_client_sends_bill_to_and_lora_adapters_the_way_fluxkit_does(
    served: tuple[HuggingFaceEmulator, str],
) -> None:
    from huggingface_hub import InferenceClient

    emu, url = served
    emu.add_lora("me/tok-lora", {"fal-ai": "fal-ai/flux-lora"}, weights="tok.safetensors")
    client = InferenceClient(provider="fal-ai", api_key=TOKEN, bill_to="my-org")
    theirs = client.text_to_image("tok", model="me/tok-lora", width=256, height=256, seed=3)
    with fluxkit.Generator(
        "huggingface",
        api_key=TOKEN,
        base_url=url,
        provider="fal-ai",
        bill_to="my-org",
        mapping_cache=MappingCache(),
    ) as gen:
        ours = gen.generate(
            "tok", model="me/tok-lora", size=(256, 256), seed=3, output_format="jpeg"
        ).images[0]
    their_job, our_job = emu.fal.jobs.values()
    assert their_job.endpoint == our_job.endpoint == "fal-ai/flux-lora"
    assert [lora["path"] for lora in their_job.payload["loras"]] == [
        lora["path"] for lora in our_job.payload["loras"]
    ]
    assert {r.bill_to for r in emu.routed} == {"my-org"}
    buffer = io.BytesIO()
    theirs.convert("RGB").save(buffer, format="PNG")
    assert ours.data is not None and _pixels(buffer.getvalue()) == _pixels(ours.data)
