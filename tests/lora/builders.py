"""Tiny LoRA files with the real key layouts of each trainer (shapes shrunk where harmless)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

HIDDEN = 3072


def _pair(
    tensors: dict[str, np.ndarray],
    module: str,
    rank: int,
    width: int,
    a: str,
    b: str,
    dtype: type = np.float16,
) -> None:
    tensors[f"{module}.{a}.weight"] = np.zeros((rank, width), dtype)
    tensors[f"{module}.{b}.weight"] = np.zeros((8, rank), dtype)


def diffusers_lora(path: Path, *, rank: int = 16, metadata: dict[str, str] | None = None) -> Path:
    tensors: dict[str, np.ndarray] = {}
    for i in range(2):
        for module in ("attn.to_q", "attn.to_k", "attn.to_v", "proj_mlp", "proj_out"):
            _pair(
                tensors,
                f"transformer.single_transformer_blocks.{i}.{module}",
                rank,
                HIDDEN,
                "lora_A",
                "lora_B",
            )
        for module in ("attn.to_q", "attn.add_q_proj", "ff.net.0.proj", "ff_context.net.2"):
            _pair(
                tensors,
                f"transformer.transformer_blocks.{i}.{module}",
                rank,
                HIDDEN,
                "lora_A",
                "lora_B",
            )
    save_file(tensors, str(path), metadata=metadata or {"format": "pt"})
    return path


def kohya_lora(
    path: Path,
    *,
    rank: int = 8,
    alpha: float = 1.0,
    te: bool = False,
    metadata: dict[str, str] | None = None,
) -> Path:
    tensors: dict[str, np.ndarray] = {}
    modules = [f"lora_unet_single_blocks_{i}_linear1" for i in range(3)]
    modules += [f"lora_unet_double_blocks_{i}_img_attn_qkv" for i in range(2)]
    modules += ["lora_unet_double_blocks_0_img_mlp_0", "lora_unet_double_blocks_0_img_mod_lin"]
    if te:
        modules.append("lora_te1_text_model_encoder_layers_0_self_attn_q_proj")
    for module in modules:
        width = 768 if module.startswith("lora_te1") else HIDDEN
        _pair(tensors, module, rank, width, "lora_down", "lora_up")
        tensors[f"{module}.alpha"] = np.array(alpha, dtype=np.float32)
    meta = {
        "ss_network_module": "networks.lora_flux",
        "ss_network_dim": str(rank),
        "ss_network_alpha": str(alpha),
        "ss_base_model_version": "flux1",
        "modelspec.architecture": "flux-1-dev/lora",
        "ss_max_train_steps": "1200",
        "ss_tag_frequency": '{"1_ohwx man": {"ohwx": 20, "man": 7}}',
    }
    save_file(tensors, str(path), metadata={**meta, **(metadata or {})})
    return path


def xlabs_lora(path: Path, *, rank: int = 16) -> Path:
    tensors: dict[str, np.ndarray] = {}
    for i in range(2):
        for module in ("qkv_lora1", "proj_lora1", "qkv_lora2", "proj_lora2"):
            _pair(tensors, f"double_blocks.{i}.processor.{module}", rank, HIDDEN, "down", "up")
    save_file(tensors, str(path))
    return path


def bfl_lora(path: Path, *, rank: int = 4) -> Path:
    tensors: dict[str, np.ndarray] = {}
    _pair(tensors, "diffusion_model.double_blocks.0.img_attn.qkv", rank, HIDDEN, "lora_A", "lora_B")
    _pair(tensors, "diffusion_model.single_blocks.3.linear1", rank, HIDDEN, "lora_A", "lora_B")
    tensors["diffusion_model.double_blocks.0.img_attn.norm.query_norm.scale"] = np.ones(
        128, np.float16
    )
    save_file(tensors, str(path))
    return path


def sdxl_lora(path: Path, *, rank: int = 8) -> Path:
    tensors: dict[str, np.ndarray] = {}
    for module, width in (
        ("lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q", 640),
        ("lora_unet_output_blocks_0_1_transformer_blocks_0_attn2_to_k", 1280),
        ("lora_te1_text_model_encoder_layers_0_self_attn_q_proj", 768),
        ("lora_te2_text_model_encoder_layers_0_self_attn_q_proj", 1280),
    ):
        _pair(tensors, module, rank, width, "lora_down", "lora_up")
        tensors[f"{module}.alpha"] = np.array(float(rank), dtype=np.float32)
    save_file(tensors, str(path), metadata={"ss_base_model_version": "sdxl_base_v1-0"})
    return path
