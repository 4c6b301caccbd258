"""``hf-inference``: Hugging Face's own serverless inference, one round trip per image (pure).

``POST {router}/hf-inference/models/{repo}`` with ``{"inputs": prompt, "parameters": {width,
height, num_inference_steps, guidance_scale, seed, ...}}`` answers the image's bytes
(``huggingface_hub``'s ``HFInferenceTask``; the client asks ``Accept: image/png``). There is no job
id, no cancel and no server-side deadline: like Together, a deadline abandons the request.
A 503 while the model loads is a refusal the driver retries (nothing ran).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from fluxkit._core import Flow, HttpRequest, send
from fluxkit._core._errors import error_from_response
from fluxkit._core._media import image_size, sniff_format
from fluxkit._exceptions import ResponseFormatError
from fluxkit._warnings import ProviderNotice
from fluxkit.backends._base import Call, CallOutput, ImageOutput
from fluxkit.backends._huggingface._models import _DEV

__all__ = ["CAPABILITIES", "hf_inference_flow", "payload"]

_TIMEOUT = 300.0
"""Socket timeout of the one request: it spans the whole generation (the deadline still wins)."""

CAPABILITIES = replace(_DEV, max_loras=0, notes="no LoRAs beside the model's own")


def payload(call: Call) -> dict[str, Any]:
    """The request body for ``call`` (the text-to-image task's inputs and parameters)."""
    request = call.request
    parameters: dict[str, Any] = {
        "width": request.width,
        "height": request.height,
        "seed": call.seeds[0],
    }
    if request.steps is not None:
        parameters["num_inference_steps"] = request.steps
    if request.guidance is not None:
        parameters["guidance_scale"] = request.guidance
    parameters.update(request.extra)  # negative_prompt, scheduler, ...
    return {"inputs": request.prompt, "parameters": parameters}


def hf_inference_flow(call: Call, url: str, *, backend: str) -> Flow[CallOutput]:
    """Generate one image at ``url`` (``{router}/hf-inference/models/{repo}``)."""
    wanted = call.request.output_format
    response = yield from send(
        HttpRequest(
            "POST",
            url,
            headers={"accept": f"image/{wanted}"},
            json=payload(call),
            retry="submit",
            submit_grace=False,  # nothing to cancel: an answer past the deadline helps no one
            raise_for_status=False,
            timeout=_TIMEOUT,
        )
    )
    request_id = response.header("x-request-id")
    if not response.ok:
        raise error_from_response(backend, response, request_id=request_id)
    data = response.content
    found = sniff_format(data) if data else None
    if found is None:
        raise ResponseFormatError(
            f"expected image bytes, got {response.header('content-type') or 'nothing'}",
            backend=backend,
            request_id=request_id,
            body=response.text[:500],
        )
    width, height = image_size(data)
    warnings: list[Warning] = []
    if found != wanted:
        warnings.append(ProviderNotice(f"hf-inference returned {found}, not {wanted}"))
    image = ImageOutput(seed=call.seeds[0], width=width, height=height, format=found, data=data)
    return CallOutput([image], request_id=request_id, warnings=warnings)
