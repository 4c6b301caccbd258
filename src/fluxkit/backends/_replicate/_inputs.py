"""What each Replicate FLUX model takes as ``input``, built from a fluxkit call (pure).

Replicate models are Cog predictors, each with its own input schema; the official FLUX ones come
from https://github.com/replicate/cog-flux (``predict.py``), LoRA models trained on Replicate from
https://github.com/replicate/flux-fine-tuner. A `Dialect` records the differences that
matter to fluxkit, so one builder serves them all.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from fluxkit._core._media import image_size
from fluxkit._exceptions import InvalidRequestError
from fluxkit._warnings import RequestCoerced

if TYPE_CHECKING:
    from fluxkit._types import LoRA
    from fluxkit.backends._base import Call

__all__ = [
    "ASPECT_RATIOS",
    "DIALECTS",
    "FLUX_DEV",
    "FLUX_DEV_LORA",
    "FLUX_PRO",
    "FLUX_SCHNELL",
    "TRAINED",
    "BuiltInput",
    "Dialect",
    "build_input",
    "dialect_for",
    "lora_reference",
    "snap_size",
]

FLUX_DEV = "black-forest-labs/flux-dev"
FLUX_DEV_LORA = "black-forest-labs/flux-dev-lora"
FLUX_SCHNELL = "black-forest-labs/flux-schnell"
FLUX_PRO = "black-forest-labs/flux-1.1-pro"

# cog-flux predict.py ASPECT_RATIOS: the 1-megapixel sizes; megapixels="0.25" halves each side.
ASPECT_RATIOS: dict[str, tuple[int, int]] = {
    "1:1": (1024, 1024),
    "16:9": (1344, 768),
    "21:9": (1536, 640),
    "3:2": (1216, 832),
    "2:3": (832, 1216),
    "4:5": (896, 1088),
    "5:4": (1088, 896),
    "3:4": (896, 1152),
    "4:3": (1152, 896),
    "9:16": (768, 1344),
    "9:21": (640, 1536),
}
MAX_INPUT_SIDE = 1440  # cog-flux MAX_IMAGE_SIZE: img2img inputs are scaled down to fit
OUTPUT_FORMATS = {"png": "png", "jpeg": "jpg", "webp": "webp"}  # fluxkit -> Replicate


@dataclass(frozen=True)
class Dialect:
    """How one model family spells its inputs.

    Attributes:
        sizes: ``"aspect"`` (only ``aspect_ratio`` + ``megapixels``) or ``"custom"``
            (``aspect_ratio="custom"`` with ``width``/``height``).
        steps: takes ``num_inference_steps``.
        guidance: the guidance field's name, or None when the model has none.
        image: takes ``image`` + ``prompt_strength`` (img2img).
        loras: (weights field, scale field) per LoRA slot, in order.
        num_outputs: takes ``num_outputs``.
    """

    sizes: Literal["aspect", "custom"]
    steps: bool = True
    guidance: str | None = "guidance"
    image: bool = False
    loras: tuple[tuple[str, str], ...] = ()
    num_outputs: bool = True
    max_guidance: float = 10.0


DIALECTS: dict[str, Dialect] = {
    FLUX_DEV: Dialect("aspect", image=True),
    FLUX_SCHNELL: Dialect("aspect", guidance=None),
    # flux-dev-lora: lora_weights/lora_scale, plus extra_lora/extra_lora_scale for a second one.
    FLUX_DEV_LORA: Dialect(
        "aspect",
        image=True,
        loras=(("lora_weights", "lora_scale"), ("extra_lora", "extra_lora_scale")),
    ),
    # flux-1.1-pro runs on BFL's API: no steps, no guidance, one image, custom sizes (multiple
    # of 32, 256-1440). https://replicate.com/black-forest-labs/flux-1.1-pro/api
    FLUX_PRO: Dialect("custom", steps=False, guidance=None, num_outputs=False),
}

# A LoRA trained on Replicate (flux-fine-tuner): its own weights are built in (``lora_scale``
# scales them, via extra=); one more LoRA goes in ``extra_lora``; guidance is
# ``guidance_scale``; ``model`` picks dev or schnell.
TRAINED = Dialect(
    "custom",
    guidance="guidance_scale",
    image=True,
    loras=(("extra_lora", "extra_lora_scale"),),
)


def dialect_for(model: str) -> Dialect:
    """The dialect of ``model`` (``owner/name``, ``owner/name:version`` or a version id)."""
    return DIALECTS.get(model.split(":", 1)[0], TRAINED)


@dataclass(frozen=True)
class BuiltInput:
    """The prediction ``input`` and what fluxkit knows of the images it will produce."""

    input: dict[str, Any]
    width: int
    height: int
    format: str
    warnings: tuple[Warning, ...] = ()


def snap_size(width: int, height: int) -> tuple[str, str, tuple[int, int]]:
    """The ``aspect_ratio`` and ``megapixels`` closest to ``width`` x ``height``.

    Closest aspect ratio first (log scale), then closest area; returns the size it gives.
    """
    target_ratio, target_area = math.log(width / height), math.log(width * height)
    best: tuple[float, float, str, str, tuple[int, int]] | None = None
    for ratio, (w, h) in ASPECT_RATIOS.items():
        for megapixels, (sw, sh) in (("1", (w, h)), ("0.25", (w // 2, h // 2))):
            key = (
                round(abs(math.log(sw / sh) - target_ratio), 6),
                abs(math.log(sw * sh) - target_area),
            )
            if best is None or key < best[:2]:
                best = (*key, ratio, megapixels, (sw, sh))
    assert best is not None
    return best[2], best[3], best[4]


def lora_reference(lora: LoRA) -> str:
    """What ``lora_weights``/``extra_lora`` accept for ``lora``.

    The cog-flux input description: "HuggingFace URLs in the format huggingface.co/<owner>/
    <model-name>, CivitAI URLs ..., or arbitrary .safetensors URLs". So a Hub repo without a file
    goes bare (Replicate picks its weights), a file goes as its ``resolve`` URL (the bare form
    cannot name a file or pin a revision).
    """
    if lora.kind == "url":
        return lora.source
    if lora.kind == "hf":
        if lora.url is not None:
            return lora.url
        if lora.revision is None:
            return f"huggingface.co/{lora.repo_id}"
        raise InvalidRequestError(
            "lora.source",
            lora.source,
            "hf://owner/repo or hf://owner/repo/file.safetensors[@rev]",
            reason="Replicate's bare-repo form cannot pin a revision: name the weight file",
        )
    raise InvalidRequestError("lora.source", lora.source, "hf:// or https:// sources on replicate")


def _img2img_size(data: bytes | None, fallback: tuple[int, int]) -> tuple[int, int]:
    """cog-flux img2img: the output follows the input, scaled to fit 1440, sides rounded to 16."""
    if data is None:
        return fallback
    width, height = image_size(data)
    scale = min(MAX_INPUT_SIDE / width, MAX_INPUT_SIDE / height, 1.0)
    width, height = int(width * scale), int(height * scale)
    return max(16, round(width / 16) * 16), max(16, round(height / 16) * 16)


def build_input(call: Call, model: str, image: str | None = None) -> BuiltInput:
    """The ``input`` object for ``call`` on ``model``; ``image`` is the init image reference.

    Raises:
        InvalidRequestError: a value this model refuses (checked here, before any network call).
    """
    request, dialect = call.request, dialect_for(model)
    warnings: list[Warning] = []
    body: dict[str, Any] = {"prompt": request.prompt, "seed": call.seeds[0]}
    if dialect.num_outputs:
        body["num_outputs"] = len(call.seeds)
    size = (request.width, request.height)
    if image is not None and request.image is not None and dialect.image:
        # The init image decides the output size; aspect_ratio/width/height are ignored.
        body["image"] = image
        body["prompt_strength"] = request.effective_strength
        size = _img2img_size(request.image.data, size)
    elif dialect.sizes == "custom":
        body.update(aspect_ratio="custom", width=request.width, height=request.height)
    else:
        ratio, megapixels, size = snap_size(request.width, request.height)
        body.update(aspect_ratio=ratio, megapixels=megapixels)
        if size != (request.width, request.height):
            warnings.append(
                RequestCoerced(
                    "size",
                    (request.width, request.height),
                    size,
                    f"replicate {model} takes aspect_ratio + megapixels (1 or 0.25) only",
                )
            )
    if dialect.steps and request.steps is not None:
        body["num_inference_steps"] = request.steps
    if dialect.guidance and request.guidance is not None:
        if request.guidance > dialect.max_guidance:
            raise InvalidRequestError(
                "guidance", request.guidance, f"0 to {dialect.max_guidance:g} on replicate {model}"
            )
        body[dialect.guidance] = request.guidance
    for (weights, scale), lora in zip(dialect.loras, request.loras, strict=False):
        body[weights] = lora_reference(lora)
        body[scale] = lora.scale
    body["output_format"] = OUTPUT_FORMATS[request.output_format]
    body.update(request.extra)  # provider knobs (go_fast, disable_safety_checker, ...) win
    fmt = {"jpg": "jpeg"}.get(str(body["output_format"]), str(body["output_format"]))
    return BuiltInput(body, size[0], size[1], fmt, tuple(warnings))
