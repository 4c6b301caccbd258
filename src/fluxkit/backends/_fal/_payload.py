"""A fluxkit call as the JSON input of a fal FLUX endpoint (pure)."""

from __future__ import annotations

import math
from typing import Any

from fluxkit._exceptions import InvalidRequestError
from fluxkit._types import SIZE_PRESETS, GenerationRequest, LoRA
from fluxkit._warnings import ProviderNotice
from fluxkit.backends._base import Call
from fluxkit.backends._fal._models import DEV_I2I, LORA_I2I, PRO_11, PRO_ULTRA

__all__ = ["ULTRA_ASPECT_RATIOS", "fal_input", "image_size", "lora_path"]

# fal-ai/flux-pro/v1.1-ultra takes one of these instead of image_size (fal endpoint types).
ULTRA_ASPECT_RATIOS = ("21:9", "16:9", "4:3", "3:2", "1:1", "2:3", "3:4", "9:16", "9:21")
# The image-to-image endpoints have no image_size: the output follows the init image
# (https://fal.ai/models/fal-ai/flux/dev/image-to-image/api, .../flux-lora/image-to-image/api).
_NO_IMAGE_SIZE = frozenset({DEV_I2I, LORA_I2I, PRO_ULTRA})
# FLUX pro has no num_inference_steps / guidance_scale (fal-ai/flux-pro/v1.1 types).
_NO_STEPS = frozenset({PRO_11, PRO_ULTRA})


def lora_path(lora: LoRA) -> str:
    """The ``loras[].path`` fal accepts for ``lora``.

    fal takes "a URL, a path, or a Hugging Face repo name" (``LoraWeight.path``,
    https://fal.ai/models/fal-ai/flux-lora/api): Hub files become their ``resolve/`` URL, a bare
    Hub repo is passed as ``owner/repo``.

    Example:
        ```python
        from fluxkit import LoRA
        from fluxkit.backends._fal._payload import lora_path

        lora_path(LoRA("hf://me/style/s.safetensors"))
        # "https://huggingface.co/me/style/resolve/main/s.safetensors"
        lora_path(LoRA("hf://me/style"))        # "me/style"
        ```
    """
    if lora.url is not None:
        return lora.url
    if lora.kind == "hf" and lora.repo_id is not None:
        if lora.revision:
            raise InvalidRequestError(
                "loras",
                lora.source,
                "hf://owner/repo/file.safetensors@revision",
                reason="fal takes a bare Hub repo only at its default revision; name the file",
            )
        return lora.repo_id
    return lora.source


def image_size(width: int, height: int) -> str | dict[str, int]:
    """fal's ``image_size``: the preset name when the size is one, else ``{width, height}``."""
    for name, size in SIZE_PRESETS.items():
        if size == (width, height):
            return name
    return {"width": width, "height": height}


def _aspect_ratio(width: int, height: int) -> str:
    def distance(ratio: str) -> float:
        w, h = (int(part) for part in ratio.split(":"))
        return abs(math.log((width / height) / (w / h)))

    return min(ULTRA_ASPECT_RATIOS, key=distance)


def fal_input(
    call: Call, *, image_url: str | None = None, reference_url: str | None = None
) -> tuple[dict[str, Any], list[Warning]]:
    """The submit body for ``call`` on ``call.model`` and the notices it implies.

    ``image_url``/``reference_url`` are the init and reference images as fal should receive them
    (URL, data URI or an upload's URL); ``request.extra`` is merged last, so it wins.
    """
    request: GenerationRequest = call.request
    endpoint = call.model
    warnings: list[Warning] = []
    body: dict[str, Any] = {
        "prompt": request.prompt,
        "seed": call.seeds[0],
        "num_images": len(call.seeds),
        "output_format": request.output_format,
    }
    if endpoint == PRO_ULTRA:
        ratio = _aspect_ratio(request.width, request.height)
        w, h = (int(part) for part in ratio.split(":"))
        if request.width * h != request.height * w:
            warnings.append(
                ProviderNotice(
                    f"{PRO_ULTRA} takes an aspect ratio, not a size: "
                    f"{request.width}x{request.height} was sent as {ratio}"
                )
            )
        body["aspect_ratio"] = ratio
    elif endpoint not in _NO_IMAGE_SIZE:
        body["image_size"] = image_size(request.width, request.height)
    if endpoint not in _NO_STEPS:
        body["num_inference_steps"] = request.steps
        if request.guidance is not None:
            body["guidance_scale"] = request.guidance
    elif request.guidance is not None:
        warnings.append(ProviderNotice(f"{endpoint} has no guidance: guidance was not sent"))
    if request.loras:
        body["loras"] = [{"path": lora_path(lora), "scale": lora.scale} for lora in request.loras]
    if image_url is not None:
        body["image_url"] = image_url
        body["strength"] = request.effective_strength
    if reference_url is not None:
        # Ultra's image prompt: image_url + image_prompt_strength (default 0.1 at fal).
        body["image_url"] = reference_url
        if request.reference_strength is not None:
            body["image_prompt_strength"] = request.reference_strength
    body.update(request.extra)
    return body, warnings
