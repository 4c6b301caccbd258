"""The ``replicate`` backend: Replicate predictions (create, poll, cancel) for FLUX models.

```python
import fluxkit

gen = fluxkit.Generator("replicate")          # token from REPLICATE_API_TOKEN
result = gen.generate("a red fox", seed=7, loras=["hf://me/tok-lora/lora.safetensors"])
```

Official models (``black-forest-labs/flux-dev``, ``flux-schnell``, ``flux-dev-lora``,
``flux-1.1-pro``) are created by name (``POST /v1/models/{owner}/{name}/predictions``); any
``owner/model:version`` (a LoRA you trained on Replicate) by version (``POST /v1/predictions``).
https://replicate.com/docs/topics/predictions/create-a-prediction
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING, Any

from fluxkit._capabilities import Capabilities
from fluxkit._config import Secret
from fluxkit._core import Flow, HttpRequest, PollSchedule, Wait, accept, send
from fluxkit._uploads import DEFAULT_INLINE_LIMIT, UploadCache, image_reference
from fluxkit.backends._base import Call, CallOutput, HttpBackend
from fluxkit.backends._replicate._files import file_url, upload_request
from fluxkit.backends._replicate._inputs import (
    FLUX_DEV,
    FLUX_DEV_LORA,
    FLUX_PRO,
    FLUX_SCHNELL,
    BuiltInput,
    build_input,
)
from fluxkit.backends._replicate._progress import TERMINAL, PredictionWatcher
from fluxkit.backends._replicate._results import outcome, prediction_of, refusal

if TYPE_CHECKING:
    from fluxkit._images import InputImage
    from fluxkit._types import GenerationRequest

__all__ = ["CAPABILITIES", "MODEL_ALIASES", "ReplicateBackend", "backend_class"]

MODEL_ALIASES: Mapping[str, str] = {
    "flux-dev": FLUX_DEV,
    "flux-dev-lora": FLUX_DEV_LORA,
    "flux-schnell": FLUX_SCHNELL,
    "flux-pro": FLUX_PRO,
    "flux-1.1-pro": FLUX_PRO,
}

_FORMATS = ("png", "jpeg", "webp")
# lora_scale / extra_lora_scale: minimum -1, maximum 3 (flux-dev-lora and flux-fine-tuner
# OpenAPI schemas); outside it Replicate answers 422 after the request was sent.
_LORA_SCALE = (-1.0, 3.0)
# cog-flux draws one noise batch from one generator for num_outputs images, so image i of a call
# is not image 0 of a call with seed+i: fluxkit sends one image per call (seeds_per_image=False).
_DEV = Capabilities(
    img2img=True,
    max_images_per_call=4,
    seeds_per_image=False,
    max_side=1536,
    default_guidance=3.0,
    output_formats=_FORMATS,
    lora_scale=_LORA_SCALE,
    notes="sizes snap to an aspect_ratio at 1 or 0.25 megapixels; img2img output follows the input",
)
CAPABILITIES: Mapping[str, Capabilities] = {
    FLUX_DEV: _DEV,
    FLUX_DEV_LORA: replace(_DEV, max_loras=2),
    FLUX_SCHNELL: Capabilities(
        max_images_per_call=4,
        max_side=1536,
        max_steps=4,
        default_steps=4,
        guidance=False,
        default_guidance=None,
        output_formats=_FORMATS,
        notes="sizes snap to an aspect_ratio at 1 or 0.25 megapixels",
    ),
    FLUX_PRO: Capabilities(
        steps=False,
        size_multiple=32,
        max_side=1440,
        guidance=False,
        default_guidance=None,
        output_formats=_FORMATS,
        notes="runs on BFL's API: no steps or guidance, one image a call",
    ),
    # Any other owner/model[:version]: assumed to be a LoRA trained on Replicate
    # (replicate/flux-fine-tuner): custom sizes, img2img, one extra LoRA.
    "*": Capabilities(
        max_loras=1,
        img2img=True,
        max_images_per_call=4,
        max_side=1440,
        default_guidance=3.0,
        output_formats=_FORMATS,
        lora_scale=_LORA_SCALE,
        notes="LoRAs trained on Replicate (owner/model:version); one extra LoRA via extra_lora",
    ),
}

# Short jobs are worth holding the create request for ("Prefer: wait=N", 1-60 s): the answer may
# already hold the output. While it is held the prediction id is unknown, so a deadline or a
# cancelled task cannot cancel it; long jobs are polled instead, with progress events.
_PREFER_WAIT = {FLUX_SCHNELL: 5, FLUX_PRO: 5}
_VERSION = re.compile(r"^(?:(?P<model>[\w.-]+/[\w.-]+):)?(?P<version>[0-9a-f]{64})$")
_SHARED_UPLOADS: UploadCache | None = None


def _shared_uploads() -> UploadCache:
    global _SHARED_UPLOADS
    if _SHARED_UPLOADS is None:
        _SHARED_UPLOADS = UploadCache()
    return _SHARED_UPLOADS


class ReplicateBackend(HttpBackend):
    """Replicate predictions.

    Args:
        prefer_wait: seconds to hold the create request (``Prefer: wait=N``); 0 never holds.
            Default: 5 for flux-schnell and flux-1.1-pro, 0 for the rest.
        poll: polling schedule for ``GET /v1/predictions/{id}``.
        upload_cache: where uploaded input images are remembered (default: one per process).
        inline_limit: input images up to this many bytes go inline as data URIs.

    Every prediction is created with ``Cancel-After`` set to the time left before the call's
    deadline, so Replicate stops it (``aborted`` before it starts, ``canceled`` while running)
    even if this process is gone; ``Prefer: wait`` never holds past that deadline.
    """

    name = "replicate"
    env_vars = ("REPLICATE_API_TOKEN",)
    default_base_url = "https://api.replicate.com"
    capabilities_table = CAPABILITIES
    model_aliases = MODEL_ALIASES
    default_model = FLUX_DEV

    def __init__(
        self,
        *,
        api_key: str | Secret | None = None,
        base_url: str | None = None,
        model: str | None = None,
        environ: Mapping[str, str] | None = None,
        prefer_wait: int | None = None,
        poll: PollSchedule | None = None,
        upload_cache: UploadCache | None = None,
        inline_limit: int = DEFAULT_INLINE_LIMIT,
    ) -> None:
        super().__init__(api_key=api_key, base_url=base_url, model=model, environ=environ)
        self.prefer_wait = prefer_wait
        self.poll = poll or PollSchedule(initial=0.1, factor=1.5, ceiling=2.0)
        self.upload_cache = upload_cache if upload_cache is not None else _shared_uploads()
        self.inline_limit = inline_limit

    # -- models ----------------------------------------------------------------------------

    def resolve_model(self, request: GenerationRequest) -> str:
        """flux-dev with LoRAs runs as flux-dev-lora (same model, LoRA inputs)."""
        model = super().resolve_model(request)
        return FLUX_DEV_LORA if model == FLUX_DEV and request.loras else model

    def capabilities(self, model: str) -> Capabilities:
        """``owner/name:version`` of an official model has the official model's facts."""
        if model not in self.capabilities_table:
            model = model.split(":", 1)[0]
        return super().capabilities(model)

    # -- requests (pure) -------------------------------------------------------------------

    def _headers(self) -> dict[str, str | Secret]:
        assert self.api_key is not None
        return {"authorization": self.api_key.prefixed("Bearer ")}

    def payload(self, call: Call, image: str | None = None) -> BuiltInput:
        """The prediction input for ``call`` (``image``: the init image reference)."""
        return build_input(call, call.model, image)

    def create_request(self, model: str, input: dict[str, Any]) -> HttpRequest:
        """``POST`` by model name, or by version for ``owner/model:version`` and bare ids."""
        headers = self._headers()
        version = _VERSION.match(model)
        if version is not None:
            url, body = (
                f"{self.base_url}/v1/predictions",
                {"version": version["version"], "input": input},
            )
        else:
            url, body = f"{self.base_url}/v1/models/{model}/predictions", {"input": input}
        wait = _PREFER_WAIT.get(model, 0) if self.prefer_wait is None else self.prefer_wait
        if wait > 0:
            headers["prefer"] = f"wait={min(60, wait)}"
        return HttpRequest(
            "POST",
            url,
            headers=headers,
            json=body,
            retry="submit",
            raise_for_status=False,
            timeout=wait + 30.0,
            deadline_headers=partial(deadline_headers, wait=min(60, wait)),
        )

    def _prediction_url(self, prediction_id: str) -> str:
        # Built from base_url rather than the answer's urls.get, which names api.replicate.com
        # and would bypass a proxy or gateway given as base_url.
        return f"{self.base_url}/v1/predictions/{prediction_id}"

    # -- the flow --------------------------------------------------------------------------

    def flow(self, call: Call) -> Flow[CallOutput]:
        image = None
        if call.request.image is not None:
            image = yield from image_reference(
                call.request.image,
                provider=self._upload_namespace(),
                cache=self.upload_cache,
                upload=self._upload,
                inline_limit=self.inline_limit,
            )
        built = self.payload(call, image)
        created = yield from send(self.create_request(call.model, built.input))
        if not created.ok:
            raise refusal(self.name, created)
        prediction = prediction_of(created, self.name)
        prediction_id = prediction["id"]
        url = self._prediction_url(prediction_id)
        yield from accept(
            prediction_id,
            HttpRequest(
                "POST",
                f"{url}/cancel",
                headers=self._headers(),
                retry="never",
                raise_for_status=False,
            ),
        )
        return (yield from self._collect(call, prediction, built))

    def follow(self, call: Call, request_id: str) -> Flow[CallOutput]:
        """Collect a prediction Replicate accepted earlier (by id): poll it, read its output."""
        url = self._prediction_url(request_id)
        yield from accept(
            request_id,
            HttpRequest(
                "POST",
                f"{url}/cancel",
                headers=self._headers(),
                retry="never",
                raise_for_status=False,
            ),
        )
        polled = yield from send(HttpRequest("GET", url, headers=self._headers()))
        return (
            yield from self._collect(call, prediction_of(polled, self.name), self.payload(call))
        )

    def _collect(
        self, call: Call, prediction: dict[str, Any], built: BuiltInput
    ) -> Flow[CallOutput]:
        prediction_id = str(prediction["id"])
        url = self._prediction_url(prediction_id)
        watcher = PredictionWatcher(prediction_id)
        intervals = self.poll.intervals()
        while True:
            yield from watcher.observe(prediction)
            if prediction.get("status") in TERMINAL:
                return outcome(self.name, call, prediction, built, watcher)
            yield Wait(next(intervals))
            polled = yield from send(HttpRequest("GET", url, headers=self._headers()))
            prediction = prediction_of(polled, self.name)

    # -- uploads ---------------------------------------------------------------------------

    def _upload_namespace(self) -> str:
        # Files belong to the account that uploaded them: key the cache by API root and token
        # (hashed: the cache may live on disk).
        token = self.api_key.reveal() if self.api_key else ""
        digest = hashlib.sha256(f"{self.base_url}\n{token}".encode()).hexdigest()[:16]
        return f"{self.name}-{digest}"

    def _upload(self, image: InputImage) -> Flow[str]:
        assert image.data is not None
        response = yield from send(
            upload_request(self.base_url, self._headers(), image.data, image.mime)
        )
        return file_url(response, self.name)


def deadline_headers(seconds_left: float, *, wait: int) -> dict[str, str]:
    """Headers that keep a prediction inside the caller's deadline.

    ``Cancel-After`` makes Replicate stop it server-side when the deadline passes; ``Prefer:
    wait`` is cut so the create is never held past the deadline (below 1 s, not held at all:
    the driver then learns the id at once and can cancel).
    """
    headers = {"cancel-after": f"{max(1, math.ceil(seconds_left))}s"}
    held = min(wait, math.floor(seconds_left) - 1)
    if wait > 0:
        headers["prefer"] = f"wait={held}" if held >= 1 else ""  # "": sent without Prefer
    return headers


backend_class = ReplicateBackend
