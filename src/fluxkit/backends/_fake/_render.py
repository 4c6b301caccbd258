"""Deterministic stand-in images: the same prompt, seed, size and LoRAs give the same pixels."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["render_fake_image"]


def render_fake_image(
    prompt: str,
    seed: int,
    width: int,
    height: int,
    *,
    loras: Sequence[tuple[str, float]] = (),
    init_image: Image.Image | None = None,
    strength: float = 0.75,
) -> Image.Image:
    """A smooth gradient with discs: colours from the prompt, layout from the seed.

    LoRAs tint the image by their scale, and an init image shows through by ``1 - strength``,
    so tests can see that every input reached the "model".
    """
    import numpy as np
    from PIL import Image

    digest = hashlib.sha256(prompt.encode()).digest()
    start = np.frombuffer(digest[0:3], dtype=np.uint8).astype(np.float32)
    end = np.frombuffer(digest[3:6], dtype=np.uint8).astype(np.float32)
    rng = np.random.default_rng(seed)
    angle = rng.uniform(0, 2 * np.pi)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    ramp = (np.cos(angle) * xs / width + np.sin(angle) * ys / height + 1.0) / 2.0
    image = start + (end - start) * ramp[..., None]
    for _ in range(3):
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        radius = rng.uniform(0.08, 0.25) * min(width, height)
        colour = rng.uniform(0, 255, size=3).astype(np.float32)
        inside = (xs - cx) ** 2 + (ys - cy) ** 2 < radius**2
        image[inside] = colour
    for source, scale in loras:
        tint = np.frombuffer(hashlib.sha256(source.encode()).digest()[:3], dtype=np.uint8)
        image = image * (1 - 0.3 * min(abs(scale), 1.0)) + tint.astype(np.float32) * 0.3 * min(
            abs(scale), 1.0
        )
    if init_image is not None:
        base = np.asarray(init_image.convert("RGB").resize((width, height)), dtype=np.float32)
        image = base * (1 - strength) + image * strength
    return Image.fromarray(np.clip(image, 0, 255).astype(np.uint8), "RGB")
