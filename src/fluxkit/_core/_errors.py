"""Map a provider's error answer to the fluxkit error tree (pure)."""

from __future__ import annotations

from typing import Any

from fluxkit._core._retry import parse_retry_after
from fluxkit._core._wire import HttpResponse
from fluxkit._exceptions import (
    AuthenticationError,
    ProviderError,
    ProviderRejectedError,
    ProviderUnavailableError,
    RateLimitError,
)

__all__ = ["error_from_response", "provider_message"]


def provider_message(body: Any) -> tuple[str | None, str | None]:
    """The provider's message and, when it names one, the offending field.

    Understands the shapes fal (``detail``: str or FastAPI list), Replicate (``detail``/``title``),
    Together/OpenAI (``error: {message, param}``), RunPod (``error``) and plain text use.
    """
    if isinstance(body, str):
        return (body.strip() or None), None
    if not isinstance(body, dict):
        return None, None
    invalid = body.get("invalid_fields")
    if isinstance(invalid, list) and invalid and isinstance(invalid[0], dict):
        # Replicate 422: {"detail": "...", "invalid_fields": [{"field": "input.seed", ...}]}
        field = str(invalid[0].get("field") or "").removeprefix("input.") or None
        text = body.get("detail") or invalid[0].get("description")
        return (str(text) if text else None), field
    detail = body.get("detail")
    if isinstance(detail, list) and detail and isinstance(detail[0], dict):
        first = detail[0]
        loc = first.get("loc") or ()
        field = ".".join(str(part) for part in loc if part not in ("body",)) or None
        return str(first.get("msg") or first), field
    if isinstance(detail, str):
        return detail, None
    error = body.get("error")
    if isinstance(error, dict):
        return (str(error.get("message")) if error.get("message") else None), error.get("param")
    if isinstance(error, str):
        return error, None
    for key in ("message", "title"):
        if isinstance(body.get(key), str):
            return str(body[key]), None
    return None, None


def _decoded(response: HttpResponse) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text


def error_from_response(
    backend: str, response: HttpResponse, *, request_id: str | None = None, now: float = 0.0
) -> ProviderError:
    """The fluxkit error for a final non-2xx answer; ``now`` (Unix time) dates Retry-After."""
    body = _decoded(response)
    message, field = provider_message(body)
    status = response.status_code
    text = message or f"HTTP {status}"
    common: dict[str, Any] = {
        "backend": backend,
        "request_id": request_id,
        "status_code": status,
        "provider_message": message,
        "body": body,
    }
    if status in (401, 403):
        return AuthenticationError(f"credentials refused: {text}", **common)
    if status == 429:
        retry_after = parse_retry_after(response.headers, now=now)
        return RateLimitError(f"rate limited: {text}", retry_after=retry_after, **common)
    if status >= 500:
        return ProviderUnavailableError(f"provider error: {text}", **common)
    if 400 <= status < 500:
        where = f" (field {field})" if field else ""
        return ProviderRejectedError(f"request refused{where}: {text}", field=field, **common)
    return ProviderError(f"unexpected answer: {text}", **common)
