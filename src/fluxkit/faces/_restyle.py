"""Overlay, then a FLUX img2img pass to give the pasted face the target's brushwork and light.

``overlay_then_restyle`` takes a `fluxkit.Generator`; ``aoverlay_then_restyle`` takes a
`fluxkit.AsyncGenerator` and runs the CPU work (detection, warping, decoding) in a worker
thread so the event loop stays responsive. If the restyle fails and ``fallback`` is on, the plain
composite comes back with a `RestyleFailed` warning: a usable picture beats an error.
"""

from __future__ import annotations

import inspect
import math
import os
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

from fluxkit._exceptions import (
    DeadlineExceeded,
    FluxkitError,
    InvalidRequestError,
    ProviderError,
    UnsupportedFeatureError,
)
from fluxkit.faces._align import Fit
from fluxkit.faces._blend import Blend
from fluxkit.faces._composite import Composite, overlay_face
from fluxkit.faces._errors import RestyleFailed
from fluxkit.faces._face import FaceDetector
from fluxkit.faces._io import FaceImageLike
from fluxkit.faces._styles import style_prompt

if TYPE_CHECKING:
    from PIL import Image
    from typing_extensions import Unpack

    from fluxkit._generator import AsyncGenerator, Generator
    from fluxkit._results import GenerationResult

__all__ = ["OverlayOptions", "RestyleResult", "aoverlay_then_restyle", "overlay_then_restyle"]

# Failures of the restyle step that the overlay can stand in for. A bad argument is not one:
# it would fail the same way next time, so it is raised.
_RECOVERABLE = (ProviderError, DeadlineExceeded, UnsupportedFeatureError)


class OverlayOptions(TypedDict, total=False):
    """Keyword arguments passed through to `overlay_face`."""

    fit: Fit
    scale: float
    blend: Blend
    color_match: float
    feather: float
    align_eyes: bool
    face_index: int | None
    headshot_face_index: int | None
    detector: str | FaceDetector


