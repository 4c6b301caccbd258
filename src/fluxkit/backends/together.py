"""The ``together`` backend: Together AI's images API, one round trip per call.

``POST {base_url}/v1/images/generations`` answers with the finished images: there is no queue,
no job to poll and no cancel endpoint (https://docs.together.ai/reference/post-images-generations).
So the flow is a single ``send``: 429/503 are retried by the driver because they prove the request
was not taken; a 502/504 or a connection lost after sending raises ``JobMayExistError`` (the
generation may have run and been billed; it is not resent). A deadline or a cancelled task
abandons the HTTP request, and Together may still finish (and bill) the generation.

```python
import fluxkit

gen = fluxkit.Generator("together")          # key from TOGETHER_API_KEY
result = gen.generate(
    "a lighthouse at dusk, oil painting", model="flux-2-dev", seed=7, n=2,
    loras=[fluxkit.LoRA("hf://me/lighthouse-lora/lora.safetensors", scale=0.8)],
)
result.seeds                                 # (7, 8): one call per image, each with its seed
```
"""

from __future__ import annotations

import email.utils
from collections.abc import Generator, Mapping
from dataclasses import replace
from typing import Any

from fluxkit._capabilities import Capabilities, ModelChoice
from fluxkit._config import Secret
from fluxkit._core import Flow, HttpRequest, HttpResponse, send
from fluxkit._core._errors import error_from_response
from fluxkit._core._media import decode_base64_image, image_size
from fluxkit._exceptions import InvalidRequestError, ResponseFormatError
from fluxkit._images import InputImage
from fluxkit._types import GenerationRequest, LoRA
from fluxkit._uploads import UploadCache, image_reference
from fluxkit._warnings import ProviderNotice
from fluxkit.backends._base import Call, CallOutput, HttpBackend, ImageOutput

__all__ = ["CAPABILITIES", "MODEL_ALIASES", "TogetherBackend", "backend_class", "lora_path"]

# fmt: off
SCHNELL = "black-forest-labs/FLUX.1-schnell"
DEV = "black-forest-labs/FLUX.1-dev"
DEV_LORA = "black-forest-labs/FLUX.1-dev-lora"
PRO_11 = "black-forest-labs/FLUX.1.1-pro"
KONTEXT_PRO = "black-forest-labs/FLUX.1-kontext-pro"
KONTEXT_MAX = "black-forest-labs/FLUX.1-kontext-max"
FLUX2_DEV = "black-forest-labs/FLUX.2-dev"
FLUX2_PRO = "black-forest-labs/FLUX.2-pro"
FLUX2_FLEX = "black-forest-labs/FLUX.2-flex"
FLUX2_MAX = "black-forest-labs/FLUX.2-max"

MODEL_ALIASES: Mapping[str, str] = {
    "flux-schnell": SCHNELL, "flux-dev": DEV, "flux-dev-lora": DEV_LORA, "flux-pro": PRO_11,
    "flux-1.1-pro": PRO_11,
    "flux-kontext-pro": KONTEXT_PRO, "flux-kontext-max": KONTEXT_MAX, "flux-2-dev": FLUX2_DEV,
    "flux-2-pro": FLUX2_PRO, "flux-2-flex": FLUX2_FLEX, "flux-2-max": FLUX2_MAX,
}

# Shared facts (https://docs.together.ai/docs/inference/images/parameters and Together's own
# togethercomputer/skills together-images api-reference.md): n is 1-4, steps 1-50, sides
# 256-1920 in multiples of 8, output jpeg (default) or png. Seeds: nothing documents that the n
# images of one call are each reproducible from a seed, so fluxkit sends one image per call.
# No model takes a `strength` (image_url is edited whole) or a reference image weight
# (reference_images is a plain list of URLs: together-images-generations.json).
_BASE = Capabilities(
    max_images_per_call=4, seeds_per_image=False, size_multiple=8, min_side=256, max_side=1920,
    max_steps=50, output_formats=("png", "jpeg"), strength=False, reference_strength=False,
)
_NO_GUIDANCE = replace(_BASE, guidance=False, default_guidance=None)
# FLUX.2 [pro] gives "up to 9 MP" (docs.together.ai/docs/quickstart-flux); fluxkit caps at 2048.
_FLUX2_LARGE = replace(_NO_GUIDANCE, max_side=2048)

