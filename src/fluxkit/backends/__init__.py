"""Backend registry: name -> module, imported only when the backend is first used.

Each backend lives in ``fluxkit/backends/<name>.py`` and exports ``backend_class``,
``CAPABILITIES`` and ``MODEL_ALIASES``. A backend whose optional packages are missing raises
`fluxkit.MissingDependencyError` naming the extra to install. See ``new_backend.md``.
"""

from __future__ import annotations

import importlib
from typing import Any

from fluxkit._exceptions import MissingDependencyError, UnknownBackendError
from fluxkit.backends._base import (
    Call,
    CallOutput,
    CancelToken,
    HttpBackend,
    ImageOutput,
    LocalBackend,
)

__all__ = [
    "BACKEND_EXTRAS",
    "BACKEND_NAMES",
    "Call",
    "CallOutput",
    "CancelToken",
    "HttpBackend",
    "ImageOutput",
    "LocalBackend",
    "get_backend_class",
]

# name -> the extra whose packages the backend needs at run time ("" = core only)
BACKEND_EXTRAS: dict[str, str] = {
    "comfyui": "",  # native API over httpx; the websocket (optional) needs fluxkit[comfyui]
    "diffusers": "local",
    "fake": "",
    "fal": "",  # speaks the queue and storage protocols itself; fal-client is not needed
    "huggingface": "",  # the Inference Providers router, through the fal/Replicate/Together flows
    "replicate": "",
    "runpod": "",  # speaks RunPod's queue API itself; the worker side is fluxkit[worker]
    "together": "",
}
BACKEND_NAMES: tuple[str, ...] = tuple(BACKEND_EXTRAS)


def get_backend_class(name: str) -> type[Any]:
    """The backend class registered as ``name``.

    Raises:
        UnknownBackendError: the name is not registered (the message lists the valid ones).
        MissingDependencyError: the backend's optional packages are not installed.
    """
    if name not in BACKEND_EXTRAS:
        raise UnknownBackendError(name, available=BACKEND_NAMES)
    try:
        module = importlib.import_module(f"fluxkit.backends.{name}")
    except ImportError as exc:  # pragma: no cover - exercised with extras uninstalled
        raise MissingDependencyError(
            f"the {name} backend", extra=BACKEND_EXTRAS[name] or name, package=exc.name
        ) from exc
    return module.backend_class  # type: ignore[no-any-return]
