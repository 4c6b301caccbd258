"""Together AI's images API, emulated: ``POST /v1/images/generations`` and its error bodies.

What it mirrors (https://docs.together.ai/reference/post-images-generations, the ``together``
3.x SDK's ``ImageGenerateParams``/``ImageFile`` types):

* ``Authorization: Bearer <key>`` (401 when the emulator has ``api_key`` and it differs);
* the body fields and their types, per-model support of ``image_loras`` (at most 2),
  ``image_url`` and ``reference_images`` (400 "Unsupported use of '<field>' parameter"), sizes
  256-``max_side`` in multiples of 8, ``n`` 1-4, ``steps`` 1-50;
* answers ``{"id", "model", "object": "list", "data": [{"index", "type", "b64_json"|"url",
  "timings"}]}`` — ``response_format`` ``"url"`` (Together's default) or ``"base64"``;
* errors ``{"id", "error": {"message", "type", "param", "code"}}``: 400/422 name the field.

Scripting: ``emu.script.run_seconds`` (generation time), ``emu.script.latency``,
`TogetherEmulator.fail_next` (429/503 bursts with Retry-After, Together-shaped bodies),
``emu.script.fail_jobs()`` (the next generations answer 500).

Example:
    ```python
    import fluxkit
    import httpx
    from fluxkit.testing.together import TogetherEmulator

    emu = TogetherEmulator(api_key="test")
    emu.fail_next(429, count=2, retry_after=0.01)
    gen = fluxkit.Generator("together", api_key="test", base_url=emu.base_url,
                            http_client=httpx.Client(transport=emu.transport()))
    gen.generate("a fox", size=(256, 256), seed=1)
    len(emu.requests("/v1/images/generations"))   # 3: two 429s, then the images
    ```
"""

from __future__ import annotations

import base64
import itertools
from dataclasses import dataclass
from typing import Any

from fluxkit._core import _media
from fluxkit.testing._emulator import Defer, Emulator, EmuRequest, EmuResponse, route
from fluxkit.testing._render import render_fake_image

__all__ = ["TogetherEmulator", "TogetherModel"]


@dataclass(frozen=True)
class TogetherModel:
    """What one emulated model accepts."""

    max_loras: int = 0
    image_url: bool = False
    reference_images: bool = False
    max_side: int = 1920


_BFL = "black-forest-labs"
DEFAULT_MODELS: dict[str, TogetherModel] = {
    f"{_BFL}/FLUX.1-schnell": TogetherModel(),
    f"{_BFL}/FLUX.1-schnell-Free": TogetherModel(),
    f"{_BFL}/FLUX.1-dev": TogetherModel(),
    f"{_BFL}/FLUX.1-dev-lora": TogetherModel(max_loras=2),
    f"{_BFL}/FLUX.1.1-pro": TogetherModel(),
    f"{_BFL}/FLUX.1-kontext-pro": TogetherModel(image_url=True),
    f"{_BFL}/FLUX.1-kontext-max": TogetherModel(image_url=True),
    f"{_BFL}/FLUX.2-dev": TogetherModel(max_loras=2, reference_images=True),
    f"{_BFL}/FLUX.2-pro": TogetherModel(image_url=True, reference_images=True, max_side=2048),
    f"{_BFL}/FLUX.2-flex": TogetherModel(image_url=True, reference_images=True, max_side=2048),
    f"{_BFL}/FLUX.2-max": TogetherModel(max_side=2048),
}

# fmt: off
_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "model": (str,), "prompt": (str,), "width": (int,), "height": (int,), "n": (int,),
    "steps": (int,), "seed": (int,), "negative_prompt": (str,), "guidance_scale": (int, float),
    "guidance": (int, float), "response_format": (str,), "output_format": (str,),
    "image_url": (str,), "reference_images": (list,), "image_loras": (list,),
    "disable_safety_checker": (bool,), "aspect_ratio": (str,), "prompt_upsampling": (bool,),
}
_ERROR_TYPES = {401: "invalid_request_error", 404: "invalid_request_error",
                429: "rate_limit_exceeded", 500: "server_error", 503: "server_error"}
# fmt: on
_RANGES = {"n": (1, 4), "steps": (1, 50)}


