"""``inspect_lora``: read a LoRA's header (locally or from the Hub) and describe the file."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from fluxkit._config import Secret
from fluxkit.lora._family import detect_base_model
from fluxkit.lora._header import (
    TensorEntry,
    decode_scalar,
    header_length,
    parse_header,
)
from fluxkit.lora._info import LoRAInfo
from fluxkit.lora._layout import analyse_layout
from fluxkit.lora._sources import ByteSource, open_source

if TYPE_CHECKING:
    import httpx

__all__ = ["inspect_lora"]

# Most FLUX LoRA headers fit in 256 KiB (about 1,500 tensors), so one request usually does.
_FIRST_READ = 256 * 1024
# Reading the kohya .alpha scalars is worth it when they sit close together (they do when
# stored as F32 in a 16-bit file: safetensors groups tensors by dtype).
_MAX_ALPHA_SPAN = 1024 * 1024


def inspect_lora(
    source: str | os.PathLike[str],
    *,
    token: str | Secret | None = None,
    endpoint: str | None = None,
    transport: httpx.BaseTransport | None = None,
) -> LoRAInfo:
    """Describe a LoRA file from its safetensors header, without reading the weights.

    Args:
        source: a local ``.safetensors`` path or ``hf://owner/repo[/file.safetensors][@rev]``.
            For a Hub repo without a file name the only root ``.safetensors`` is used.
        token: Hub token for private repos (else ``HF_TOKEN``); never logged.
        endpoint: Hub base URL (else ``HF_ENDPOINT``, else ``https://huggingface.co``).
        transport: an httpx transport, for tests against an emulator.

    Returns:
        A `LoRAInfo`: layout, base model, ranks, alphas, targets, dtypes, size, metadata.

    Raises:
        PickleFormatError: a ``.bin``/``.ckpt``/``.pt`` pickle (refused: it could run code).
        InvalidRequestError: not a readable safetensors file.
        AuthenticationError: the Hub refused access (private repo without a valid token).

    Example:
        ```python
        from fluxkit.lora import inspect_lora

        info = inspect_lora("hf://me/tok-lora/lora.safetensors")
        info.layout, info.base_model, info.rank      # ("diffusers", "flux-dev", 16)
        info.check_compatible("flux-dev")
        ```
    """
    byte_source = open_source(source, token=token, endpoint=endpoint, transport=transport)
    try:
        return _inspect(byte_source)
    finally:
        byte_source.close()


def _inspect(source: ByteSource) -> LoRAInfo:
    first = source.read(0, _FIRST_READ)
    length = header_length(source.name, first[:8], source.size)
    raw = first[8 : 8 + length]
    if len(raw) < length:
        raw += source.read(len(first), 8 + length - len(first))
    header = parse_header(source.name, raw, source.size)
    facts = analyse_layout(header.tensors)
    family, evidence = detect_base_model(header.tensors, header.metadata)
    alphas, alpha_source = _alphas(
        source, header.data_start, facts.alpha_tensors, header.metadata, facts.ranks
    )
    notes = list(facts.notes)
    if alpha_source == "tensors" and facts.ranks and alphas and max(alphas) < min(facts.ranks) / 4:
        notes.append(
            f"alpha {min(alphas):g} with rank {max(facts.ranks)} scales the LoRA down "
            f"{max(facts.ranks) / min(alphas):g}x (kohya's default alpha is 1)"
        )
    if len(facts.ranks) > 1:
        notes.append("layers have different ranks")
    return LoRAInfo(
        source=source.name,
        layout=facts.layout,
        base_model=family,
        base_model_evidence=evidence,
        ranks=facts.ranks,
        alphas=alphas,
        alpha_source=alpha_source,
        targets=facts.targets,
        module_groups=facts.module_groups,
        text_encoder=facts.text_encoder,
        tensor_count=len(header.tensors),
        module_count=facts.module_count,
        dtypes=tuple(sorted({t.dtype for t in header.tensors.values()})),
        file_size=source.size,
        metadata=dict(header.metadata),
        trigger_words=_trigger_words(header.metadata),
        notes=tuple(notes),
    )


def _alphas(
    source: ByteSource,
    data_start: int,
    tensors: Sequence[TensorEntry],
    metadata: Mapping[str, str],
    ranks: Sequence[int],
) -> tuple[tuple[float, ...], str]:
    scalars = [t for t in tensors if t.nbytes <= 8]
    if scalars:
        low = min(t.offsets[0] for t in scalars)
        high = max(t.offsets[1] for t in scalars)
        if high - low <= _MAX_ALPHA_SPAN:
            blob = source.read(data_start + low, high - low)
            values = {
                value
                for t in scalars
                if (value := decode_scalar(t.dtype, blob[t.offsets[0] - low : t.offsets[1] - low]))
                is not None
            }
            if values:
                return tuple(sorted(values)), "tensors"
    from_metadata = _alpha_from_metadata(metadata)
    if from_metadata is not None:
        return (from_metadata,), "metadata"
    if ranks and not tensors:
        # PEFT/ai-toolkit/fal convention: no alpha stored means alpha == rank (scale 1).
        return tuple(float(r) for r in ranks), "rank"
    return (), "unknown"


def _alpha_from_metadata(metadata: Mapping[str, str]) -> float | None:
    candidates = [metadata.get("ss_network_alpha")]
    adapter = metadata.get("lora_adapter_metadata")
    if adapter:
        try:
            config = json.loads(adapter)
            candidates.append(config.get("transformer.lora_alpha") or config.get("lora_alpha"))
        except (ValueError, AttributeError):
            pass
    for value in candidates:
        try:
            if value is not None:
                return float(value)
        except (TypeError, ValueError):
            continue
    return None


def _trigger_words(metadata: Mapping[str, str]) -> tuple[str, ...]:
    phrase = metadata.get("modelspec.trigger_phrase", "").strip()
    if phrase:
        return (phrase,)
    try:
        frequency = json.loads(metadata.get("ss_tag_frequency", "") or "{}")
    except ValueError:
        return ()
    counts: dict[str, int] = {}
    if isinstance(frequency, dict):
        for tags in frequency.values():
            if isinstance(tags, dict):
                for tag, count in tags.items():
                    if isinstance(count, int):
                        counts[str(tag).strip()] = counts.get(str(tag).strip(), 0) + count
    if not counts:
        return ()
    return (max(counts.items(), key=lambda item: item[1])[0],)
