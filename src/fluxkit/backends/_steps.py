"""Denoising steps read from a provider's log lines (pure), shared by fal and Replicate.

Hosted FLUX apps print the sampler's tqdm bar in their logs (``50%|█████     | 14/28 [...]``,
the pattern the Replicate SDK's ``Prediction.progress`` parses). fal's log entries carry the
same bars; some apps print ``step 3/28`` instead. Either becomes ``Step`` events.
"""

from __future__ import annotations

import re

__all__ = ["TQDM_BAR", "step_of"]

TQDM_BAR = re.compile(r"(\d+)%\|[^|]*\|\s*(\d+)/(\d+)")
_STEP_WORD = re.compile(r"\bsteps?\s+(\d+)\s*/\s*(\d+)\b", re.IGNORECASE)


def step_of(line: str) -> tuple[int, int] | None:
    """``(current, total)`` when ``line`` reports sampler progress, else None.

    Example:
        ```python
        from fluxkit.backends._steps import step_of

        step_of(" 50%|█████     | 14/28 [00:03<00:03,  4.1it/s]")  # (14, 28)
        step_of("Inference step 3/28")                             # (3, 28)
        step_of("Using seed: 7")                                   # None
        ```
    """
    match = TQDM_BAR.search(line)
    if match is not None:
        current, total = int(match[2]), int(match[3])
    else:
        match = _STEP_WORD.search(line)
        if match is None:
            return None
        current, total = int(match[1]), int(match[2])
    if total <= 0 or not 0 <= current <= total:
        return None
    return current, total