class _Invalid(Exception):
    def __init__(
        self, status: int, message: str, param: str | None = None, code: str | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code


class TogetherEmulator(Emulator):
    """Together's images endpoint. Images are deterministic renders of prompt, seed and LoRAs.

    Attributes:
        models: model id -> `TogetherModel`; unknown ids answer 404.
        generations: every accepted request body, in order.
        files: images served for ``response_format="url"`` (``GET /v1/images/{name}``).
        nsfw_keyword: when set, prompts containing it get ``has_nsfw_concepts: true`` on
            their items (a field Together does not document; for flag-handling tests).
    """

    base_url = "http://together.emulator.local"
    backend = "together"

    def __init__(
        self, *, api_key: str | None = None, nsfw_keyword: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.api_key = api_key
        self.nsfw_keyword = nsfw_keyword
        self.models: dict[str, TogetherModel] = dict(DEFAULT_MODELS)
        self.generations: list[dict[str, Any]] = []
        self.files: dict[str, bytes] = {}
        self._ids = itertools.count(1)

    def _request_id(self) -> str:
        return f"emu{next(self._ids):06d}-together"

    def error_body(
        self, message: str, *, status: int = 400, param: str | None = None, code: str | None = None
    ) -> dict[str, Any]:
        """Together's error shape (as in HeyPuter/puter#2084)."""
        return {
            "id": self._request_id(),
            "error": {
                "message": message,
                "type": _ERROR_TYPES.get(status, "invalid_request_error"),
                "param": param,
                "code": code,
            },
        }

    def fail_next(
        self,
        status: int,
        count: int = 1,
        *,
        retry_after: float | None = None,
        message: str | None = None,
    ) -> None:
        """Answer the next ``count`` generations with ``status`` and a Together-shaped body."""
        text = message or ("rate limit exceeded" if status == 429 else f"HTTP {status}")
        with self.lock:
            body = self.error_body(text, status=status)
        self.script.fail_next(
            status,
            count,
            path=r"^/v1/images/generations$",
            method="POST",
            retry_after=retry_after,
            body=body,
        )

    # -- validation ------------------------------------------------------------------------

    def _validate(self, body: Any) -> TogetherModel:
        if not isinstance(body, dict):
            raise _Invalid(422, "request body must be a JSON object")
        for name in ("model", "prompt"):
            if name not in body:
                raise _Invalid(422, f"'{name}' is a required property", name)
        for name, value in body.items():
            expected = _FIELD_TYPES.get(name)
            if expected is None:
                continue  # unknown fields are ignored, as model-specific extras are
            # JSON true is not an integer here, though Python's bool is an int.
            if not isinstance(value, expected) or (
                isinstance(value, bool) and bool not in expected
            ):
                raise _Invalid(422, f"'{name}' must be of type {expected[0].__name__}", name)
        model = self.models.get(body["model"])
        if model is None:
            raise _Invalid(
                404,
                f"Unable to access model {body['model']}. Please visit "
                "https://api.together.ai/models to view the list of supported "
                "models.",
                "model",
                "model_not_available",
            )
        for name, (low, high) in _RANGES.items():
            if name in body and not low <= body[name] <= high:
                raise _Invalid(422, f"'{name}' must be between {low} and {high}", name)
        for side in ("width", "height"):
            value = body.get(side, 1024)
            if not 256 <= value <= model.max_side or value % 8:
                raise _Invalid(
                    422, f"'{side}' must be a multiple of 8 from 256 to {model.max_side}", side
                )
        if body.get("response_format", "url") not in ("url", "base64"):
            raise _Invalid(
                422, "'response_format' must be one of 'url', 'base64'", "response_format"
            )
        if body.get("output_format", "jpeg") not in ("jpeg", "png"):
            raise _Invalid(422, "'output_format' must be one of 'jpeg', 'png'", "output_format")
        self._validate_features(body, model)
        return model

    def _validate_features(self, body: dict[str, Any], model: TogetherModel) -> None:
        for name, allowed in (
            ("image_loras", model.max_loras > 0),
            ("image_url", model.image_url),
            ("reference_images", model.reference_images),
        ):
            if name in body and not allowed:
                raise _Invalid(
                    400,
                    f"Unsupported use of '{name}' parameter. This parameter is "
                    "not supported for the selected model.",
                )
        loras = body.get("image_loras", [])
        if len(loras) > model.max_loras:
            raise _Invalid(
                400,
                f"A maximum of {model.max_loras} LoRAs is supported per request.",
                "image_loras",
            )
        for index, lora in enumerate(loras):
            if (
                not isinstance(lora, dict)
                or not isinstance(lora.get("path"), str)
                or not isinstance(lora.get("scale"), int | float)
            ):
                raise _Invalid(
                    422,
                    "each LoRA needs 'path' (string) and 'scale' (number)",
                    f"image_loras.{index}",
                )
            if not lora["path"].startswith("https://"):
                raise _Invalid(
                    400,
                    f"LoRA path {lora['path']!r} is not a downloadable URL",
                    f"image_loras.{index}.path",
                )

    # -- answers ---------------------------------------------------------------------------

    def _render(self, body: dict[str, Any], host: str) -> list[dict[str, Any]]:
        init = None
        if str(body.get("image_url", "")).startswith("data:"):
            init = _media.open_image(_media.decode_data_uri(body["image_url"])[0])
        loras = [(lora["path"], float(lora["scale"])) for lora in body.get("image_loras", [])]
        seed = int(body.get("seed", next(self._ids)))
        fmt = body.get("output_format", "jpeg")
        items: list[dict[str, Any]] = []
        for index in range(int(body.get("n", 1))):
            # One seed per call: later images of a batch are not reproducible on their own.
            image_seed = seed if index == 0 else hash((seed, index)) % 2**32
            picture = render_fake_image(
                body["prompt"],
                image_seed,
                int(body.get("width", 1024)),
                int(body.get("height", 1024)),
                loras=loras,
                init_image=init,
            )
            data = _media.encode_image(picture, fmt)
            item: dict[str, Any] = {
                "index": index,
                "timings": {"inference": self.script.run_seconds},
            }
            if body.get("response_format", "url") == "base64":
                item.update(type="b64_json", b64_json=base64.b64encode(data).decode())
            else:
                name = f"{self._request_id()}-{index}.{'jpg' if fmt == 'jpeg' else fmt}"
                self.files[name] = data
                item.update(type="url", url=f"http://{host}/v1/images/{name}")
            if self.nsfw_keyword and self.nsfw_keyword in body["prompt"]:
                item["has_nsfw_concepts"] = True
            items.append(item)
        return items

    @route("POST", r"/v1/images/generations")
    def generate(self, request: EmuRequest) -> EmuResponse | Defer:
        if self.api_key is not None and request.header("authorization") != f"Bearer {self.api_key}":
            return EmuResponse(
                401,
                json=self.error_body(
                    "Invalid API key provided. You can find your API key at "
                    "https://api.together.xyz/settings/api-keys.",
                    status=401,
                    code="invalid_api_key",
                ),
            )
        try:
            body = request.json()
        except ValueError:
            body = None
        try:
            self._validate(body)
        except _Invalid as exc:
            return EmuResponse(
                exc.status,
                json=self.error_body(
                    exc.message, status=exc.status, param=exc.param, code=exc.code
                ),
            )
        self.generations.append(body)
        failure = self.script.take_job_failure()
        host = request.header("host") or "together.emulator.local"

        def answer() -> EmuResponse:
            with self.lock:
                if failure is not None:
                    return EmuResponse(500, json=self.error_body(failure, status=500))
                return EmuResponse(
                    200,
                    json={
                        "id": self._request_id(),
                        "model": body["model"],
                        "object": "list",
                        "data": self._render(body, host),
                    },
                )

        if self.script.run_seconds > 0:
            return Defer(self.script.run_seconds, answer)
        return answer()

    @route("GET", r"/v1/models")
    def list_models(self, request: EmuRequest) -> EmuResponse:
        """The models list (what ``fluxkit doctor --check`` asks: free, authenticated)."""
        if self.api_key is not None and request.header("authorization") != f"Bearer {self.api_key}":
            return EmuResponse(
                401,
                json=self.error_body(
                    "Invalid API key provided.", status=401, code="invalid_api_key"
                ),
            )
        return EmuResponse(
            200, json=[{"id": name, "object": "model", "type": "image"} for name in self.models]
        )

    @route("GET", r"/v1/images/(?P<name>[\w.-]+)")
    def file(self, request: EmuRequest, name: str) -> EmuResponse:
        data = self.files.get(name)
        if data is None:
            return EmuResponse(404, json=self.error_body("no such image", status=404))
        return EmuResponse(200, body=data, headers={"content-type": _media.mime_type(data)})
