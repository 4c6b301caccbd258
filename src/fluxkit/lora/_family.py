"""Which base model a LoRA was trained for: from its metadata first, then from its keys.

Trainer metadata is the stronger evidence (kohya writes ``modelspec.architecture`` and
``ss_base_model_version``; ai-toolkit writes ``ss_base_model_version: flux.1``). fal and diffusers
files carry none, so key names and tensor shapes decide: FLUX.1 has 19 double and 38 single
blocks with a 3072-wide hidden state.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Literal

from fluxkit.lora._header import TensorEntry
from fluxkit.lora._layout import module_of

__all__ = ["BaseModel", "FLUX1_FAMILIES", "detect_base_model"]

BaseModel = Literal[
    "flux-dev", "flux-schnell", "flux", "flux2", "chroma", "sd3", "sdxl", "sd2", "sd1", "unknown"
]
"""``flux`` means FLUX.1 with the variant (dev or schnell) not recorded in the file."""

FLUX1_FAMILIES: frozenset[str] = frozenset({"flux-dev", "flux-schnell", "flux"})

_FLUX1_HIDDEN = 3072
_FLUX1_DOUBLE, _FLUX1_SINGLE = 19, 38
_ARCHITECTURES: tuple[tuple[str, BaseModel], ...] = (
    ("flux-1-dev", "flux-dev"),
    ("flux-1-schnell", "flux-schnell"),
    ("flux-2", "flux2"),
    ("flux.2", "flux2"),
    ("flux-1", "flux"),
    ("flux", "flux"),
    ("chroma", "chroma"),
    ("stable-diffusion-3", "sd3"),
    ("stable-diffusion-xl", "sdxl"),
    ("stable-diffusion-v2", "sd2"),
    ("stable-diffusion-v1", "sd1"),
)
_VERSIONS: tuple[tuple[str, BaseModel], ...] = (
    ("flux2", "flux2"),
    ("flux.2", "flux2"),
    ("flux", "flux"),
    ("chroma", "chroma"),
    ("sd3", "sd3"),
    ("sdxl", "sdxl"),
    ("sd_v2", "sd2"),
    ("sd_v1", "sd1"),
)
_NAME_KEYS = ("ss_sd_model_name", "ss_base_model", "modelspec.title", "base_model")


def detect_base_model(
    tensors: Mapping[str, TensorEntry], metadata: Mapping[str, str]
) -> tuple[BaseModel, str]:
    """``(family, evidence)``; evidence says what decided it, for reports.

    Example:
        ```python
        from fluxkit.lora._family import detect_base_model

        detect_base_model({}, {"modelspec.architecture": "flux-1-dev/lora"})
        # ("flux-dev", "metadata modelspec.architecture='flux-1-dev/lora'")
        ```
    """
    found = _from_metadata(metadata)
    if found is not None:
        return found
    return _from_keys(tensors)


def _from_metadata(metadata: Mapping[str, str]) -> tuple[BaseModel, str] | None:
    arch = metadata.get("modelspec.architecture", "").lower()
    for needle, family in _ARCHITECTURES:
        if arch.startswith(needle):
            return family, f"metadata modelspec.architecture={arch!r}"
    version = metadata.get("ss_base_model_version", "").lower()
    for needle, family in _VERSIONS:
        if version.startswith(needle):
            if family == "flux":
                family = _variant_from_names(metadata)
            return family, f"metadata ss_base_model_version={version!r}"
    return None


def _variant_from_names(metadata: Mapping[str, str]) -> BaseModel:
    names = " ".join(metadata.get(k, "") for k in _NAME_KEYS).lower()
    if "schnell" in names:
        return "flux-schnell"
    if re.search(r"flux[\w.-]*dev", names):
        return "flux-dev"
    return "flux"


def _from_keys(tensors: Mapping[str, TensorEntry]) -> tuple[BaseModel, str]:
    keys = list(tensors)
    joined = "\n".join(keys)
    if re.search(r"lora_unet_(input_blocks|output_blocks|middle_block)", joined) or (
        "lora_te2_" in joined and "lora_unet_" in joined and "double_blocks" not in joined
    ):
        return "sdxl", "keys (SDXL UNet/two CLIP text encoders)"
    if re.search(r"(lora_unet_down_blocks|unet\.down_blocks)", joined):
        return "sd1", "keys (SD 1.x/2.x UNet)"
    double = _max_index(joined, r"(?:double_blocks|(?<!single_)transformer_blocks)[._](\d+)[._]")
    single = _max_index(joined, r"single(?:_transformer)?_blocks[._](\d+)[._]")
    if double is None and single is None:
        return "unknown", "keys (no known transformer or UNet block names)"
    hidden = _hidden_size(tensors)
    if single is None and "double_blocks" not in joined and hidden not in (None, _FLUX1_HIDDEN):
        return "sd3", f"keys (MMDiT blocks, hidden size {hidden})"
    if (
        hidden not in (None, _FLUX1_HIDDEN)
        or (double or 0) >= _FLUX1_DOUBLE
        or (single or 0) >= _FLUX1_SINGLE
    ):
        return "flux2", f"keys (FLUX-style blocks beyond FLUX.1's shape, hidden {hidden})"
    return "flux", "keys (FLUX.1 double/single blocks; dev or schnell not recorded)"


def _max_index(text: str, pattern: str) -> int | None:
    values = [int(m) for m in re.findall(pattern, text)]
    return max(values) if values else None


def _hidden_size(tensors: Mapping[str, TensorEntry]) -> int | None:
    """Input width of attention query/qkv LoRAs (A/down is ``[rank, in_features]``)."""
    for key, entry in tensors.items():
        module, role = module_of(key)
        if (
            role == "down"
            and len(entry.shape) == 2
            and re.search(r"(attn[._]to_q|img_attn[._]qkv|qkv_lora1|linear1)$", module)
        ):
            return entry.shape[1]
    return None
