"""Planning a generation, without I/O: build and check the request, fix seeds, split ``n`` into
provider calls, and assemble the result from what the calls returned.

Both façades (``Generator``, ``AsyncGenerator``) use exactly this; they differ only in how the
calls run.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypedDict

from fluxkit._capabilities import (
    Capabilities,
    ValidateMode,
    check_request,
    coerce_params,
    resolve_model,
)
from fluxkit._core import Flow, HttpRequest, send
from fluxkit._core._media import decode_data_uri, sniff_format
from fluxkit._drivers import FlowOutcome
from fluxkit._exceptions import InvalidRequestError, ResultUnavailableError
from fluxkit._results import CallFailure, GeneratedImage, GenerationResult, Timings
from fluxkit._types import MAX_SEED, GenerationRequest, ImageLike, LoRA, OutputFormat, SizePreset
from fluxkit._version import __version__
from fluxkit._warnings import ContentFlagged
from fluxkit.backends._base import Call, CallOutput, HttpBackend, LocalBackend

__all__ = [
    "GenerationParams",
    "Plan",
    "assemble_result",
    "fetch_flow",
    "plan_generation",
    "unfetched_images",
]


class GenerationParams(TypedDict, total=False):
    """Keyword arguments of ``generate()``/``stream()``; see :class:`GenerationRequest`."""

    size: SizePreset | tuple[int, int]
    width: int
    height: int
    steps: int
    num_inference_steps: int
    guidance: float
    guidance_scale: float
    seed: int | None
    n: int
    loras: Sequence[LoRA | str | tuple[str, float]]
    image: ImageLike
    strength: float
    reference_image: ImageLike
    reference_strength: float
    output_format: OutputFormat
    model: str
    extra: dict[str, Any]


_ALIASES = {"num_inference_steps": "steps", "guidance_scale": "guidance"}


_ALIASES = {"num_inference_steps": "steps", "guidance_scale": "guidance"}


@dataclass
class Plan:
    """A checked request and the provider calls that will produce it."""

    request: GenerationRequest
    model: str
    caps: Capabilities
    calls: list[Call]
    warnings: list[Warning] = field(default_factory=list)
    reserved: float | None = None
    """USD this plan holds of a session budget until its result's cost is known."""


def plan_generation(
    backend: HttpBackend | LocalBackend,
    prompt: str | GenerationRequest,
    params: dict[str, Any],
    mode: ValidateMode,
    idempotency_key: str | None = None,
) -> Plan:
    """Build the request, check it against the backend's capabilities, fix seeds, split calls.

    Raises InvalidRequestError / UnsupportedFeatureError; never touches the network.
    """
    warnings: list[Warning] = []
    if isinstance(prompt, GenerationRequest):
        request = prompt.replace(**params) if params else prompt
    else:
        for alias, name in _ALIASES.items():
            if alias in params and name in params:
                raise InvalidRequestError(
                    alias, params[alias], f"either {alias}= or {name}=", reason="both given"
                )
        if mode == "coerce":
            params, coerced = coerce_params(params)
            warnings.extend(coerced)
        request = GenerationRequest(prompt=prompt, **params)
    model, chosen = resolve_model(backend, request, mode)  # never switched silently
    warnings.extend(chosen)
    caps = backend.capabilities(model)
    request, coerced_by_caps = check_request(
        request, caps, backend=backend.name, model=model, mode=mode
    )
    warnings.extend(coerced_by_caps)
    if request.seed is None:
        request = request.evolve(seed=secrets.randbelow(MAX_SEED + 1))
    assert request.seed is not None
    seeds = [(request.seed + i) % (MAX_SEED + 1) for i in range(request.n)]
    per_call = caps.max_images_per_call if caps.seeds_per_image else 1
    calls = [
        Call(
            request.evolve(n=len(chunk), seed=chunk[0]),
            model,
            tuple(chunk),
            index,
            f"{idempotency_key}-{index}" if idempotency_key else None,
        )
        for index, chunk in enumerate(
            seeds[start : start + per_call] for start in range(0, len(seeds), per_call)
        )
    ]
    return Plan(request, model, caps, calls, warnings)


RECORD_FIELDS = (
    "prompt",
    "width",
    "height",
    "steps",
    "guidance",
    "strength",
    "reference_strength",
    "output_format",
)


