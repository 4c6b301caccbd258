"""Sample images for the model card: metadata stripped, prompt recovered when fluxkit made them.

Samples are often the user's own photos or outputs saved with location data; they are
re-encoded from pixels before upload. Images saved by fluxkit carry their generation record, so
their prompt becomes the card's widget text without the user repeating it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Union

from fluxkit._exceptions import InvalidRequestError

__all__ = ["MAX_SAMPLES", "PreparedSample", "SampleLike", "prepare_samples"]

MAX_SAMPLES = 12
_MAX_PIXELS = 64_000_000

SampleLike = Union[str, os.PathLike[str], tuple[Union[str, os.PathLike[str]], str]]  # noqa: UP007
"""An image path, or ``(path, prompt)``."""


@dataclass(frozen=True)
class PreparedSample:
    """A sample ready to upload."""

    path_in_repo: str
    prompt: str
    data: bytes


def prepare_samples(samples: Sequence[SampleLike], trigger: str) -> list[PreparedSample]:
    """Read, clean and name samples ``images/sample_0.jpg``...; prompts default to the record.

    Raises:
        InvalidRequestError: a missing or unreadable sample (named), or too many.
    """
    from fluxkit.datasets._images import DecodeError, decode, encode_jpeg, resize_short_side

    if len(samples) > MAX_SAMPLES:
        raise InvalidRequestError("samples", f"{len(samples)} images", f"at most {MAX_SAMPLES}")
    prepared: list[PreparedSample] = []
    for index, sample in enumerate(samples):
        path, prompt = sample if isinstance(sample, tuple) else (sample, None)
        file = Path(path).expanduser()
        if not file.is_file():
            raise InvalidRequestError(f"samples[{index}]", str(path), "an existing image file")
        raw = file.read_bytes()
        try:
            decoded = decode(raw, draft_side=1024, max_pixels=_MAX_PIXELS)
        except DecodeError as exc:
            raise InvalidRequestError(
                f"samples[{index}]", str(path), "a readable image", reason=str(exc)
            ) from None
        text = prompt or _recorded_prompt(raw) or f"photo of {trigger}"
        data = encode_jpeg(resize_short_side(decoded.image, 1024), quality=92)
        prepared.append(PreparedSample(f"images/sample_{index}.jpg", " ".join(text.split()), data))
    return prepared


def _recorded_prompt(raw: bytes) -> str | None:
    from fluxkit._record import read_record

    try:
        record = read_record(raw)
    except Exception:  # a sample without a readable record is still a sample
        return None
    prompt = record.get("prompt") if record else None
    return prompt if isinstance(prompt, str) and prompt.strip() else None
