"""What a fluxkit worker accepts: shared by the worker (which enforces it) and the ``runpod``
backend (which checks requests against it before paying). Pure: no heavy imports.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from fluxkit._capabilities import Capabilities
from fluxkit._exceptions import ConfigurationError

__all__ = ["WorkerLimits"]


def _int(environ: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigurationError(f"{name}={raw!r}: expected an integer") from None
    if not low <= value <= high:
        raise ConfigurationError(f"{name}={value}: expected {low} to {high}")
    return value


@dataclass(frozen=True)
class WorkerLimits:
    """A worker's limits, set on the worker by environment variables.

    Give the ``runpod`` backend the same values as the endpoint's environment
    (``Generator("runpod", limits=WorkerLimits(max_loras=2))``) and requests beyond them fail
    before any job is submitted.

    Attributes:
        max_loras: LoRAs per request (``FLUXKIT_MAX_LORAS``, default 4).
        max_images: images per job (``FLUXKIT_MAX_IMAGES``, default 4).
        max_side: largest width or height (``FLUXKIT_MAX_SIDE``, default 2048).
        max_steps: most denoising steps (``FLUXKIT_MAX_STEPS``, default 50).
        img2img: init images accepted (``FLUXKIT_IMG2IMG``, default on).
        reference_image: reference images accepted (``FLUXKIT_IP_ADAPTER`` set).
    """

    max_loras: int = 4
    max_images: int = 4
    max_side: int = 2048
    max_steps: int = 50
    img2img: bool = True
    reference_image: bool = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> WorkerLimits:
        """The limits the environment sets (``FLUXKIT_MAX_*``)."""
        env = os.environ if environ is None else environ
        return cls(
            max_loras=_int(env, "FLUXKIT_MAX_LORAS", cls.max_loras, 0, 16),
            max_images=_int(env, "FLUXKIT_MAX_IMAGES", cls.max_images, 1, 16),
            max_side=_int(env, "FLUXKIT_MAX_SIDE", cls.max_side, 256, 2048),
            max_steps=_int(env, "FLUXKIT_MAX_STEPS", cls.max_steps, 1, 100),
            img2img=env.get("FLUXKIT_IMG2IMG", "1").strip().lower() not in ("0", "false", "no"),
            reference_image=bool(env.get("FLUXKIT_IP_ADAPTER", "").strip()),
        )

    def capabilities(self, *, default_steps: int = 28, guidance: bool = True) -> Capabilities:
        """The capability-table entry for a worker with these limits."""
        return Capabilities(
            max_loras=self.max_loras,
            img2img=self.img2img,
            reference_image=self.reference_image,
            max_images_per_call=self.max_images,
            seeds_per_image=True,
            max_side=self.max_side,
            max_steps=self.max_steps,
            default_steps=min(default_steps, self.max_steps),
            default_guidance=3.5 if guidance else None,
            guidance=guidance,
            output_formats=("png", "jpeg", "webp"),
            notes="fluxkit's RunPod worker; limits from its FLUXKIT_MAX_* environment",
        )