def generation_record(
    plan: Plan, backend: str, seed: int | None, request_id: str | None
) -> dict[str, Any]:
    """What ``GeneratedImage.save()`` embeds in the file: all ``fluxkit.replay`` needs.

    Input images are recorded by content hash, with their path or URL when known (the bytes
    are never embedded); the model is the provider's resolved id.
    """
    request = plan.request
    record: dict[str, Any] = {name: getattr(request, name) for name in RECORD_FIELDS}
    record.update(
        {
            "backend": backend,
            "model": plan.model,
            "requested_model": request.model,
            "seed": seed,
            "loras": [
                {
                    "source": lora.source,
                    "scale": lora.scale,
                    **({"weight_name": lora.weight_name} if lora.weight_name else {}),
                    **({"trigger_words": list(lora.trigger_words)} if lora.trigger_words else {}),
                }
                for lora in request.loras
            ],
            "strength": request.effective_strength,
            "image": _image_record(request.image),
            "reference_image": _image_record(request.reference_image),
            "extra": dict(request.extra),
            "request_id": request_id,
            "fluxkit_version": __version__,
        }
    )
    return record


def _image_record(image: Any) -> dict[str, Any] | None:
    if image is None:
        return None
    entry: dict[str, Any] = {"sha256": image.sha256}
    if image.url:
        entry["url"] = image.url
    if getattr(image, "path", None):
        entry["path"] = image.path
    if image.size:
        entry["size"] = list(image.size)
    return entry


def assemble_result(
    plan: Plan,
    backend: str,
    outcomes: Sequence[FlowOutcome[CallOutput]],
    failures: Sequence[CallFailure],
    total: float,
    fetch: Callable[[str], bytes] | None,
) -> GenerationResult:
    """The result: every successful call's images in order, with seeds, records, ids, timings,
    warnings — and a typed failure per call that failed."""
    images: list[GeneratedImage] = []
    warnings = list(plan.warnings)
    request_ids: list[str] = []
    for outcome in outcomes:
        output = outcome.value
        request_id = output.request_id or outcome.request_id
        if request_id:
            request_ids.append(request_id)
        warnings.extend(output.warnings)
        for image in output.images:
            if image.nsfw:
                warnings.append(ContentFlagged(len(images), backend))
            fmt = sniff_format(image.data) if image.data else None
            images.append(
                GeneratedImage(
                    seed=image.seed,
                    width=image.width,
                    height=image.height,
                    format=fmt or image.format,
                    url=image.url,
                    record=generation_record(plan, backend, image.seed, request_id),
                    _data=image.data,
                    _fetch=fetch,
                )
            )
    queued = [o.value.queued_seconds or o.queued_seconds for o in outcomes]
    running = [o.value.running_seconds or o.running_seconds for o in outcomes]
    timings = Timings(
        queued=max((q for q in queued if q is not None), default=None),
        running=max((r for r in running if r is not None), default=None),
        total=total,
    )
    return GenerationResult(
        images=tuple(images),
        request=plan.request,
        backend=backend,
        model=plan.model,
        request_ids=tuple(request_ids),
        timings=timings,
        warnings=tuple(warnings),
        failures=tuple(failures),
    )


def unfetched_images(
    backend: str, outcome: FlowOutcome[CallOutput], cause: BaseException
) -> ResultUnavailableError:
    """The error for a finished (paid) call whose images could not be downloaded.

    It carries the request id and every image URL still missing, so the images can be fetched
    later; it is never a "job failed".
    """
    output = outcome.value
    missing = [image.url for image in output.images if image.data is None and image.url]
    return ResultUnavailableError(
        f"the job finished but {len(missing)} image(s) could not be downloaded ({cause}); "
        "fetch them from `urls` before the provider's retention ends",
        backend=backend,
        request_id=output.request_id or outcome.request_id,
        urls=missing,
    )


def pending_downloads(output: CallOutput) -> bool:
    """Whether a call returned images as URLs only."""
    return any(image.data is None and image.url for image in output.images)


def download_flow(output: CallOutput) -> Flow[CallOutput]:
    """Fetch the image URLs a call returned.

    Run right after the call, inside the same deadline: provider URLs expire and the user paid
    for these images.
    """
    for image in output.images:
        if image.data is None and image.url:
            image.data = yield from _download(image.url)
    return output


def _download(url: str) -> Flow[bytes]:
    if url.startswith("data:"):
        return decode_data_uri(url)[0]
    response = yield from send(HttpRequest("GET", url, retry="idempotent"))
    return response.content


def fetch_flow(url: str) -> Flow[bytes]:
    return (yield from _download(url))