CAPABILITIES: Mapping[str, Capabilities] = {
    SCHNELL: replace(_NO_GUIDANCE, default_steps=4, notes="guidance-distilled; 4 steps"),
    DEV: replace(_BASE, notes="not in Together's current serverless list; LoRAs: FLUX.2-dev"),
    DEV_LORA: replace(_BASE, max_loras=2, notes="deprecated by Together (quickstart-flux-lora)"),
    PRO_11: replace(_NO_GUIDANCE, steps=False, notes="steps fixed by the provider"),
    # Kontext edits `image=` as the prompt says: image_url, no strength.
    KONTEXT_PRO: replace(_NO_GUIDANCE, img2img=True, notes="image= is edited; no strength"),
    KONTEXT_MAX: replace(_NO_GUIDANCE, img2img=True, notes="image= is edited; no strength"),
    # The LoRA model now (docs.together.ai/docs/images-overview: "Supports guidance, steps, and
    # LoRAs"); reference_images but not image_url (docs/inference/images/reference-images).
    FLUX2_DEV: replace(_BASE, max_loras=2, reference_image=True, notes="LoRAs must suit FLUX.2"),
    FLUX2_PRO: replace(_FLUX2_LARGE, img2img=True, reference_image=True, steps=False, notes="steps fixed"),
    FLUX2_FLEX: replace(_BASE, max_side=2048, img2img=True, reference_image=True),
    FLUX2_MAX: replace(_FLUX2_LARGE, steps=False, notes="steps fixed"),
    "*": replace(_NO_GUIDANCE, max_images_per_call=1, default_steps=20,
                 notes="any other Together image model id, passed through; its fields: extra="),
}

# Which guidance field each model reads: FLUX.2 dev/flex take `guidance`, FLUX.1 takes
# `guidance_scale` (skills api-reference.md, "FLUX.2 Dev/Flex with Guidance").
_GUIDANCE_FIELD = {DEV: "guidance_scale", DEV_LORA: "guidance_scale", FLUX2_DEV: "guidance",
                   FLUX2_FLEX: "guidance"}
_REFERENCE_MODELS = ("flux-2-dev", "flux-2-flex", "flux-2-pro")
_IMAGE_MODELS = ("flux-kontext-pro", "flux-kontext-max", "flux-2-flex", "flux-2-pro")
# fmt: on
_NO_UPLOADS = UploadCache()  # never filled: with upload=None, image_reference() only inlines
# Models whose step count is not a knob: `steps` is left out rather than risk a 400.
_FIXED_STEPS = frozenset({PRO_11, FLUX2_PRO, FLUX2_MAX})
_GENERATION_TIMEOUT = 300.0
"""Socket timeout of the one request: it spans the whole generation (the deadline still wins)."""


def lora_path(lora: LoRA) -> str:
    """The ``image_loras[].path`` Together accepts for ``lora``.

    Together takes a Hub repo URL (``https://huggingface.co/owner/repo``), a ``resolve/`` file
    URL, CivitAI and Replicate model URLs and direct ``.safetensors`` URLs
    (skills together-images api-reference.md, "LoRA Path Formats").

    Example:
        ```python
        from fluxkit import LoRA
        from fluxkit.backends.together import lora_path

        lora_path(LoRA("hf://me/tok/lora.safetensors"))
        # 'https://huggingface.co/me/tok/resolve/main/lora.safetensors'
        ```
    """
    if lora.kind == "hf":
        if lora.url is not None:
            return lora.url
        if lora.revision is not None:
            raise InvalidRequestError(
                "lora.source",
                lora.source,
                "hf://owner/repo/file.safetensors@revision",
                reason="Together takes a bare repo only at its default branch; name the file",
            )
        return f"https://huggingface.co/{lora.repo_id}"
    if lora.kind == "url" and lora.source.startswith("https://"):
        return lora.source
    # Local paths are refused before this point (local_loras=False); data: URIs here.
    raise InvalidRequestError(
        "lora.source",
        lora.source[:60],
        "an hf:// or https:// source",
        reason="Together downloads LoRAs itself and has no upload API",
    )