@dataclass(frozen=True, eq=False)
class RestyleResult:
    """What `overlay_then_restyle` returns.

    Attributes:
        image: the final picture: restyled, or the composite when the restyle was skipped or
            failed. Always the target's size.
        composite: the overlay before restyling.
        generation: the img2img result (seed, timings, record), or None without a restyle.
        prompt: the prompt sent (a preset's text included), or None.
        warnings: `RestyleFailed` when the fallback was used, plus the generator's own.
    """

    image: Image.Image
    composite: Composite
    generation: GenerationResult | None
    prompt: str | None
    warnings: tuple[Warning, ...] = ()

    @property
    def restyled(self) -> bool:
        """True when `image` came from the img2img pass."""
        return self.generation is not None

    def save(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
        """Write `image` atomically (format from the suffix) and return the path.

        Raises ``OutputExistsError`` if ``path`` exists, unless ``overwrite=True``.
        """
        from fluxkit.faces._io import save_image

        return save_image(self.image, path, overwrite=overwrite)


def overlay_then_restyle(
    generator: Generator,
    target: FaceImageLike,
    headshot: FaceImageLike,
    prompt: str | None = None,
    *,
    style: str | None = None,
    strength: float = 0.35,
    seed: int | None = None,
    skip_restyle: bool = False,
    fallback: bool = True,
    **overlay: Unpack[OverlayOptions],
) -> RestyleResult:
    """Composite ``headshot``'s face onto ``target``, then restyle it with FLUX img2img.

    Args:
        generator: a `fluxkit.Generator` on a backend with img2img.
        target: the picture whose face is replaced.
        headshot: the picture the face comes from.
        prompt: what the restyle should look like; combined with ``style`` when both are given.
        style: a preset name from `STYLE_PRESETS` (``"van-gogh"``, ``"watercolour"``...).
        strength: img2img denoise; 0.3-0.45 keeps the identity and matches the brushwork.
        seed: the generation seed (random when None).
        skip_restyle: return the composite without calling the generator.
        fallback: on a provider failure, return the composite with a `RestyleFailed`
            warning instead of raising.
        **overlay: passed to `overlay_face` (``fit``, ``scale``, ``blend``...).

    Raises:
        FaceNotFoundError, MultipleFacesError, UnreadableImageError: see `overlay_face`.
        InvalidRequestError: neither ``prompt`` nor ``style``, or a bad ``strength``.
        ProviderError: the restyle failed and ``fallback`` is off.

    Example:
        ```python
        import fluxkit
        from fluxkit.faces import overlay_then_restyle

        with fluxkit.Generator("fal") as gen:
            result = overlay_then_restyle(gen, "painting.png", "me.jpg", style="van-gogh", seed=7)
        result.save("me_van_gogh.png")
        result.warnings   # (RestyleFailed(...),) if fal failed and the overlay was returned
        ```
    """
    if inspect.iscoroutinefunction(getattr(generator, "generate", None)):
        raise InvalidRequestError(
            "generator", generator, "a fluxkit.Generator", reason="use aoverlay_then_restyle"
        )
    text = _prompt(prompt, style, strength, skip_restyle)
    composite = overlay_face(target, headshot, **overlay)
    if text is None:
        return RestyleResult(composite.image, composite, None, None)
    try:
        generation = generator.generate(
            text,
            image=composite.image,
            strength=strength,
            seed=seed,
            size=_size(generator, composite.image.size),
        )
        return _finish(composite, generation, text)
    except _RECOVERABLE as exc:
        return _fall_back(exc, composite, text, generator.backend, fallback)


async def aoverlay_then_restyle(
    generator: AsyncGenerator,
    target: FaceImageLike,
    headshot: FaceImageLike,
    prompt: str | None = None,
    *,
    style: str | None = None,
    strength: float = 0.35,
    seed: int | None = None,
    skip_restyle: bool = False,
    fallback: bool = True,
    **overlay: Unpack[OverlayOptions],
) -> RestyleResult:
    """The async twin of `overlay_then_restyle`, for a `fluxkit.AsyncGenerator`.

    Detection, warping and decoding run in a worker thread (``anyio.to_thread.run_sync``).

    Example:
        ```python
        import fluxkit
        from fluxkit.faces import aoverlay_then_restyle

        async def main() -> None:
            async with fluxkit.AsyncGenerator("fal") as gen:
                result = await aoverlay_then_restyle(gen, "painting.png", "me.jpg", style="neon")
            result.save("me_neon.png")
        ```
    """
    import anyio.to_thread

    if not inspect.iscoroutinefunction(getattr(generator, "generate", None)):
        raise InvalidRequestError(
            "generator", generator, "a fluxkit.AsyncGenerator", reason="use overlay_then_restyle"
        )
    text = _prompt(prompt, style, strength, skip_restyle)
    composite = await anyio.to_thread.run_sync(partial(overlay_face, target, headshot, **overlay))
    if text is None:
        return RestyleResult(composite.image, composite, None, None)
    try:
        generation = await generator.generate(
            text,
            image=composite.image,
            strength=strength,
            seed=seed,
            size=_size(generator, composite.image.size),
        )
        return await anyio.to_thread.run_sync(_finish, composite, generation, text)
    except _RECOVERABLE as exc:
        return _fall_back(exc, composite, text, generator.backend, fallback)


def _prompt(prompt: str | None, style: str | None, strength: float, skip: bool) -> str | None:
    """The text to send, or None when there is no restyle; checks arguments before any work."""
    if not (isinstance(strength, int | float) and math.isfinite(strength) and 0 < strength <= 1):
        raise InvalidRequestError("strength", strength, "a number above 0, at most 1")
    parts = [p for p in (prompt, style_prompt(style) if style else None) if p]
    if skip:
        return None
    if not parts:
        raise InvalidRequestError(
            "prompt",
            prompt,
            "a prompt, style= or skip_restyle=True",
            reason="nothing to restyle to",
        )
    return ", ".join(parts)


def _size(generator: Generator | AsyncGenerator, size: tuple[int, int]) -> tuple[int, int]:
    """The nearest size the backend accepts, keeping the aspect ratio within a side's rounding."""
    from fluxkit._capabilities import coerce_size

    caps = generator.capabilities()
    width, height = size
    shrink = min(1.0, caps.max_side / max(width, height))
    return coerce_size(round(width * shrink), round(height * shrink), caps)


def _finish(composite: Composite, generation: GenerationResult, prompt: str) -> RestyleResult:
    if not generation.images:
        raise ProviderError("the restyle returned no image", backend=generation.backend)
    image = generation.images[0].to_pil().convert("RGB")
    if image.size != composite.image.size:
        # Backends round sizes to their grid (multiples of 16); give back the target's size.
        from PIL import Image

        image = image.resize(composite.image.size, Image.Resampling.LANCZOS)
    return RestyleResult(image, composite, generation, prompt, tuple(generation.warnings))


def _fall_back(
    error: FluxkitError, composite: Composite, prompt: str, backend: str, fallback: bool
) -> RestyleResult:
    if not fallback:
        raise error
    warning = RestyleFailed(error, backend)
    return RestyleResult(composite.image, composite, None, prompt, (warning,))
