"""The model card: YAML front matter the Hub understands, and a body with usage snippets.

Pure string building (no huggingface_hub), so it is testable and previewable offline. Strings in
the front matter are JSON-quoted, which is valid YAML and escapes anything a prompt may contain.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = ["BASE_MODELS", "CardSample", "render_model_card"]

FluxVariant = Literal["flux-dev", "flux-schnell"]

BASE_MODELS: dict[str, str] = {
    "flux-dev": "black-forest-labs/FLUX.1-dev",
    "flux-schnell": "black-forest-labs/FLUX.1-schnell",
}
_DEV_LICENSE = (
    "license: other\n"
    "license_name: flux-1-dev-non-commercial-license\n"
    "license_link: https://huggingface.co/black-forest-labs/FLUX.1-dev/blob/main/LICENSE.md\n"
)
_TAGS = ("text-to-image", "lora", "diffusers", "template:sd-lora", "flux", "fluxkit")


@dataclass(frozen=True)
class CardSample:
    """A sample image in the repo and the prompt that made it."""

    path_in_repo: str
    prompt: str


def _q(text: str) -> str:
    return json.dumps(text, ensure_ascii=True)


def render_model_card(
    *,
    repo_id: str,
    weight_name: str,
    trigger_word: str,
    base_model: FluxVariant,
    samples: Sequence[CardSample] = (),
    details: Sequence[tuple[str, str]] = (),
    title: str | None = None,
) -> str:
    """The README.md of a FLUX LoRA repo.

    Args:
        repo_id: ``owner/name``.
        weight_name: the ``.safetensors`` file at the repo root.
        trigger_word: the word that triggers the LoRA (``instance_prompt``).
        base_model: ``flux-dev`` (non-commercial licence) or ``flux-schnell`` (apache-2.0).
        samples: images under ``images/`` with their prompts (``widget`` + gallery).
        details: ``(label, value)`` rows for the "Details" table (rank, alpha, layout...).
        title: the heading; defaults to the repo name.

    Example:
        ```python
        from fluxkit.hub import render_model_card

        card = render_model_card(repo_id="me/tok-lora", weight_name="tok.safetensors",
                                 trigger_word="tok", base_model="flux-dev")
        card.splitlines()[1]          # 'base_model: black-forest-labs/FLUX.1-dev'
        ```
    """
    base_id = BASE_MODELS[base_model]
    schnell = base_model == "flux-schnell"
    lines = [
        "---",
        f"base_model: {base_id}",
        "base_model_relation: adapter",
        "library_name: diffusers",
        "pipeline_tag: text-to-image",
    ]
    front = "\n".join(lines) + "\n"
    front += "license: apache-2.0\n" if schnell else _DEV_LICENSE
    front += "tags:\n" + "".join(f"- {_q(tag)}\n" for tag in _TAGS)
    front += f"instance_prompt: {_q(trigger_word)}\n"
    if samples:
        front += "widget:\n" + "".join(
            f"- text: {_q(s.prompt)}\n  output:\n    url: {_q(s.path_in_repo)}\n" for s in samples
        )
    front += "---\n"
    return front + _body(
        repo_id, weight_name, trigger_word, base_id, schnell, samples, details, title
    )


def _body(
    repo_id: str,
    weight_name: str,
    trigger: str,
    base_id: str,
    schnell: bool,
    samples: Sequence[CardSample],
    details: Sequence[tuple[str, str]],
    title: str | None,
) -> str:
    prompt = samples[0].prompt if samples else f"photo of {trigger}"
    steps, guidance = ("4", "0.0") if schnell else ("28", "3.5")
    parts = [f"\n# {title or repo_id.split('/', 1)[1]}\n"]
    if samples:
        parts.append("\n<Gallery />\n")
    parts.append(
        f"\nA FLUX.1 LoRA for [{base_id}](https://huggingface.co/{base_id}), published with "
        "[fluxkit](https://fluxkit.readthedocs.io).\n"
        f"\n## Trigger word\n\nUse `{trigger}` in your prompt.\n"
        "\n## Use it with fluxkit\n\n```python\nimport fluxkit\n\n"
        'gen = fluxkit.Generator("fal")   # or "diffusers", "replicate", "together", ...\n'
        f"result = gen.generate(\n    {_q(prompt)},\n"
        f'    loras=[fluxkit.LoRA("hf://{repo_id}/{weight_name}", scale=1.0)],\n)\n'
        'result.images[0].save("out.png")\n```\n'
        "\n## Use it with diffusers\n\n```python\nimport torch\n"
        "from diffusers import FluxPipeline\n\n"
        f'pipe = FluxPipeline.from_pretrained("{base_id}", torch_dtype=torch.bfloat16).to("cuda")\n'
        f'pipe.load_lora_weights("{repo_id}", weight_name="{weight_name}")\n'
        f"image = pipe({_q(prompt)}, num_inference_steps={steps}, "
        f"guidance_scale={guidance}).images[0]\n```\n"
        "\n## Download\n\n"
        f"[{weight_name}](/{repo_id}/resolve/main/{weight_name}) is the only `.safetensors` file "
        "in this repo, so diffusers and Replicate pick it without a `weight_name`.\n"
    )
    if details:
        parts.append(
            "\n## Details\n\n| | |\n|---|---|\n"
            + "".join(f"| {label} | {value.replace('|', '/')} |\n" for label, value in details)
        )
    if schnell:
        parts.append("\n## License\n\nApache-2.0, as FLUX.1 [schnell].\n")
    else:
        parts.append(
            "\n## License\n\nThe weights fall under the [FLUX.1 [dev] Non-Commercial License]"
            "(https://huggingface.co/black-forest-labs/FLUX.1-dev/blob/main/LICENSE.md).\n"
        )
    return "".join(parts)
