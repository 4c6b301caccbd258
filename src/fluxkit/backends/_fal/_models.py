"""fal endpoints: aliases, what each can do, and which endpoint a request really needs.

Facts come from fal's generated endpoint types (``@fal-ai/client`` 1.10.1, ``endpoints.d.ts``)
and the model pages (https://fal.ai/models/fal-ai/flux/dev/api and siblings).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from fluxkit._capabilities import UNLIMITED, Capabilities
from fluxkit._exceptions import InvalidRequestError
from fluxkit._types import GenerationRequest

__all__ = [
    "CAPABILITIES",
    "DEV",
    "DEV_I2I",
    "LORA",
    "LORA_I2I",
    "MODEL_ALIASES",
    "PRO_11",
    "PRO_ULTRA",
    "SCHNELL",
    "endpoint_for",
]

SCHNELL = "fal-ai/flux/schnell"
DEV = "fal-ai/flux/dev"
DEV_I2I = "fal-ai/flux/dev/image-to-image"
LORA = "fal-ai/flux-lora"
LORA_I2I = "fal-ai/flux-lora/image-to-image"
PRO_11 = "fal-ai/flux-pro/v1.1"
PRO_ULTRA = "fal-ai/flux-pro/v1.1-ultra"

MODEL_ALIASES: Mapping[str, str] = {
    "flux-schnell": SCHNELL,
    "flux-dev": DEV,
    "flux-lora": LORA,
    "flux-pro": PRO_11,
    "flux-1.1-pro": PRO_11,
    "flux-pro-ultra": PRO_ULTRA,
    "flux-1.1-pro-ultra": PRO_ULTRA,
}

# Every FLUX endpoint: num_images 1-4, output_format jpeg|png, one `seed` reported for the whole
# call (the n images of a call are one batch, not seed, seed+1, ...), so fluxkit sends one image
# per call and each image keeps a seed that regenerates it.
# LoraWeight.scale is 0-4 on every fal FLUX endpoint (fal endpoint JSON schemas).
_BASE = Capabilities(
    max_images_per_call=4,
    seeds_per_image=False,
    output_formats=("png", "jpeg"),
    lora_scale=(0.0, 4.0),
)
# flux-lora: `loras: [{path, scale}]`, "any number, merged"; `/image-to-image` takes image_url +
# strength (https://fal.ai/models/fal-ai/flux-lora/api, .../flux-lora/image-to-image/api).
_DEV_FAMILY = replace(_BASE, max_loras=UNLIMITED, img2img=True, max_steps=50)
# FLUX pro on fal has no steps or guidance knobs (fal-ai/flux-pro/v1.1 types).
_PRO = replace(_BASE, guidance=False, default_guidance=None, steps=False)

CAPABILITIES: Mapping[str, Capabilities] = {
    DEV: replace(_DEV_FAMILY, notes=f"LoRAs switch to {LORA}, image= to {DEV_I2I} (automatically)"),
    # fal-ai/flux/dev/image-to-image defaults to 40 steps; the output follows the input's size.
    DEV_I2I: replace(
        _DEV_FAMILY,
        default_steps=40,
        notes=f"output size follows the init image; LoRAs: {LORA_I2I}",
    ),
    LORA: replace(_DEV_FAMILY, notes=f"any number of LoRAs; image= switches to {LORA_I2I}"),
    LORA_I2I: replace(_DEV_FAMILY, notes="output size follows the init image"),
    # https://fal.ai/models/fal-ai/flux/schnell/api: 1-12 steps, default 4; guidance-distilled.
    SCHNELL: replace(
        _BASE,
        max_steps=12,
        default_steps=4,
        guidance=False,
        default_guidance=None,
        notes="no LoRAs or img2img on fal (use flux-dev)",
    ),
    PRO_11: replace(_PRO, notes="steps and guidance are fixed by the provider"),
    # Ultra takes aspect_ratio instead of image_size and an image prompt (image_url +
    # image_prompt_strength): fluxkit's reference_image / reference_strength.
    PRO_ULTRA: replace(
        _PRO,
        reference_image=True,
        notes="size -> nearest aspect_ratio (about 4 MP out); reference_image is an image prompt",
    ),
    "*": replace(
        _DEV_FAMILY,
        reference_image=False,
        notes="any other fal endpoint id, sent as flux-dev fields; its own fields go in extra=",
    ),
}

# Automatic switches: LoRAs need flux-lora, init images need the `/image-to-image` sibling.
_WITH_LORAS = {DEV: LORA, DEV_I2I: LORA_I2I}
_WITH_IMAGE = {DEV: DEV_I2I, LORA: LORA_I2I}
_NEEDS_IMAGE = frozenset({DEV_I2I, LORA_I2I})


def endpoint_for(wanted: str, request: GenerationRequest) -> str:
    """The fal endpoint id for ``request`` once aliases and the automatic switches apply.

    Example:
        ```python
        import fluxkit
        from fluxkit.backends._fal._models import endpoint_for

        request = fluxkit.GenerationRequest(prompt="x", loras=["hf://me/style/s.safetensors"])
        endpoint_for("flux-dev", request)      # "fal-ai/flux-lora"
        ```
    """
    endpoint = MODEL_ALIASES.get(wanted, wanted)
    if request.loras:
        endpoint = _WITH_LORAS.get(endpoint, endpoint)
    if request.image is not None:
        endpoint = _WITH_IMAGE.get(endpoint, endpoint)
    elif endpoint in _NEEDS_IMAGE:
        raise InvalidRequestError(
            "image", None, f"an init image: {endpoint} is an image-to-image endpoint"
        )
    return endpoint
