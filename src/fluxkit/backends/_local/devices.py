"""Device and dtype choice, and the memory switches for smaller GPUs."""

from __future__ import annotations

import re
from typing import Any, Literal

from fluxkit._exceptions import ConfigurationError, MissingDependencyError

__all__ = [
    "Offload",
    "apply_memory_options",
    "check_offload",
    "pick_device",
    "pick_dtype",
    "require_local_extra",
]

Offload = Literal["none", "model", "sequential"]
_MIN_DIFFUSERS = (0, 42)

_DTYPES = {
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
    "float16": "float16",
    "fp16": "float16",
    "half": "float16",
    "float32": "float32",
    "fp32": "float32",
    "float": "float32",
}


def require_local_extra() -> None:
    """Raise `MissingDependencyError` naming the first missing ``local`` package.

    Only looks the packages up (no import), so constructing the backend stays cheap.
    """
    import importlib.metadata
    import importlib.util

    for package in ("torch", "diffusers", "transformers", "peft", "safetensors"):
        if importlib.util.find_spec(package) is None:
            raise MissingDependencyError("the diffusers backend", extra="local", package=package)
    # Older diffusers ignore the `dtype=` argument and would load FLUX in float32 (twice the
    # memory); FLUX IP-Adapter, LoRA hotswap and the converters used here are all present by then.
    version = importlib.metadata.version("diffusers")
    if tuple(int(part) for part in re.findall(r"\d+", version)[:2]) < _MIN_DIFFUSERS:
        wanted = ".".join(map(str, _MIN_DIFFUSERS))
        raise MissingDependencyError(
            f"the diffusers backend (diffusers {version} is too old)",
            extra="local",
            package=f"diffusers>={wanted}",
        )


def pick_device(requested: str | None = None) -> str:
    """``requested``, else the first of cuda, mps, cpu that this machine has.

    A bare ``"cuda"`` becomes ``"cuda:<current device>"`` so the device key names one GPU.
    """
    import torch

    if requested is None:
        if torch.cuda.is_available():
            requested = "cuda"
        elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            requested = "mps"
        else:
            requested = "cpu"
    try:
        device = torch.device(requested)
    except (RuntimeError, TypeError) as exc:
        raise ConfigurationError(
            f"device={requested!r} is not a torch device; use 'cuda', 'cuda:1', 'mps' or 'cpu'"
        ) from exc
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigurationError(
                f"device={requested!r} but torch sees no CUDA GPU (torch {torch.__version__}); "
                "install a CUDA build of torch or use device='cpu'"
            )
        index = torch.cuda.current_device() if device.index is None else device.index
        return f"cuda:{index}"
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigurationError(f"device={requested!r} but MPS is not available on this machine")
    return str(device)


def pick_dtype(device: str, requested: Any = None) -> Any:
    """``requested`` (a torch dtype or a name such as ``"bf16"``), else bf16 on GPUs, fp32 on CPU.

    FLUX is trained in bfloat16; fp16 overflows in its activations, and CPUs run fp32 fastest.
    """
    import torch

    if requested is None:
        return torch.float32 if device == "cpu" else torch.bfloat16
    if isinstance(requested, torch.dtype):
        return requested
    name = _DTYPES.get(str(requested).lower().removeprefix("torch."))
    if name is None:
        raise ConfigurationError(
            f"dtype={requested!r} is not supported; use 'bfloat16', 'float16' or 'float32'"
        )
    return getattr(torch, name)


def check_offload(offload: str, device: str) -> None:
    """Refuse offload modes that cannot work on ``device``."""
    if offload not in ("none", "model", "sequential"):
        raise ConfigurationError(f"offload={offload!r}; use 'none', 'model' or 'sequential'")
    if offload != "none" and device == "cpu":
        raise ConfigurationError(
            f"offload={offload!r} moves models between CPU and a GPU; there is no GPU here "
            "(device='cpu'): use offload='none'"
        )


def apply_memory_options(
    pipe: Any, device: str, *, offload: Offload, vae_tiling: bool, vae_slicing: bool
) -> None:
    """Place ``pipe`` on ``device``, or let accelerate's offload hooks move it piecewise.

    ``offload="model"`` keeps one whole model (T5, transformer, VAE) on the GPU at a time: about
    half the memory of FLUX.1-dev in bf16 for a few seconds per image. ``"sequential"`` moves
    layer by layer: the least memory and much slower. Tiling/slicing bound the VAE's memory at
    large sizes and batches.
    """
    check_offload(offload, device)
    if offload == "none":
        pipe.to(device)
    else:
        try:
            if offload == "model":
                pipe.enable_model_cpu_offload(device=device)
            else:
                pipe.enable_sequential_cpu_offload(device=device)
        except ImportError as exc:  # offload hooks come from accelerate
            raise MissingDependencyError(
                f"offload={offload!r}", extra="local", package="accelerate"
            ) from exc
    if vae_tiling:
        pipe.vae.enable_tiling()
    if vae_slicing:
        pipe.vae.enable_slicing()
