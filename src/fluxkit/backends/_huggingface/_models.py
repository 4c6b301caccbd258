"""Hugging Face model ids, the providers fluxkit routes to, and what each model can do.

Models are Hub repo ids (``black-forest-labs/FLUX.1-dev``); which provider serves one, and under
which provider-side id, comes from the Hub's ``inferenceProviderMapping`` at run time
(`._mapping`). The table here holds what is true of the *model* on every provider (default
steps, guidance); each routed provider's own limits (LoRA count, scales, sizes) are checked
against that provider's table before the job is submitted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from fluxkit._capabilities import UNLIMITED, Capabilities

__all__ = [
    "CAPABILITIES",
    "DEV",
    "KREA",
    "MODEL_ALIASES",
    "PROVIDERS",
    "SCHNELL",
]

DEV = "black-forest-labs/FLUX.1-dev"
SCHNELL = "black-forest-labs/FLUX.1-schnell"
KREA = "black-forest-labs/FLUX.1-Krea-dev"

MODEL_ALIASES: Mapping[str, str] = {
    "flux-dev": DEV,
    "flux-schnell": SCHNELL,
    "flux-krea-dev": KREA,
}

PROVIDERS: tuple[str, ...] = ("fal-ai", "replicate", "together", "hf-inference")
"""The router's providers fluxkit speaks, in no preferred order (``"auto"`` follows the Hub)."""

# Text-to-image only: the router's image-to-image task maps other models (Kontext), and inputs
# larger than a data URI would need the provider's upload API, which the router does not carry.
# The n images of one routed call are one batch (fal, Replicate, Together report one seed), so
# fluxkit sends one image per call and every image keeps a seed that regenerates it.
_DEV = Capabilities(
    max_loras=UNLIMITED,
    max_images_per_call=1,
    seeds_per_image=False,
    max_side=1536,
    lora_scale=(-1.0, 4.0),
    output_formats=("png", "jpeg"),
    notes=(
        "LoRAs: fal-ai any number (0-4), replicate 2 (-1-3), together and hf-inference none; "
        "checked against the routed provider before the call"
    ),
)

CAPABILITIES: Mapping[str, Capabilities] = {
    DEV: _DEV,
    KREA: replace(_DEV, max_loras=0, notes="no LoRA endpoint behind the router"),
    # fal 1-12 steps, Replicate and Together 4: the default (4) fits all of them.
    SCHNELL: replace(
        _DEV,
        max_loras=0,
        max_steps=12,
        default_steps=4,
        guidance=False,
        default_guidance=None,
        notes="guidance-distilled; replicate allows at most 4 steps",
    ),
    "*": replace(
        _DEV,
        notes=(
            "any text-to-image repo the Hub maps (LoRA adapter repos included); the routed "
            "provider's model decides the limits, checked before the call"
        ),
    ),
}
