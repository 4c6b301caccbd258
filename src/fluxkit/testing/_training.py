"""Training routes shared by the fal and Replicate emulators: trained LoRA files, logs, tars.

The LoRA files are real safetensors with FLUX.1-dev shapes (hidden 3072), written without torch
so ``fluxkit.lora.inspect_lora`` reads them as a trainer's output would be read.
"""

from __future__ import annotations

import io
import json
import struct
import tarfile
from typing import Any

__all__ = [
    "FAL_TRAINING_ENDPOINTS",
    "REPLICATE_TRAINER",
    "REPLICATE_TRAINER_VERSION",
    "REPLICATE_TRAINING_INPUT",
    "flux_lora_bytes",
    "training_log_lines",
    "weights_tar",
]

FAL_TRAINING_ENDPOINTS = {
    "fal-ai/flux-lora-fast-training": "trigger_word",
    "fal-ai/flux-lora-portrait-trainer": "trigger_phrase",
}
REPLICATE_TRAINER = "ostris/flux-dev-lora-trainer"
REPLICATE_TRAINER_VERSION = "e440909d3512c31646ee2e0c7d6f6f4923224863a6a10c494606e79fb5844497"
# TrainingInput of that version (schemas/replicate-ostris--flux-dev-lora-trainer.openapi.json)
REPLICATE_TRAINING_INPUT: dict[str, dict[str, Any]] = {
    "steps": {"type": "integer", "minimum": 3, "maximum": 6000, "default": 1000},
    "hf_token": {"type": "string", "format": "password"},
    "lora_rank": {"type": "integer", "minimum": 1, "maximum": 128, "default": 16},
    "optimizer": {"type": "string", "default": "adamw8bit"},
    "wandb_run": {"type": "string"},
    "batch_size": {"type": "integer", "default": 1},
    "hf_repo_id": {"type": "string"},
    "resolution": {"type": "string", "default": "512,768,1024"},
    "autocaption": {"type": "boolean", "default": True},
    "input_images": {"type": "string", "format": "uri"},
    "trigger_word": {"type": "string", "default": "TOK"},
    "wandb_entity": {"type": "string"},
    "learning_rate": {"type": "number", "default": 0.0004},
    "wandb_api_key": {"type": "string", "format": "password"},
    "wandb_project": {"type": "string", "default": "flux_train_replicate"},
    "autocaption_prefix": {"type": "string"},
    "autocaption_suffix": {"type": "string"},
    "wandb_save_interval": {"type": "integer", "minimum": 1, "default": 100},
    "caption_dropout_rate": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.05},
    "wandb_sample_prompts": {"type": "string"},
    "cache_latents_to_disk": {"type": "boolean", "default": False},
    "wandb_sample_interval": {"type": "integer", "minimum": 1, "default": 100},
    "layers_to_optimize_regex": {"type": "string"},
    "skip_training_and_use_pretrained_hf_lora_url": {"type": "string"},
}


def flux_lora_bytes(
    rank: int = 4, *, hidden: int = 3072, metadata: dict[str, str] | None = None
) -> bytes:
    """A zero-valued PEFT LoRA on two FLUX.1 attention projections, as safetensors bytes.

    ``hidden=3072`` is FLUX.1's width; pass another width (and no metadata) to get a file the
    inspector reads as another family (e.g. FLUX.2-shaped).
    """
    tensors: dict[str, tuple[int, int]] = {}
    for module in ("transformer_blocks.0.attn.to_q", "transformer_blocks.0.attn.to_k"):
        tensors[f"transformer.{module}.lora_A.weight"] = (rank, hidden)
        tensors[f"transformer.{module}.lora_B.weight"] = (hidden, rank)
    header: dict[str, Any] = {}
    offset = 0
    for name, shape in tensors.items():
        size = shape[0] * shape[1] * 2
        header[name] = {
            "dtype": "F16",
            "shape": list(shape),
            "data_offsets": [offset, offset + size],
        }
        offset += size
    header["__metadata__"] = {"format": "pt", **(metadata or {})}
    encoded = json.dumps(header).encode()
    encoded += b" " * (-len(encoded) % 8)
    return struct.pack("<Q", len(encoded)) + encoded + bytes(offset)


def training_log_lines(done: int, total: int, *, style: str) -> list[str]:
    """Log lines up to step ``done``: ``fal`` (``step N/T loss=...``) or ``ai-toolkit``'s tqdm
    bar with ``lr``/``loss`` postfix (``\\r``-joined frames, as Replicate shows them)."""
    every = max(1, total // 50)
    shown = [s for s in range(1, done + 1) if s % every == 0 or s == done]
    if style == "fal":
        lines = ["Preprocessing images...", "Training started"]
        return lines + [f"step {s}/{total} loss={_loss(s):.4f}" for s in shown]
    frames = [
        f"flux_train_replicate: {100 * s // total:3d}%|{'#' * (10 * s // total):<10}| {s}/{total}"
        f" [00:01<00:01,  1.05s/it, lr: 4.0e-04 loss: {_loss(s):.3e}]"
        for s in shown
    ]
    head = ["Downloaded base weights in 1.2s", "Captioning images..."]
    return head + (["\r".join(frames)] if frames else [])


def _loss(step: int) -> float:
    """A falling loss curve for the emulated logs."""
    return 0.5 * 0.98**step + 0.05


def weights_tar(lora: bytes, config: bytes = b"job: extension\n") -> bytes:
    """The trainer's output ``.tar``: ``output/flux_train_replicate/lora.safetensors``."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, data in (
            ("output/flux_train_replicate/lora.safetensors", lora),
            ("output/flux_train_replicate/config.yaml", config),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()
