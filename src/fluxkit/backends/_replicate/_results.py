"""What Replicate's answers mean: a finished prediction's images, a refused create's error (pure)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from fluxkit._core._errors import error_from_response
from fluxkit._exceptions import (
    JobCancelledError,
    JobFailedError,
    ProviderError,
    ProviderRejectedError,
    ResponseFormatError,
)
from fluxkit._warnings import ContentFlagged, ProviderNotice
from fluxkit.backends._base import CallOutput, ImageOutput
from fluxkit.backends._replicate._progress import reported_seed, timings

if TYPE_CHECKING:
    from fluxkit._core import HttpResponse
    from fluxkit.backends._base import Call
    from fluxkit.backends._replicate._inputs import BuiltInput
    from fluxkit.backends._replicate._progress import PredictionWatcher

__all__ = ["outcome", "prediction_of", "refusal"]

_NSFW = re.compile(r"nsfw|flagged as sensitive", re.IGNORECASE)
_FIELD = re.compile(r"^\s*-\s*input\.([\w.]+):", re.MULTILINE)


def prediction_of(response: HttpResponse, backend: str) -> dict[str, Any]:
    """The prediction object in ``response`` (create, get and cancel all answer with one)."""
    try:
        body = response.json()
    except ValueError:
        body = response.text
    if not isinstance(body, dict) or not isinstance(body.get("id"), str):
        raise ResponseFormatError(
            "expected a prediction object",
            backend=backend,
            body=body,
            status_code=response.status_code,
        )
    return body


def outcome(
    backend: str,
    call: Call,
    prediction: dict[str, Any],
    built: BuiltInput,
    watcher: PredictionWatcher,
) -> CallOutput:
    prediction_id, status = str(prediction["id"]), prediction.get("status")
    warnings = list(built.warnings)
    queued, running = timings(prediction)
    error = str(prediction.get("error") or "")
    if status == "failed" and _NSFW.search(error):
        # The safety checker refused the image: cog-flux fails the prediction when every
        # image is flagged. A warning (not an error) keeps the call's siblings' images.
        warnings.append(ContentFlagged(call.index, backend, dropped=True))
        return CallOutput([], prediction_id, warnings, queued, running)
    if status == "failed":
        raise JobFailedError(
            error or "prediction failed",
            backend=backend,
            request_id=prediction_id,
            logs=watcher.lines,
        )
    if status in ("canceled", "aborted"):
        why = (
            "its deadline passed before it started (aborted)" if status == "aborted" else "canceled"
        )
        raise JobCancelledError(f"prediction {why}", backend=backend, request_id=prediction_id)
    output = prediction.get("output")
    urls = [output] if isinstance(output, str) else output
    if not isinstance(urls, list) or not urls or not all(isinstance(u, str) for u in urls):
        raise ResponseFormatError(
            "succeeded without image URLs",
            backend=backend,
            request_id=prediction_id,
            body=prediction,
        )
    seeds = list(call.seeds)
    used = reported_seed(prediction.get("logs"))
    if used is not None and len(urls) == 1 and used != seeds[0]:
        # cog-flux treats seed 0 as "random" (`if not seed`); report the seed really used.
        warnings.append(
            ProviderNotice(
                f"replicate used seed {used} for image {call.index} (asked for {seeds[0]})"
            )
        )
        seeds[0] = used
    images = [
        ImageOutput(
            seed=seeds[i] if i < len(seeds) else None,
            width=built.width,
            height=built.height,
            format=built.format,
            url=url,
        )
        for i, url in enumerate(urls)
    ]
    return CallOutput(images, prediction_id, warnings, queued, running)


def refusal(backend: str, response: HttpResponse) -> ProviderError:
    """The error for a refused create; 4xx name the offending input when Replicate does.

    Replicate answers RFC 7807-style ``{"title", "detail", "status"}``; input validation
    (422) lists fields in ``invalid_fields`` and as ``- input.<field>: ...`` lines.
    """
    error = error_from_response(backend, response)
    if not isinstance(error, ProviderRejectedError) or error.field:
        return error
    body = error.body if isinstance(error.body, dict) else {}
    field: str | None = None
    invalid = body.get("invalid_fields")
    if isinstance(invalid, list) and invalid and isinstance(invalid[0], dict):
        field = str(invalid[0].get("field") or "") or None
    elif isinstance(body.get("detail"), str) and (match := _FIELD.search(body["detail"])):
        field = match[1]
    if field is None:
        return error
    field = field.removeprefix("input.")
    return ProviderRejectedError(
        f"request refused (field {field}): {error.provider_message or response.status_code}",
        field=field,
        backend=backend,
        status_code=response.status_code,
        provider_message=error.provider_message,
        body=error.body,
    )
