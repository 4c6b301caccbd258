"""Per-trainer layouts: where images and captions go, and the config files each trainer reads.

Facts from the trainers' code (see docs/datasets.md): fal and Replicate take a flat zip of images
with same-stem ``.txt`` captions; ai-toolkit a folder plus a job config; kohya a folder plus a
dataset TOML (and it never applies EXIF orientation itself); the diffusers DreamBooth script an
ImageFolder with ``train/metadata.jsonl`` and square crops.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from fluxkit.datasets._report import ImageEntry

__all__ = ["TARGETS", "Target", "TargetName", "TargetSpec"]

TargetName = Literal["fal", "replicate", "ai-toolkit", "kohya", "diffusers"]
Target = TargetName


@dataclass(frozen=True)
class TargetSpec:
    """How one trainer wants its dataset.

    Attributes:
        name: the target name.
        archive: True for a zip, False for a folder.
        image_dir: folder (inside the output) holding images and captions.
        caption_files: write ``NNNN.txt`` next to each image.
        trigger_required: captions must contain the trigger (fal ignores ``trigger_word`` then).
        square: crop to a square (the diffusers script centre-crops anyway; doing it here keeps
            the subject).
    """

    name: TargetName
    archive: bool
    image_dir: str
    caption_files: bool
    trigger_required: bool
    square: bool

    def image_name(self, index: int) -> str:
        return f"{self.image_dir}{index:04d}.jpg"

    def caption_name(self, index: int) -> str:
        return f"{self.image_dir}{index:04d}.txt"

    def extra_files(
        self, entries: Sequence[ImageEntry], *, trigger: str, size: int, final: Path
    ) -> dict[str, bytes]:
        """Config files written after the images (paths inside them point at ``final``)."""
        if self.name == "ai-toolkit":
            return {"config.yaml": _ai_toolkit_config(trigger, size, final / self.image_dir)}
        if self.name == "kohya":
            return {"dataset.toml": _kohya_toml(trigger, size, final / self.image_dir)}
        if self.name == "diffusers":
            lines = [
                json.dumps({"file_name": Path(e.file).name, "text": e.caption}, ensure_ascii=False)
                for e in entries
            ]
            return {f"{self.image_dir}metadata.jsonl": ("\n".join(lines) + "\n").encode()}
        return {}


TARGETS: Mapping[str, TargetSpec] = {
    "fal": TargetSpec("fal", True, "", True, True, False),
    "replicate": TargetSpec("replicate", True, "", True, False, False),
    "ai-toolkit": TargetSpec("ai-toolkit", False, "images/", True, False, False),
    "kohya": TargetSpec("kohya", False, "images/", True, False, False),
    # datasets ignores a root-level metadata.jsonl in some versions: use train/.
    "diffusers": TargetSpec("diffusers", False, "train/", False, False, True),
}


def _ai_toolkit_config(trigger: str, size: int, folder: Path) -> bytes:
    resolutions = [r for r in (512, 768, 1024) if r <= size] or [size]
    job: dict[str, Any] = {
        "job": "extension",
        "config": {
            "name": f"{trigger}_flux_lora",
            "process": [
                {
                    "type": "sd_trainer",
                    "training_folder": "output",
                    "device": "cuda:0",
                    "trigger_word": trigger,
                    # ai-toolkit forces alpha = rank for FLUX; linear_alpha is kept equal for clarity.
                    "network": {"type": "lora", "linear": 16, "linear_alpha": 16},
                    "save": {
                        "dtype": "float16",
                        "save_every": 250,
                        "max_step_saves_to_keep": 4,
                        "push_to_hub": False,
                    },
                    "datasets": [
                        {
                            "folder_path": str(folder),
                            "caption_ext": "txt",
                            "caption_dropout_rate": 0.05,
                            "shuffle_tokens": False,
                            "cache_latents_to_disk": True,
                            "resolution": resolutions,
                        }
                    ],
                    "train": {
                        "batch_size": 1,
                        "steps": 1000,
                        "gradient_accumulation_steps": 1,
                        "train_unet": True,
                        "train_text_encoder": False,
                        "gradient_checkpointing": True,
                        "noise_scheduler": "flowmatch",
                        "optimizer": "adamw8bit",
                        "lr": 1e-4,
                        "dtype": "bf16",
                    },
                    "model": {
                        "name_or_path": "black-forest-labs/FLUX.1-dev",
                        "is_flux": True,
                        "quantize": True,
                    },
                    "sample": {
                        "sampler": "flowmatch",
                        "sample_every": 250,
                        "width": 1024,
                        "height": 1024,
                        "prompts": ["photo of [trigger] person, portrait"],
                        "neg": "",
                        "seed": 42,
                        "walk_seed": True,
                        "guidance_scale": 4,
                        "sample_steps": 20,
                    },
                }
            ],
        },
        "meta": {"name": "[name]", "version": "1.0"},
    }
    return (
        "# ai-toolkit job written by fluxkit: python run.py config.yaml\n" + _yaml(job)
    ).encode()


def _kohya_toml(trigger: str, size: int, folder: Path) -> bytes:
    lines = [
        "# kohya sd-scripts dataset config written by fluxkit (--dataset_config dataset.toml)",
        "[general]",
        "shuffle_caption = false",
        'caption_extension = ".txt"',
        "keep_tokens = 1",
        "",
        "[[datasets]]",
        f"resolution = {size}",
        "batch_size = 1",
        "enable_bucket = true",
        "bucket_no_upscale = true",
        "",
        "  [[datasets.subsets]]",
        f"  image_dir = {json.dumps(str(folder))}",
        f"  class_tokens = {json.dumps(trigger)}",
        "  num_repeats = 10",
    ]
    return ("\n".join(lines) + "\n").encode()


def _yaml(value: Any, indent: int = 0) -> str:
    """Block YAML for dicts/lists of scalars; strings JSON-quoted (valid YAML)."""
    pad = "  " * indent
    if isinstance(value, dict):
        out = []
        for key, item in value.items():
            if isinstance(item, (dict, list)) and item:
                out.append(f"{pad}{key}:\n{_yaml(item, indent + 1)}")
            else:
                out.append(f"{pad}{key}: {_scalar(item)}\n")
        return "".join(out)
    if isinstance(value, list):
        out = []
        for item in value:
            if isinstance(item, (dict, list)) and item:
                body = _yaml(item, indent + 1)
                out.append(f"{pad}- {body.lstrip()}")
            else:
                out.append(f"{pad}- {_scalar(item)}\n")
        return "".join(out)
    return f"{pad}{_scalar(value)}\n"


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, dict)):
        return "[]" if isinstance(value, list) else "{}"
    return json.dumps(str(value), ensure_ascii=False)
