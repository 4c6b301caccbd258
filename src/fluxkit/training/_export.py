"""Hand a dataset and a training config to ai-toolkit or kohya sd-scripts.

Both pack the photos with `fluxkit.datasets.pack_dataset` (EXIF baked in, captions, dedupe) and
then write the trainer's config with fluxkit's settings (``training-lora.md`` §1.3-1.4):

* ai-toolkit: ``config.yaml`` (``python run.py config.yaml``); FLUX alpha is forced to the rank
  by ai-toolkit, so ``linear_alpha`` is written equal to it;
* kohya: ``dataset.toml`` plus ``train.toml`` (``--config_file``) and ``train.sh`` with
  ``networks.lora_flux``; kohya's default alpha is 1, so ``network_alpha`` is always written.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from fluxkit._exceptions import InvalidRequestError

__all__ = ["export_ai_toolkit", "export_kohya"]


def _check(rank: int, steps: int, learning_rate: float) -> None:
    if not isinstance(rank, int) or not 1 <= rank <= 256:
        raise InvalidRequestError("rank", rank, "1-256")
    if not isinstance(steps, int) or steps < 1:
        raise InvalidRequestError("steps", steps, "an integer >= 1")
    if not 0 < learning_rate < 1:
        raise InvalidRequestError("learning_rate", learning_rate, "0 < lr < 1")


def export_ai_toolkit(
    photos: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    trigger_word: str,
    steps: int = 1000,
    rank: int = 16,
    learning_rate: float = 1e-4,
    base_model: str = "black-forest-labs/FLUX.1-dev",
    resolution: int = 1024,
    save_every: int = 250,
    overwrite: bool = False,
    **pack_options: Any,
) -> Path:
    """Write an ai-toolkit job folder (``images/`` + ``config.yaml``); returns the config path.

    Example:
        ```python
        from fluxkit.training import export_ai_toolkit

        config = export_ai_toolkit("photos/", "tok-aitk", trigger_word="tok", steps=1500)
        # then on the GPU box: python run.py tok-aitk/config.yaml
        ```
    """
    from fluxkit._files import atomic_write
    from fluxkit.datasets import pack_dataset
    from fluxkit.datasets._targets import _yaml

    _check(rank, steps, learning_rate)
    report = pack_dataset(
        photos,
        target="ai-toolkit",
        trigger=trigger_word,
        out=out,
        size=resolution,
        overwrite=overwrite,
        **pack_options,
    )
    folder = Path(out)
    resolutions = [r for r in (512, 768, 1024) if r <= resolution] or [resolution]
    job = {
        "job": "extension",
        "config": {
            "name": f"{trigger_word}_flux_lora",
            "process": [
                {
                    "type": "sd_trainer",
                    "training_folder": "output",
                    "device": "cuda:0",
                    "trigger_word": trigger_word,
                    "network": {"type": "lora", "linear": rank, "linear_alpha": rank},
                    "save": {
                        "dtype": "float16",
                        "save_every": save_every,
                        "max_step_saves_to_keep": 4,
                        "push_to_hub": False,
                    },
                    "datasets": [
                        {
                            "folder_path": str((folder / "images").absolute()),
                            "caption_ext": "txt",
                            "caption_dropout_rate": 0.05,
                            "cache_latents_to_disk": True,
                            "resolution": resolutions,
                        }
                    ],
                    "train": {
                        "batch_size": 1,
                        "steps": steps,
                        "gradient_accumulation_steps": 1,
                        "train_unet": True,
                        "train_text_encoder": False,
                        "gradient_checkpointing": True,
                        "noise_scheduler": "flowmatch",
                        "optimizer": "adamw8bit",
                        "lr": learning_rate,
                        "dtype": "bf16",
                    },
                    "model": {"name_or_path": base_model, "is_flux": True, "quantize": True},
                    "sample": {
                        "sampler": "flowmatch",
                        "sample_every": save_every,
                        "width": 1024,
                        "height": 1024,
                        "prompts": ["photo of [trigger], portrait"],
                        "seed": 42,
                        "walk_seed": True,
                        "guidance_scale": 4,
                        "sample_steps": 20,
                    },
                }
            ],
        },
        "meta": {"name": "[name]", "version": "1.0", "images": len(report.images)},
    }
    text = "# ai-toolkit job written by fluxkit: python run.py config.yaml\n" + _yaml(job)
    return atomic_write(folder / "config.yaml", text.encode(), overwrite=True)


def export_kohya(
    photos: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    trigger_word: str,
    steps: int = 1000,
    rank: int = 16,
    alpha: float | None = None,
    learning_rate: float = 1e-4,
    resolution: int = 1024,
    save_every: int = 250,
    overwrite: bool = False,
    **pack_options: Any,
) -> Path:
    """Write a kohya sd-scripts folder (``images/``, ``dataset.toml``, ``train.toml``,
    ``train.sh``); returns ``train.toml``.

    Example:
        ```python
        from fluxkit.training import export_kohya

        export_kohya("photos/", "tok-kohya", trigger_word="tok", rank=16, alpha=16)
        # edit the model paths in train.toml, then: sh tok-kohya/train.sh
        ```
    """
    from fluxkit._files import atomic_write
    from fluxkit.datasets import pack_dataset

    _check(rank, steps, learning_rate)
    pack_dataset(
        photos,
        target="kohya",
        trigger=trigger_word,
        out=out,
        size=resolution,
        overwrite=overwrite,
        **pack_options,
    )
    folder = Path(out).absolute()
    args: dict[str, Any] = {
        "pretrained_model_name_or_path": "flux1-dev.safetensors",
        "clip_l": "clip_l.safetensors",
        "t5xxl": "t5xxl_fp16.safetensors",
        "ae": "ae.safetensors",
        "dataset_config": str(folder / "dataset.toml"),
        "output_dir": str(folder / "output"),
        "output_name": f"{trigger_word}_flux_lora",
        "save_model_as": "safetensors",
        "network_module": "networks.lora_flux",
        "network_dim": rank,
        "network_alpha": float(alpha if alpha is not None else rank),
        "network_train_unet_only": True,
        "learning_rate": learning_rate,
        "optimizer_type": "AdamW8bit",
        "lr_scheduler": "constant",
        "max_train_steps": steps,
        "save_every_n_steps": save_every,
        "mixed_precision": "bf16",
        "gradient_checkpointing": True,
        "sdpa": True,
        "cache_latents_to_disk": True,
        "cache_text_encoder_outputs": True,
        "guidance_scale": 1.0,
        "timestep_sampling": "flux_shift",
        "model_prediction_type": "raw",
        "seed": 42,
    }
    lines = [
        "# kohya sd-scripts training args written by fluxkit (--config_file train.toml)",
        "# set the four model paths to your FLUX.1 files first",
    ]
    lines += [f"{key} = {json.dumps(value)}" for key, value in args.items()]
    config = atomic_write(folder / "train.toml", ("\n".join(lines) + "\n").encode(), overwrite=True)
    script = (
        "#!/bin/sh\n# run from a kohya sd-scripts checkout (sd3 branch or newer)\n"
        f"accelerate launch flux_train_network.py --config_file {json.dumps(str(config))}\n"
    )
    atomic_write(folder / "train.sh", script.encode(), overwrite=True)
    return config