class TogetherBackend(HttpBackend):
    """Together AI (``TOGETHER_API_KEY``); ``base_url`` is the API root, without ``/v1``."""

    name = "together"
    env_vars = ("TOGETHER_API_KEY",)
    default_base_url = "https://api.together.xyz"
    capabilities_table = CAPABILITIES
    model_aliases = MODEL_ALIASES
    default_model = SCHNELL

    def choose_model(self, request: GenerationRequest) -> ModelChoice | None:
        """The model fluxkit would pick for a request that names none and needs more than the
        default (FLUX.1 [schnell]) does; None when the request fits the default or names one.

        Planning turns a choice into an error under ``validate="strict"`` and into a
        `ModelChosen` warning under ``"coerce"``: LoRAs are trained for one base
        model, so picking it silently could run FLUX.1 LoRAs on FLUX.2 (they do not fit).

        Example:
            ```python
            import fluxkit
            from fluxkit.backends.together import TogetherBackend

            request = fluxkit.GenerationRequest(prompt="x", loras=["hf://me/tok/t.safetensors"])
            TogetherBackend(api_key="k").choose_model(request).candidates
            # ("flux-dev-lora (FLUX.1 LoRAs, ...)", "flux-2-dev (FLUX.2 LoRAs, ...)")
            ```
        """
        if request.model is not None or self.model is not None:
            return None
        if request.loras:
            return ModelChoice(
                FLUX2_DEV,
                "LoRAs",
                "loras",
                (
                    f"flux-dev-lora ({DEV_LORA}: FLUX.1 LoRAs, most trainers' output)",
                    f"flux-2-dev ({FLUX2_DEV}: FLUX.2 LoRAs; Together's current LoRA model)",
                ),
            )
        if request.reference_image is not None:
            return ModelChoice(
                FLUX2_DEV,
                "reference_image",
                "reference_image",
                tuple(f"{alias} ({MODEL_ALIASES[alias]})" for alias in _REFERENCE_MODELS),
            )
        if request.image is not None:
            return ModelChoice(
                KONTEXT_PRO,
                "image= (editing)",
                "image",
                tuple(f"{alias} ({MODEL_ALIASES[alias]})" for alias in _IMAGE_MODELS),
            )
        return None

    def resolve_model(self, request: GenerationRequest) -> str:
        """The model for ``request``: the caller's, else `choose_model`'s, else schnell.

        Planning does not call this directly: it goes through
        `fluxkit._capabilities.resolve_model`, which refuses or reports the choice.
        """
        choice = self.choose_model(request)
        return choice.model if choice is not None else super().resolve_model(request)

    def _headers(self) -> dict[str, str | Secret]:
        # wrapped until the driver builds the request: captured frames never show the key
        return {"authorization": self.api_key.prefixed("Bearer ")} if self.api_key else {}

    def payload(
        self, call: Call, *, image_url: str | None = None, reference_url: str | None = None
    ) -> dict[str, Any]:
        """The request body for ``call`` (pure; exposed for payload tests)."""
        request, model = call.request, call.model
        body: dict[str, Any] = {
            "model": model,
            "prompt": request.prompt,
            "width": request.width,
            "height": request.height,
            "n": len(call.seeds),
            "seed": call.seeds[0],
            # "base64" puts the bytes in the answer: no second download from Together's CDN.
            "response_format": "base64",
            "output_format": request.output_format,
        }
        if request.steps is not None and model not in _FIXED_STEPS:
            body["steps"] = request.steps
        guidance_field = _GUIDANCE_FIELD.get(model)
        if guidance_field and request.guidance is not None:
            body[guidance_field] = request.guidance
        if request.loras:
            body["image_loras"] = [
                {"path": lora_path(lora), "scale": lora.scale} for lora in request.loras
            ]
        if image_url is not None:
            body["image_url"] = image_url
        if reference_url is not None:
            body["reference_images"] = [reference_url]
        body.update(request.extra)  # negative_prompt, disable_safety_checker, aspect_ratio, ...
        return body

    def flow(self, call: Call) -> Flow[CallOutput]:
        request = call.request
        image_url = yield from self._image(request.image)
        reference_url = yield from self._image(request.reference_image)
        response = yield from send(
            HttpRequest(
                "POST",
                f"{self.base_url}/v1/images/generations",
                headers=self._headers(),
                json=self.payload(call, image_url=image_url, reference_url=reference_url),
                retry="submit",
                submit_grace=False,  # no cancel endpoint: an answer past the deadline helps no one
                raise_for_status=False,
                timeout=_GENERATION_TIMEOUT,
            )
        )
        body = _decoded(response)
        if not response.ok:
            # Together's error bodies carry the request id: {"id": ..., "error": {...}}.
            request_id = body.get("id") if isinstance(body, dict) else None
            raise error_from_response(
                self.name, response, request_id=request_id, now=_server_time(response)
            )
        output = self.parse(body, call)
        output.warnings.extend(_notices(call))
        return output

    def _image(self, image: InputImage | None) -> Generator[Any, Any, str | None]:
        if image is None:
            return None
        # No files API: URLs pass through, bytes travel inline as a data URI.
        return (
            yield from image_reference(image, provider=self.name, cache=_NO_UPLOADS, upload=None)
        )

    def parse(self, body: Any, call: Call) -> CallOutput:
        """Images, request id and inference time from a 200 answer (pure)."""
        request_id = str(body["id"]) if isinstance(body, dict) and body.get("id") else None
        items = body.get("data") if isinstance(body, dict) else None
        if not isinstance(items, list) or not items:
            raise ResponseFormatError(
                "no images in the answer", backend=self.name, request_id=request_id, body=body
            )
        images: list[ImageOutput] = []
        inference: list[float] = []
        # Items may lack "type" (docs examples show bare {"b64_json": ...}): read the fields.
        ordered = sorted(
            items, key=lambda item: int(item.get("index", 0)) if isinstance(item, dict) else 0
        )
        for position, item in enumerate(ordered):
            try:
                images.append(self._image_output(item, call, position))
            except (AttributeError, KeyError, TypeError, ValueError) as exc:
                raise ResponseFormatError(
                    f"unreadable image entry: {exc}",
                    backend=self.name,
                    request_id=request_id,
                    body=body,
                ) from exc
            timings = item.get("timings") or {}
            if isinstance(timings.get("inference"), int | float):
                inference.append(float(timings["inference"]))
        return CallOutput(
            images, request_id=request_id, running_seconds=max(inference) if inference else None
        )

    def _image_output(self, item: dict[str, Any], call: Call, position: int) -> ImageOutput:
        encoded, url = item.get("b64_json"), item.get("url")
        if not encoded and not url:
            raise KeyError("b64_json or url")
        data = decode_base64_image(encoded) if encoded else None
        width, height = image_size(data) if data else call.request.size
        return ImageOutput(
            # The seed sent reproduces the first image only; one image per call is the norm.
            seed=call.seeds[0] if position == 0 else None,
            width=width,
            height=height,
            format=call.request.output_format,
            data=data,
            url=url,
            # Unverified field name: Together documents no NSFW flag; fal/BFL use this one.
            nsfw=bool(item.get("has_nsfw_concepts")),
        )


def _decoded(response: HttpResponse) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text


def _server_time(response: HttpResponse) -> float:
    """The server's clock from ``Date`` (dates an HTTP-date ``Retry-After``; 0 when absent)."""
    try:
        return email.utils.parsedate_to_datetime(response.header("date") or "").timestamp()
    except (TypeError, ValueError):
        return 0.0


def _notices(call: Call) -> list[Warning]:
    """Say which explicit inputs the model ignores, rather than drop them silently.

    ``strength``/``reference_strength`` never get here: the capability table refuses them
    (strict) or drops them with a warning (coerce) before any call.
    """
    request = call.request
    notices: list[Warning] = []
    if request.guidance is not None and call.model not in _GUIDANCE_FIELD:
        notices.append(ProviderNotice(f"{call.model} takes no guidance; it was not sent"))
    return notices


backend_class = TogetherBackend
