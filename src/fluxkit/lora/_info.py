"""``LoRAInfo``: everything the header says about a LoRA, and the compatibility check."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from fluxkit._exceptions import InvalidRequestError
from fluxkit.lora._family import FLUX1_FAMILIES, BaseModel
from fluxkit.lora._layout import Layout

__all__ = ["LoRAInfo", "normalise_model"]

_MODEL_ALIASES: Mapping[str, BaseModel] = {
    "flux-dev": "flux-dev",
    "flux.1-dev": "flux-dev",
    "flux1-dev": "flux-dev",
    "black-forest-labs/flux.1-dev": "flux-dev",
    "flux-schnell": "flux-schnell",
    "flux.1-schnell": "flux-schnell",
    "flux1-schnell": "flux-schnell",
    "black-forest-labs/flux.1-schnell": "flux-schnell",
    "flux": "flux",
    "flux.1": "flux",
    "flux1": "flux",
}
_FAMILY_NAMES: Mapping[str, str] = {
    "flux-dev": "FLUX.1 [dev]",
    "flux-schnell": "FLUX.1 [schnell]",
    "flux": "FLUX.1 (dev or schnell)",
    "flux2": "FLUX.2",
    "chroma": "Chroma",
    "sd3": "SD3",
    "sdxl": "SDXL",
    "sd2": "SD 2.x",
    "sd1": "SD 1.x",
    "unknown": "unknown",
}


def normalise_model(model: str) -> BaseModel:
    """A model alias or Hub id as a FLUX.1 family name.

    Example:
        ```python
        normalise_model("black-forest-labs/FLUX.1-schnell")   # "flux-schnell"
        ```

    Raises:
        InvalidRequestError: not a FLUX.1 model.
    """
    family = _MODEL_ALIASES.get(model.strip().lower())
    if family is None:
        raise InvalidRequestError(
            "base_model",
            model,
            "flux-dev, flux-schnell, black-forest-labs/FLUX.1-dev or black-forest-labs/FLUX.1-schnell",
        )
    return family


@dataclass(frozen=True)
class LoRAInfo:
    """What a LoRA file's safetensors header says, without reading any weights.

    Attributes:
        source: the path or ``hf://`` reference inspected.
        layout: ``diffusers`` (PEFT), ``kohya``, ``xlabs``, ``bfl`` (BFL/ComfyUI names) or
            ``unknown``.
        base_model: ``flux-dev``, ``flux-schnell``, ``flux`` (FLUX.1, variant not recorded),
            ``flux2``, ``sdxl``, ... or ``unknown``.
        base_model_evidence: what decided ``base_model`` (a metadata key or the key names).
        ranks: distinct LoRA ranks (kohya files may mix per-layer ranks).
        alphas: distinct alphas; empty when unknown.
        alpha_source: ``tensors`` (kohya ``.alpha``), ``metadata``, ``rank`` (PEFT convention:
            alpha equals rank) or ``unknown``.
        targets: targeted modules with block indices generalised to ``*``.
        module_groups: coarse groups (``double_blocks.attention``, ``single_blocks``, ...).
        text_encoder: the LoRA also patches a text encoder.
        tensor_count: tensors in the file.
        module_count: LoRA-patched modules.
        dtypes: tensor dtypes present.
        file_size: bytes, when known.
        metadata: the raw ``__metadata__`` strings.
        trigger_words: from ``modelspec.trigger_phrase`` or the most frequent ``ss_tag_frequency``
            tag.
        notes: things worth knowing (DoRA, kohya alpha 1, unknown keys, ...).
    """

    source: str
    layout: Layout
    base_model: BaseModel
    base_model_evidence: str
    ranks: tuple[int, ...]
    alphas: tuple[float, ...]
    alpha_source: str
    targets: tuple[str, ...]
    module_groups: tuple[str, ...]
    text_encoder: bool
    tensor_count: int
    module_count: int
    dtypes: tuple[str, ...]
    file_size: int | None
    metadata: Mapping[str, str] = field(default_factory=dict)
    trigger_words: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def rank(self) -> int | None:
        """The rank when there is one, the largest otherwise; None when no LoRA tensors."""
        return max(self.ranks) if self.ranks else None

    @property
    def is_flux(self) -> bool:
        """A FLUX.1 (dev or schnell) LoRA in a layout diffusers and the providers load."""
        return self.base_model in FLUX1_FAMILIES and self.layout != "unknown"

    @property
    def base_model_name(self) -> str:
        """Human name of the base model family, e.g. ``FLUX.1 [dev]``."""
        return _FAMILY_NAMES[self.base_model]

    def check_compatible(self, model: str = "flux-dev") -> None:
        """Raise unless the LoRA can be applied to ``model`` (a FLUX.1 alias or Hub id).

        A FLUX.1 LoRA whose variant is not recorded is accepted for dev and schnell (they share
        the architecture); an explicitly recorded other variant is accepted too, as it loads.

        Example:
            ```python
            from fluxkit.lora import inspect_lora

            inspect_lora("tok.safetensors").check_compatible("flux-dev")
            ```

        Raises:
            InvalidRequestError: the file is for another model family or its layout is unknown.
        """
        normalise_model(model)
        if self.layout == "unknown":
            raise InvalidRequestError(
                "path",
                self.source,
                "a LoRA in diffusers/PEFT, kohya, XLabs or BFL layout",
                reason="no LoRA tensors with a known key layout",
            )
        if self.base_model not in FLUX1_FAMILIES:
            raise InvalidRequestError(
                "path",
                self.source,
                f"a FLUX.1 LoRA (for {model})",
                reason=f"this is a {self.base_model_name} LoRA ({self.base_model_evidence})",
            )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``fluxkit lora inspect --json``).

        Example:
            ```python
            json.dumps(inspect_lora("tok.safetensors").to_dict())
            ```
        """
        data = asdict(self)
        data["metadata"] = dict(self.metadata)
        data["rank"] = self.rank
        data["is_flux"] = self.is_flux
        return data

    def summary(self) -> str:
        """A few human-readable lines, as ``fluxkit lora inspect`` prints them.

        Example:
            ```python
            print(inspect_lora("tok.safetensors").summary())
            ```
        """
        size = f"{self.file_size / 1e6:.1f} MB" if self.file_size is not None else "unknown"
        alphas = ", ".join(f"{a:g}" for a in self.alphas) or "unknown"
        lines = [
            f"file:        {self.source} ({size})",
            f"layout:      {self.layout}",
            f"base model:  {self.base_model_name} [{self.base_model_evidence}]",
            f"rank:        {', '.join(map(str, self.ranks)) or 'none'}",
            f"alpha:       {alphas} ({self.alpha_source})",
            f"modules:     {self.module_count} in {', '.join(self.module_groups) or 'none'}",
            f"tensors:     {self.tensor_count} ({', '.join(self.dtypes) or 'no dtype'})",
        ]
        if self.trigger_words:
            lines.append(f"trigger:     {', '.join(self.trigger_words)}")
        training = {k: v for k, v in self.metadata.items() if _is_training_key(k)}
        if training:
            lines.append(
                "training:    " + ", ".join(f"{k}={_short(v)}" for k, v in sorted(training.items()))
            )
        lines.extend(f"note:        {note}" for note in self.notes)
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


_TRAINING_KEYS = (
    "ss_network_dim",
    "ss_network_alpha",
    "ss_learning_rate",
    "ss_max_train_steps",
    "ss_num_train_images",
    "ss_network_module",
    "ss_output_name",
    "modelspec.architecture",
    "modelspec.title",
    "software",
    "training_info",
    "format",
)


def _is_training_key(key: str) -> bool:
    return key in _TRAINING_KEYS


def _short(value: str, limit: int = 60) -> str:
    try:
        parsed = json.loads(value)
        value = json.dumps(parsed, separators=(",", ":")) if not isinstance(parsed, str) else parsed
    except ValueError:
        pass
    return value if len(value) <= limit else value[: limit - 3] + "..."
