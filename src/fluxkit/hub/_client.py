"""huggingface_hub, imported on first use, and its errors translated into fluxkit's.

Errors are re-raised ``from None``: the original exception holds the request, and the request
holds the ``Authorization`` header.
"""

from __future__ import annotations

import re
from types import ModuleType
from typing import Any

from fluxkit._config import Secret
from fluxkit._exceptions import (
    AuthenticationError,
    FluxkitError,
    MissingDependencyError,
    ProviderError,
    ProviderRejectedError,
    ProviderUnavailableError,
)

__all__ = ["REPO_ID", "check_repo_id", "hub_error", "load_hub", "make_api"]

REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}$")
_BACKEND = "hub"


def load_hub() -> ModuleType:
    """The ``huggingface_hub`` module.

    Raises:
        MissingDependencyError: not installed (``pip install "fluxkit[hub]"``).
    """
    try:
        import huggingface_hub
    except ImportError:
        raise MissingDependencyError(
            "Hugging Face upload", extra="hub", package="huggingface_hub"
        ) from None
    return huggingface_hub


def make_api(token: Secret | None, endpoint: str | None) -> Any:
    """An ``HfApi`` for ``endpoint`` (None: ``HF_ENDPOINT`` or huggingface.co)."""
    from fluxkit._version import __version__
    from fluxkit.lora._sources import hub_endpoint

    hub = load_hub()
    return hub.HfApi(
        # Read HF_ENDPOINT now, not when huggingface_hub was imported, so inspection (httpx)
        # and upload (HfApi) always talk to the same Hub.
        endpoint=hub_endpoint(endpoint),
        token=token.reveal() if token else False,
        library_name="fluxkit",
        library_version=__version__,
    )


def check_repo_id(repo_id: str) -> str:
    """Validate ``owner/name`` before any network call."""
    from fluxkit._exceptions import InvalidRequestError

    if not isinstance(repo_id, str) or not REPO_ID.match(repo_id) or ".." in repo_id:
        raise InvalidRequestError(
            "repo_id", repo_id, "owner/name (letters, digits, '-', '_', '.'; up to 96 each)"
        )
    return repo_id


def hub_error(exc: BaseException, action: str) -> FluxkitError:
    """Translate a huggingface_hub/httpx2 exception raised while doing ``action``."""
    if isinstance(exc, FluxkitError):
        return exc
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    server = getattr(exc, "server_message", None) or None
    request_id = getattr(exc, "request_id", None)
    kwargs: dict[str, Any] = {
        "backend": _BACKEND,
        "status_code": status,
        "request_id": request_id,
        "provider_message": server,
    }
    detail = f": {server}" if server else ""
    if status in (401, 403):
        hint = "the token was refused or cannot write there; check HF_TOKEN / token="
        error: ProviderError = AuthenticationError(f"{action} failed ({hint}){detail}", **kwargs)
    elif status == 404:
        error = ProviderRejectedError(
            f"{action} failed: repository not found (or not visible with this token){detail}",
            **kwargs,
        )
    elif status is not None and status < 500 and status != 429:
        error = ProviderRejectedError(f"{action} was refused{detail}", **kwargs)
    else:
        reason = detail or f" ({type(exc).__name__})"
        error = ProviderUnavailableError(f"{action} failed{reason}", **kwargs)
    return error
