"""What each (backend, model) can do, and the check every request passes before money is spent.

Each backend module declares a ``CAPABILITIES`` mapping (model id -> `Capabilities`) and a
``MODEL_ALIASES`` mapping (fluxkit alias -> model id). `check_request` compares a request
with the table: in ``"strict"`` mode anything the model cannot do raises
`UnsupportedFeatureError` (naming where it *would* work); in ``"coerce"`` mode values are
adjusted to the nearest allowed ones and a `RequestCoerced` warning says so.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from fluxkit._exceptions import InvalidRequestError, UnsupportedFeatureError
from fluxkit._types import GenerationRequest
from fluxkit._warnings import ModelChosen, RequestCoerced

if TYPE_CHECKING:
    from fluxkit.backends._base import HttpBackend, LocalBackend

__all__ = [
    "Capabilities",
    "ModelChoice",
    "ValidateMode",
    "check_request",
    "coerce_size",
    "iter_capabilities",
    "resolve_model",
]

ValidateMode = Literal["strict", "coerce"]

UNLIMITED = 1_000


@dataclass(frozen=True)
class Capabilities:
    """Facts about one model on one backend.

    Attributes:
        max_loras: LoRAs per request (0: none).
        img2img: accepts ``image`` + ``strength``.
        reference_image: accepts a reference face/IP-Adapter image.
        max_images_per_call: images one provider call can return.
        seeds_per_image: one call with ``n`` images gives seeds ``seed, seed+1, ...`` that each
            regenerate their image alone; when False fluxkit sends one image per call.
        size_multiple, min_side, max_side: size rules.
        max_steps: steps cap; ``default_steps``/``default_guidance`` fill unset fields.
        guidance: the model uses guidance (schnell ignores it).
        steps: the step count is a knob (pro models run a fixed schedule).
        local_loras: accepts LoRAs from local paths.
        lora_scale: (lowest, highest) LoRA scale the provider accepts, bounds included.
        strength: honours ``strength`` with ``image=`` (edit models take the image whole).
        reference_strength: honours ``reference_strength`` with ``reference_image=``.
        output_formats: formats the provider can return.
    """

    max_loras: int = 0
    img2img: bool = False
    reference_image: bool = False
    max_images_per_call: int = 1
    seeds_per_image: bool = False
    size_multiple: int = 16
    min_side: int = 256
    max_side: int = 2048
    max_steps: int = 50
    default_steps: int = 28
    default_guidance: float | None = 3.5
    guidance: bool = True
    steps: bool = True
    local_loras: bool = False
    lora_scale: tuple[float, float] = (-4.0, 4.0)
    strength: bool = True
    reference_strength: bool = True
    output_formats: tuple[str, ...] = ("png", "jpeg")
    notes: str = ""


@dataclass(frozen=True)
class ModelChoice:
    """A model a backend would pick because the request needs it and names none.

    Attributes:
        model: the provider model id it would use.
        feature: what forced the choice, e.g. ``"LoRAs"``.
        field: the request field that asks for it.
        candidates: what the caller can name instead (aliases with a word on each).
    """

    model: str
    feature: str
    field: str
    candidates: tuple[str, ...]


def resolve_model(
    backend: HttpBackend | LocalBackend, request: GenerationRequest, mode: ValidateMode
) -> tuple[str, list[RequestCoerced]]:
    """The model to run ``request`` on, never switched behind the caller's back.

    A backend whose default model cannot do what the request asks may offer a
    `ModelChoice` (``backend.choose_model(request)``): in ``"strict"`` mode that is an
    `UnsupportedFeatureError` naming the models to choose from; in ``"coerce"`` mode the
    choice is taken and a `ModelChosen` warning says so.

    Example:
        ```python
        import fluxkit
        from fluxkit._capabilities import resolve_model
        from fluxkit.backends.together import TogetherBackend

        request = fluxkit.GenerationRequest(prompt="x", loras=["hf://me/tok/t.safetensors"])
        resolve_model(TogetherBackend(api_key="k"), request, "coerce")
        # ("black-forest-labs/FLUX.2-dev", [ModelChosen(...)])
        ```
    """
    choose = getattr(backend, "choose_model", None)
    choice: ModelChoice | None = choose(request) if choose is not None else None
    if choice is None:
        return backend.resolve_model(request), []
    if mode == "strict":
        raise UnsupportedFeatureError(
            f"{choice.feature} on the default model",
            backend=backend.name,
            model=backend.model_aliases.get(backend.default_model, backend.default_model),
            supported_by=choice.candidates,
            field="model",
            value=None,
            allowed="name a model that supports them (model=...)",
        )
    reason = f"{choice.feature} need one of: {'; '.join(choice.candidates)}"
    return choice.model, [ModelChosen(choice.model, reason)]


def backend_module(backend: str) -> Any:
    return importlib.import_module(f"fluxkit.backends.{backend}")


def iter_capabilities() -> Iterator[tuple[str, str, Capabilities]]:
    """(backend, model, capabilities) for every registered backend whose module imports."""
    from fluxkit.backends import BACKEND_NAMES

    for backend in BACKEND_NAMES:
        try:
            module = backend_module(backend)
        except ImportError:  # pragma: no cover - backend modules import no optional packages
            continue
        for model, caps in getattr(module, "CAPABILITIES", {}).items():
            yield backend, model, caps


def _supported_by(predicate: Any, backend_asked: str, model_asked: str) -> list[str]:
    """Where a feature would work: other models of this backend, then other backends."""
    found: list[str] = []
    for backend, model, caps in iter_capabilities():
        if backend == "fake" and backend_asked != "fake":
            continue
        if (backend, model) != (backend_asked, model_asked) and predicate(caps):
            label = backend if model == "*" else f"{backend}:{model}"
            found.append(label)
    return found


def _nearest_side(value: int, caps: Capabilities) -> int:
    rounded = int(value / caps.size_multiple + 0.5) * caps.size_multiple  # ties round up
    low = -(-caps.min_side // caps.size_multiple) * caps.size_multiple
    high = caps.max_side // caps.size_multiple * caps.size_multiple
    return max(low, min(high, rounded))


def coerce_size(width: int, height: int, caps: Capabilities) -> tuple[int, int]:
    """The nearest size ``caps`` allows (each side rounded to the multiple and clamped)."""
    return _nearest_side(width, caps), _nearest_side(height, caps)


def coerce_params(params: Mapping[str, Any]) -> tuple[dict[str, Any], list[RequestCoerced]]:
    """Round raw size arguments to the generic FLUX grid before the request is built.

    Lets ``validate="coerce"`` accept ``size=(1000, 1000)`` (it becomes 1008x1008).
    """
    from fluxkit._types import MAX_SIDE, MIN_SIDE, SIDE_MULTIPLE, SIZE_PRESETS

    generic = Capabilities(size_multiple=SIDE_MULTIPLE, min_side=MIN_SIDE, max_side=MAX_SIDE)
    out = dict(params)
    warnings: list[RequestCoerced] = []
    size = out.get("size")
    if isinstance(size, tuple | list) and len(size) == 2:
        out.pop("size")
        out["width"], out["height"] = size
    elif isinstance(size, str) and size in SIZE_PRESETS:
        return out, warnings
    for side in ("width", "height"):
        value = out.get(side)
        finite = isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))
        if finite and not isinstance(value, bool):
            assert isinstance(value, int | float)
            new = _nearest_side(int(value), generic)
            if new != value:
                warnings.append(
                    RequestCoerced(
                        side, value, new, f"multiple of {SIDE_MULTIPLE}, {MIN_SIDE}-{MAX_SIDE}"
                    )
                )
            out[side] = new
    return out, warnings


def check_request(
    request: GenerationRequest,
    caps: Capabilities,
    *,
    backend: str,
    model: str,
    mode: ValidateMode = "strict",
) -> tuple[GenerationRequest, list[RequestCoerced]]:
    """Check ``request`` against ``caps``; fill model defaults; coerce or raise.

    Returns the request to send (defaults filled) and the coercion warnings.
    """
    changes: dict[str, Any] = {}
    warnings: list[RequestCoerced] = []
    coerce = mode == "coerce"

    def unsupported(
        feature: str, predicate: Any, *, field: str, value: Any, allowed: str = ""
    ) -> None:
        raise UnsupportedFeatureError(
            feature,
            backend=backend,
            model=model,
            supported_by=_supported_by(predicate, backend, model),
            field=field,
            value=value,
            allowed=allowed,
        )

    count = len(request.loras)
    if count > caps.max_loras:
        if caps.max_loras == 0:
            unsupported("LoRAs", lambda c: c.max_loras > 0, field="loras", value=count, allowed="0")
        unsupported(
            f"{count} LoRAs",
            lambda c: c.max_loras >= count,
            field="loras",
            value=count,
            allowed=f"at most {caps.max_loras}",
        )
    for index, lora in enumerate(request.loras):
        if lora.kind != "path":
            continue
        if not caps.local_loras:
            unsupported(
                "LoRAs from local files",
                lambda c: c.local_loras,
                field=f"loras[{index}]",
                value=lora.source,
                allowed="hf:// or https:// sources",
            )
        if not _is_file(lora.source):
            raise InvalidRequestError(
                f"loras[{index}].source",
                lora.source,
                "an existing local .safetensors file, hf://owner/repo[/file] or an https:// URL",
                reason="no such file",
            )
    low, high = caps.lora_scale
    scales = list(request.loras)
    for index, lora in enumerate(request.loras):
        if low <= lora.scale <= high:
            continue
        if not coerce:
            raise InvalidRequestError(
                f"loras[{index}].scale", lora.scale, f"{low:g} to {high:g} on {backend} {model}"
            )
        clamped = min(high, max(low, lora.scale))
        scales[index] = lora.model_copy(update={"scale": clamped})
        warnings.append(
            RequestCoerced(
                f"loras[{index}].scale",
                lora.scale,
                clamped,
                f"{backend} {model} takes {low:g} to {high:g}",
            )
        )
    if scales != list(request.loras):
        changes["loras"] = tuple(scales)
    if request.image is not None and not caps.img2img:
        unsupported("img2img (image=)", lambda c: c.img2img, field="image", value="<image>")
    if request.reference_image is not None and not caps.reference_image:
        unsupported(
            "reference_image", lambda c: c.reference_image, field="reference_image", value="<image>"
        )
    for name, honoured in (
        ("strength", caps.strength),
        ("reference_strength", caps.reference_strength),
    ):
        value = getattr(request, name)
        if value is None or honoured:
            continue
        if not coerce:
            unsupported(
                name,
                lambda c, name=name: (
                    getattr(c, name) and (c.img2img if name == "strength" else c.reference_image)
                ),
                field=name,
                value=value,
                allowed="leave it unset",
            )
        changes[name] = None
        warnings.append(RequestCoerced(name, value, None, f"{backend} {model} ignores it"))
    if request.output_format not in caps.output_formats:
        if coerce:
            changes["output_format"] = caps.output_formats[0]
            warnings.append(
                RequestCoerced(
                    "output_format",
                    request.output_format,
                    caps.output_formats[0],
                    f"{backend} returns {', '.join(caps.output_formats)}",
                )
            )
        else:
            unsupported(
                f"output_format={request.output_format!r}",
                lambda c: request.output_format in c.output_formats,
                field="output_format",
                value=request.output_format,
                allowed=", ".join(caps.output_formats),
            )

    width, height = request.width, request.height
    fits = (
        width % caps.size_multiple == 0
        and height % caps.size_multiple == 0
        and caps.min_side <= min(width, height)
        and max(width, height) <= caps.max_side
    )
    if not fits:
        if coerce:
            new_w, new_h = coerce_size(width, height, caps)
            changes.update(width=new_w, height=new_h)
            warnings.append(
                RequestCoerced(
                    "size", (width, height), (new_w, new_h), f"{backend} {model} size rules"
                )
            )
        else:
            raise InvalidRequestError(
                "size",
                (width, height),
                f"sides that are multiples of {caps.size_multiple} from {caps.min_side} to {caps.max_side} on {backend} {model}",
            )

    if not caps.steps:
        if request.steps is not None:
            if not coerce:
                unsupported(
                    "steps",
                    lambda c: c.steps,
                    field="steps",
                    value=request.steps,
                    allowed=f"unset: {model} runs a fixed number of steps",
                )
            warnings.append(
                RequestCoerced(
                    "steps", request.steps, None, f"{model} runs a fixed number of steps"
                )
            )
            changes["steps"] = None
    elif request.steps is None:
        changes["steps"] = caps.default_steps
    elif request.steps > caps.max_steps:
        if coerce:
            changes["steps"] = caps.max_steps
            warnings.append(
                RequestCoerced(
                    "steps",
                    request.steps,
                    caps.max_steps,
                    f"{model} allows at most {caps.max_steps}",
                )
            )
        else:
            raise InvalidRequestError(
                "steps", request.steps, f"1 to {caps.max_steps} on {backend} {model}"
            )
    if request.guidance is not None and not caps.guidance:
        if not coerce:
            unsupported(
                "guidance",
                lambda c: c.guidance,
                field="guidance",
                value=request.guidance,
                allowed=f"unset: {model} takes no guidance",
            )
        warnings.append(
            RequestCoerced("guidance", request.guidance, None, f"{model} takes no guidance")
        )
        changes["guidance"] = None
    elif request.guidance is None and caps.guidance and caps.default_guidance is not None:
        changes["guidance"] = caps.default_guidance

    # the changes are the table's own values (defaults, clamped sizes): no second validation
    resolved = request.evolve(**changes) if changes else request
    return resolved, warnings


def _is_file(source: str) -> bool:
    try:
        return Path(source).is_file()
    except (OSError, ValueError):  # a name too long for the file system, a NUL byte
        return False
