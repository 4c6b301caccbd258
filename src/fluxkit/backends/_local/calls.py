"""One fluxkit `Call` in, pipeline arguments out, and images back."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fluxkit._events import Event, Step
from fluxkit._exceptions import InvalidRequestError
from fluxkit._images import InputImage
from fluxkit.backends._base import Call, CancelToken, ImageOutput

__all__ = ["RESERVED", "encode_output", "pipeline_arguments", "step_callback", "to_pil"]

# Pipeline arguments fluxkit sets from the request; extra= may pass any other __call__ argument
# (negative_prompt, true_cfg_scale, max_sequence_length, ...).
RESERVED = frozenset(
    [
        "prompt",
        "height",
        "width",
        "num_inference_steps",
        "guidance_scale",
        "generator",
        "num_images_per_prompt",
        "image",
        "strength",
        "ip_adapter_image",
        "output_type",
        "return_dict",
        "callback_on_step_end",
        "callback_on_step_end_tensor_inputs",
        "latents",
    ]
)


def pipeline_arguments(
    call: Call,
    *,
    backend: str,
    emit: Callable[[Event], None],
    token: CancelToken,
    max_sequence_length: int | None,
) -> dict[str, Any]:
    """The ``FluxPipeline.__call__`` arguments for ``call`` (text-to-image part)."""
    import torch

    request = call.request
    # One CPU generator per image: image k depends only on seeds[k] (not on n, the batch or the
    # device), so seed+1 alone reproduces the second image of an n=2 call.
    generators = [torch.Generator("cpu").manual_seed(seed) for seed in call.seeds]
    kwargs: dict[str, Any] = {
        "prompt": request.prompt,
        "height": request.height,
        "width": request.width,
        "num_inference_steps": request.steps,
        "guidance_scale": request.guidance if request.guidance is not None else 0.0,
        "num_images_per_prompt": len(call.seeds),
        "generator": generators if len(generators) > 1 else generators[0],
        "output_type": "pil",
        "callback_on_step_end": step_callback(backend, call.index, emit, token),
    }
    if max_sequence_length is not None:
        kwargs["max_sequence_length"] = max_sequence_length
    for key, value in request.extra.items():
        if key in RESERVED:
            raise InvalidRequestError(
                f"extra.{key}",
                value,
                "a pipeline argument fluxkit does not set itself (use the request field instead)",
            )
        kwargs[key] = value
    return kwargs


def step_callback(
    backend: str, job: int, emit: Callable[[Event], None], token: CancelToken
) -> Callable[..., dict[str, Any]]:
    """diffusers' ``callback_on_step_end``: one ``Step`` per step, and the cancellation point."""

    def on_step_end(pipe: Any, step: int, timestep: Any, tensors: dict[str, Any]) -> dict[str, Any]:
        emit(Step(step + 1, pipe.num_timesteps, job=job))
        # Raising here stops at this step boundary, and also skips the VAE decode that setting
        # pipe._interrupt would still run after the loop.
        token.raise_if_cancelled(backend)
        return tensors

    return on_step_end


def to_pil(image: InputImage) -> Any:
    """An RGB PIL image from an init/reference image (URLs are fetched)."""
    from fluxkit._core._media import open_image

    if image.data is None and image.url:
        # Through the driver, so a URL input gets the same retries and error mapping as anywhere.
        import httpx

        from fluxkit._drivers import FlowContext, run_flow
        from fluxkit._planning import fetch_flow

        with httpx.Client(follow_redirects=True) as client:
            data = run_flow(fetch_flow(image.url), client, FlowContext("diffusers")).value
        # what the URL served gets the same verification as bytes passed in (caps, truncation)
        return open_image(InputImage.from_any(data, field="image").data or b"").convert("RGB")
    return image.to_pil().convert("RGB")


def encode_output(image: Any, seed: int, fmt: str) -> ImageOutput:
    """A pipeline PIL image as fluxkit's `ImageOutput`, encoded as ``fmt``."""
    from fluxkit._core._media import encode_image

    data = encode_image(image, fmt)
    return ImageOutput(seed=seed, width=image.width, height=image.height, format=fmt, data=data)
