"""Exact and near-duplicate detection: SHA-256 of the file, and a 64-bit perceptual hash.

The perceptual hash is the classic pHash (DCT of a 32x32 grayscale thumbnail, the 8x8
low-frequency block thresholded at its median), written with numpy so no extra dependency is
needed. Bursts of phone photos land within a few bits of each other; unrelated photos sit
around 32 bits apart.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

__all__ = ["DuplicateIndex", "hamming", "perceptual_hash"]

_SIDE = 32
_KEEP = 8


@lru_cache(maxsize=1)
def _dct_matrix() -> np.ndarray:
    import numpy as np

    n = np.arange(_SIDE)
    matrix = np.cos(math.pi / _SIDE * (n[None, :] + 0.5) * n[:, None])
    matrix[0] *= 1 / math.sqrt(2)
    scaled: np.ndarray = matrix * math.sqrt(2 / _SIDE)
    return scaled


def perceptual_hash(image: Image.Image) -> int:
    """64-bit pHash of ``image``.

    Example:
        ```python
        from PIL import Image
        from fluxkit.datasets._dedupe import perceptual_hash, hamming

        a = Image.open("a.jpg")
        hamming(perceptual_hash(a), perceptual_hash(a.resize((256, 256))))   # small
        ```
    """
    import numpy as np
    from PIL import Image

    thumb = image.convert("L").resize((_SIDE, _SIDE), Image.Resampling.BILINEAR, reducing_gap=2.0)
    pixels = np.asarray(thumb, dtype=np.float64)
    dct = _dct_matrix()
    low = (dct @ pixels @ dct.T)[:_KEEP, :_KEEP].flatten()
    bits = low > np.median(low[1:])
    return int("".join("1" if b else "0" for b in bits), 2)


def hamming(a: int, b: int) -> int:
    """Number of differing bits."""
    return (a ^ b).bit_count()


@dataclass
class DuplicateIndex:
    """Remembers what was kept; answers "is this a duplicate, and of what?"."""

    max_distance: int = 6
    _exact: dict[str, str] = field(default_factory=dict)
    _perceptual: list[tuple[int, str]] = field(default_factory=list)

    def exact(self, digest: str) -> str | None:
        """The kept name with this SHA-256, if any."""
        return self._exact.get(digest)

    def near(self, phash: int) -> tuple[str, int] | None:
        """The closest kept image within ``max_distance`` bits, and the distance."""
        if self.max_distance < 0:
            return None
        best: tuple[str, int] | None = None
        for other, name in self._perceptual:
            distance = hamming(phash, other)
            if distance <= self.max_distance and (best is None or distance < best[1]):
                best = (name, distance)
        return best

    def add(self, digests: tuple[str, ...], phash: int, name: str) -> None:
        for digest in digests:
            self._exact[digest] = name
        self._perceptual.append((phash, name))
