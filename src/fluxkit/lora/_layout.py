"""Which trainer's key layout a LoRA uses, its targeted modules and its ranks.

Detection follows the order diffusers' ``FluxLoraLoaderMixin.lora_state_dict`` uses, so fluxkit
and diffusers agree on what a file is: kohya (``.lora_down``) first, then XLabs (``processor``),
then BFL/ComfyUI names, then diffusers/PEFT.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from fluxkit.lora._header import TensorEntry

__all__ = ["Layout", "LayoutFacts", "analyse_layout", "module_of"]

Layout = Literal["diffusers", "kohya", "xlabs", "bfl", "unknown"]

# Longest first: ".lora.down.weight" must win over ".down.weight".
_SUFFIXES = (
    (".lora_A.default.weight", "down"),
    (".lora_B.default.weight", "up"),
    (".lora.down.weight", "down"),
    (".lora.up.weight", "up"),
    (".lora_A.weight", "down"),
    (".lora_B.weight", "up"),
    (".lora_down.weight", "down"),
    (".lora_up.weight", "up"),
    (".down.weight", "down"),
    (".up.weight", "up"),
    (".alpha", "alpha"),
    (".dora_scale", "extra"),
    (".diff_b", "extra"),
    (".diff", "extra"),
)
_INDEX_DOT = re.compile(r"\.\d+(?=\.|$)")
_INDEX_UNDERSCORE = re.compile(r"_\d+(?=_|$)")
_TE_PREFIXES = ("text_encoder", "lora_te", "te1.", "te2.", "te_")


@dataclass(frozen=True)
class LayoutFacts:
    """What the key names and shapes alone say about a LoRA."""

    layout: Layout
    ranks: tuple[int, ...]
    targets: tuple[str, ...]
    module_groups: tuple[str, ...]
    module_count: int
    alpha_tensors: tuple[TensorEntry, ...]
    text_encoder: bool
    notes: tuple[str, ...]


def module_of(key: str) -> tuple[str, str]:
    """``(module, role)`` of a tensor key; role is down, up, alpha, extra or weight."""
    for suffix, role in _SUFFIXES:
        if key.endswith(suffix):
            return key[: -len(suffix)], role
    return key, "weight"


def detect_layout(keys: Iterable[str]) -> Layout:
    """Classify key names into a layout (same precedence as diffusers).

    Example:
        ```python
        from fluxkit.lora._layout import detect_layout

        detect_layout(["lora_unet_single_blocks_0_linear1.lora_down.weight"])   # "kohya"
        ```
    """
    keys = list(keys)
    if any(k.endswith((".lora_down.weight", ".lora_up.weight")) for k in keys):
        return "kohya"
    if any(".processor." in k and "_lora" in k for k in keys):
        return "xlabs"
    if any(".lora_A." in k or ".lora_B." in k or ".lora.down." in k for k in keys):
        if any(k.endswith("query_norm.scale") for k in keys) or any(
            re.search(r"(^|\.)(double_blocks|single_blocks)\.\d+\.", k) for k in keys
        ):
            return "bfl"
        return "diffusers"
    return "unknown"


def analyse_layout(tensors: Mapping[str, TensorEntry]) -> LayoutFacts:
    """Layout, ranks, targets and module groups from the header's tensor table."""
    layout = detect_layout(tensors)
    ranks: set[int] = set()
    modules: set[str] = set()
    alphas: list[TensorEntry] = []
    notes: list[str] = []
    for key, entry in tensors.items():
        module, role = module_of(key)
        if role == "down" and entry.shape:
            ranks.add(entry.shape[0])
            modules.add(module)
        elif role == "alpha":
            alphas.append(entry)
        elif role == "extra" and key.endswith(".dora_scale"):
            notes.append("DoRA weights (dora_scale) are not supported by diffusers and are dropped")
    targets = sorted({_generalise(m) for m in modules})
    groups = sorted({_group(t) for t in targets})
    text_encoder = any(t.startswith(_TE_PREFIXES) or "text_encoder" in t for t in targets)
    if layout == "unknown" and tensors:
        notes.append("no LoRA key layout recognised (lora_A/B, lora_down/up, XLabs processor)")
    return LayoutFacts(
        layout=layout,
        ranks=tuple(sorted(ranks)),
        targets=tuple(targets),
        module_groups=tuple(groups),
        module_count=len(modules),
        alpha_tensors=tuple(alphas),
        text_encoder=text_encoder,
        notes=tuple(dict.fromkeys(notes)),
    )


def _generalise(module: str) -> str:
    """Block indices become ``*``: ``transformer_blocks.7.attn.to_q`` → ``transformer_blocks.*.attn.to_q``."""
    for prefix in (
        "base_model.model.",
        "diffusion_model.",
        "transformer.",
        "model.diffusion_model.",
    ):
        if module.startswith(prefix):
            module = module[len(prefix) :]
    if "." in module:
        return _INDEX_DOT.sub(".*", module)
    return _INDEX_UNDERSCORE.sub("_*", module)


def _group(target: str) -> str:
    t = target.lower()
    if t.startswith(("lora_te3", "text_encoder_3")):
        return "text_encoder.t5"
    if t.startswith(("lora_te2", "text_encoder_2", "te2.")):
        return "text_encoder_2"
    if t.startswith(_TE_PREFIXES) or "text_encoder" in t:
        return "text_encoder.clip"
    if t.startswith(
        (
            "lora_unet_input",
            "lora_unet_output",
            "lora_unet_middle",
            "lora_unet_down",
            "lora_unet_up",
            "lora_unet_mid",
            "unet.",
        )
    ):
        return "unet"
    if "single" in t:
        block = "single_blocks"
    elif "double_blocks" in t or "transformer_blocks" in t:
        block = "double_blocks"
    elif any(
        part in t for part in ("embed", "img_in", "txt_in", "time_in", "vector_in", "guidance_in")
    ):
        return "embedders"
    elif any(part in t for part in ("final_layer", "norm_out", "proj_out")):
        return "final_layer"
    else:
        return "other"
    if any(part in t for part in ("norm1", "norm.linear", "_mod", ".mod", "modulation")):
        return f"{block}.modulation"
    if block == "single_blocks":
        return block
    if any(part in t for part in ("ff", "mlp")):
        return f"{block}.mlp"
    return f"{block}.attention"
