"""fluxkit: one typed SDK for FLUX image generation with LoRAs, sync and async, on every backend.

```python
import fluxkit

gen = fluxkit.Generator("fal")
result = gen.generate("portrait of tok person", seed=7, n=2,
                      loras=[fluxkit.LoRA("hf://me/tok-lora/lora.safetensors", scale=0.9)])
result.images[0].save("out.png")
```

``import fluxkit`` stays light: the public names below are imported on first use (httpx,
pydantic and numpy cost more than all of fluxkit's own start-up).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from fluxkit._exceptions import (
    AuthenticationError,
    BillingError,
    BudgetExceeded,
    ConfigurationError,
    DeadlineExceeded,
    FluxkitError,
    InvalidRequestError,
    JobCancelledError,
    JobFailedError,
    JobMayExistError,
    MissingCredentialsError,
    MissingDependencyError,
    OutputExistsError,
    ProviderError,
    ProviderRejectedError,
    ProviderUnavailableError,
    RateLimitError,
    ResponseFormatError,
    ResultUnavailableError,
    UnknownBackendError,
    UnsupportedFeatureError,
)
from fluxkit._version import __version__

if TYPE_CHECKING:
    from fluxkit._capabilities import Capabilities
    from fluxkit._config import Secret
    from fluxkit._events import (
        Completed,
        Event,
        Log,
        Queued,
        Retrying,
        Started,
        Step,
        Submitted,
    )
    from fluxkit._generator import AsyncGenerator, GenerationParams, Generator
    from fluxkit._images import InputImage
    from fluxkit._record import read_record
    from fluxkit._replay import replay
    from fluxkit._results import CallFailure, GeneratedImage, GenerationResult, Timings
    from fluxkit._types import SIZE_PRESETS, GenerationRequest, ImageLike, LoRA
    from fluxkit._uploads import UploadCache
    from fluxkit._warnings import (
        ContentFlagged,
        FluxkitWarning,
        ModelChosen,
        ProviderNotice,
        RequestCoerced,
    )

UnsupportedFeature = UnsupportedFeatureError
"""Alias of :class:`UnsupportedFeatureError`."""

_LAZY: dict[str, str] = {
    "AsyncGenerator": "fluxkit._generator",
    "CallFailure": "fluxkit._results",
    "Capabilities": "fluxkit._capabilities",
    "Completed": "fluxkit._events",
    "ContentFlagged": "fluxkit._warnings",
    "Event": "fluxkit._events",
    "FluxkitWarning": "fluxkit._warnings",
    "GeneratedImage": "fluxkit._results",
    "GenerationParams": "fluxkit._generator",
    "GenerationRequest": "fluxkit._types",
    "GenerationResult": "fluxkit._results",
    "Generator": "fluxkit._generator",
    "ImageLike": "fluxkit._types",
    "InputImage": "fluxkit._images",
    "Log": "fluxkit._events",
    "LoRA": "fluxkit._types",
    "ProviderNotice": "fluxkit._warnings",
    "Queued": "fluxkit._events",
    "RequestCoerced": "fluxkit._warnings",
    "ModelChosen": "fluxkit._warnings",
    "Retrying": "fluxkit._events",
    "SIZE_PRESETS": "fluxkit._types",
    "Secret": "fluxkit._config",
    "Started": "fluxkit._events",
    "Step": "fluxkit._events",
    "Submitted": "fluxkit._events",
    "Timings": "fluxkit._results",
    "UploadCache": "fluxkit._uploads",
    "read_record": "fluxkit._record",
    "replay": "fluxkit._replay",
}

__all__ = [
    "SIZE_PRESETS",
    "AsyncGenerator",
    "AuthenticationError",
    "BillingError",
    "BudgetExceeded",
    "CallFailure",
    "Capabilities",
    "Completed",
    "ConfigurationError",
    "ContentFlagged",
    "DeadlineExceeded",
    "Event",
    "FluxkitError",
    "FluxkitWarning",
    "GeneratedImage",
    "GenerationParams",
    "GenerationRequest",
    "GenerationResult",
    "Generator",
    "ImageLike",
    "InputImage",
    "InvalidRequestError",
    "JobCancelledError",
    "JobFailedError",
    "JobMayExistError",
    "LoRA",
    "Log",
    "MissingCredentialsError",
    "MissingDependencyError",
    "ModelChosen",
    "OutputExistsError",
    "ProviderError",
    "ProviderNotice",
    "ProviderRejectedError",
    "ProviderUnavailableError",
    "Queued",
    "RateLimitError",
    "RequestCoerced",
    "ResponseFormatError",
    "ResultUnavailableError",
    "Retrying",
    "Secret",
    "Started",
    "Step",
    "Submitted",
    "Timings",
    "UnknownBackendError",
    "UnsupportedFeature",
    "UnsupportedFeatureError",
    "UploadCache",
    "__version__",
    "read_record",
    "replay",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'fluxkit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    # Only the public surface (and loaded subpackages), not this module's own imports.
    import types

    submodules = {
        name
        for name, value in globals().items()
        if isinstance(value, types.ModuleType) and value.__name__.startswith("fluxkit.")
    }
    return sorted(set(__all__) | submodules)
