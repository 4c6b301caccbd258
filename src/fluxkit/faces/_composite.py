"""``overlay_face``: put a headshot's face onto a target image, and the `Composite` it returns."""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fluxkit._exceptions import InvalidRequestError
from fluxkit.faces._align import Alignment, Fit, Matrix, align, pasted_box
from fluxkit.faces._blend import Blend, face_masks, match_colour
from fluxkit.faces._blend import blend as blend_images
from fluxkit.faces._detect import get_detector, pick_face, rank_faces
from fluxkit.faces._face import Face, FaceDetector
from fluxkit.faces._io import FaceImageLike, Pixels, load_bgr, require_cv2, to_pil

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["Composite", "overlay_face"]

_BLENDS = ("alpha", "poisson", "laplacian")


@dataclass(frozen=True, eq=False)
class Composite:
    """A face composite and how it was made.

    Attributes:
        image: the result, RGB, the target's size.
        mask: the blend weights (``L``, 255 = all headshot), the target's size.
        target_face: the face that was covered, in target coordinates.
        headshot_face: the face that was pasted, in headshot coordinates.
        pasted_box: ``(x, y, width, height)`` of the headshot's face box as pasted.
        transform: the 2x3 affine matrix from headshot to target pixels.
        alignment: ``"eyes"`` (rotated to the target's eye line) or ``"box"`` (box centres).
        fit, scale, blend, color_match: the settings used.
        timings: milliseconds per stage (``detect``, ``warp``, ``colour``, ``blend``, ``total``).
    """

    image: Image.Image
    mask: Image.Image
    target_face: Face
    headshot_face: Face
    pasted_box: tuple[float, float, float, float]
    transform: tuple[tuple[float, float, float], tuple[float, float, float]]
    alignment: Alignment
    fit: Fit
    scale: float
    blend: Blend
    color_match: float
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def steps(self) -> tuple[str, ...]:
        """What was done, in order, in words."""
        how = "eye line (rotation + scale)" if self.alignment == "eyes" else "face boxes (scale)"
        done = [
            f"detected faces ({self.target_face.detector})",
            f"aligned by {how}, fitted by {self.fit} x {self.scale:g}",
        ]
        if self.color_match > 0:
            done.append(f"matched colour in LAB (strength {self.color_match:g})")
        done.append(f"{self.blend} blend")
        return tuple(done)

    def save(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
        """Write `image` atomically (format from the suffix) and return the path.

        Raises ``OutputExistsError`` if ``path`` exists, unless ``overwrite=True``.
        """
        from fluxkit.faces._io import save_image

        return save_image(self.image, path, overwrite=overwrite)

    def _repr_png_(self) -> bytes:
        from fluxkit._core._media import encode_image

        return encode_image(self.image, "png")


def overlay_face(
    target: FaceImageLike,
    headshot: FaceImageLike,
    *,
    fit: Fit = "width",
    scale: float = 1.0,
    blend: Blend = "alpha",
    color_match: float = 0.85,
    feather: float = 0.05,
    align_eyes: bool = True,
    face_index: int | None = None,
    headshot_face_index: int | None = None,
    detector: str | FaceDetector = "auto",
) -> Composite:
    """Paste the face from ``headshot`` over the face in ``target``.

    Detects a face in both images, aligns the headshot's face to the target's (by the eyes when
    the detector gives landmarks, else by the boxes), scales it to the target face's width or
    height times ``scale``, matches its colour to the target face in LAB, and blends it with a
    soft ellipse that is opaque inside and feathered at the rim.

    Args:
        target: the picture whose face is replaced (a path, bytes, PIL image or RGB array).
        headshot: the picture the face comes from.
        fit: size the pasted face to the target face's ``"width"`` or ``"height"``.
        scale: multiplies the fitted size; above 1 also covers more of the target's face.
        blend: ``"alpha"`` (feathered mask, recommended), ``"poisson"`` (``cv2.seamlessClone``;
            smears dark or bright where the mask edge crosses glasses or a hat brim) or
            ``"laplacian"`` (multi-band; similar to alpha, a little slower).
        color_match: 0..1, how far the face's LAB colour moves to the target face's.
        feather: width of the soft rim as a fraction of the pasted face's width.
        align_eyes: rotate to the target's eye line when landmarks exist.
        face_index: which target face when there are several (`detect_faces` order).
        headshot_face_index: which headshot face when there are several.
        detector: ``"auto"``, ``"haar"``, ``"yuface"``, ``"yunet"`` or a detector instance.

    Returns:
        A `Composite` with the image, the mask, both faces and what was done.

    Raises:
        FaceNotFoundError: no face in the target or the headshot (the message says which).
        MultipleFacesError: several comparable faces and no index to choose one.
        UnreadableImageError: an input is not an image, or is a decompression bomb.
        InvalidRequestError: an argument is out of range.

    Example:
        ```python
        from fluxkit.faces import overlay_face

        composite = overlay_face("painting.png", "me.jpg", fit="height", scale=1.05)
        composite.save("me_in_painting.png")
        print(composite.steps)
        ```
    """
    started = time.perf_counter()
    if blend not in _BLENDS:
        raise InvalidRequestError("blend", blend, ", ".join(map(repr, _BLENDS)))
    for name, value, low, high in (
        ("color_match", color_match, 0, 1),
        ("feather", feather, 0, 0.5),
    ):
        if not (isinstance(value, int | float) and math.isfinite(value) and low <= value <= high):
            raise InvalidRequestError(name, value, f"a number from {low} to {high}")
    chosen = get_detector(detector)
    target_px = load_bgr(target, "target")
    headshot_px = load_bgr(headshot, "headshot")
    target_face = _find(chosen, target_px, face_index, "target", "face_index")
    headshot_face = _find(
        chosen, headshot_px, headshot_face_index, "headshot", "headshot_face_index"
    )
    detected = time.perf_counter()

    matrix, alignment = align(headshot_face, target_face, fit=fit, scale=scale, use_eyes=align_eyes)
    height, width = target_px.shape[:2]
    masks = face_masks((width, height), headshot_face, matrix, feather=feather)
    warped = _warp(headshot_px, matrix, masks.roi)
    warped_at = time.perf_counter()

    x0, y0, x1, y1 = masks.roi
    warped = match_colour(warped, target_px[y0:y1, x0:x1], masks.inner, color_match)
    coloured = time.perf_counter()

    out, used = blend_images(blend, warped, target_px, masks)
    full_mask = np.zeros((height, width), np.uint8)
    full_mask[y0:y1, x0:x1] = np.clip(used * 255.0 + 0.5, 0, 255).astype(np.uint8)
    done = time.perf_counter()

    from PIL import Image

    return Composite(
        image=to_pil(out),
        mask=Image.fromarray(full_mask, "L"),
        target_face=target_face,
        headshot_face=headshot_face,
        pasted_box=pasted_box(headshot_face, matrix),
        transform=(
            (float(matrix[0, 0]), float(matrix[0, 1]), float(matrix[0, 2])),
            (float(matrix[1, 0]), float(matrix[1, 1]), float(matrix[1, 2])),
        ),
        alignment=alignment,
        fit=fit,
        scale=float(scale),
        blend=blend,
        color_match=float(color_match),
        timings={
            "detect": (detected - started) * 1e3,
            "warp": (warped_at - detected) * 1e3,
            "colour": (coloured - warped_at) * 1e3,
            "blend": (done - coloured) * 1e3,
            "total": (done - started) * 1e3,
        },
    )


def _find(
    detector: FaceDetector, image: Pixels, index: int | None, role: str, argument: str
) -> Face:
    faces = rank_faces(detector.detect(image))
    size = (image.shape[1], image.shape[0])
    return pick_face(faces, index, role=role, size=size, detector=detector, index_argument=argument)


def _warp(headshot: Pixels, matrix: Matrix, roi: tuple[int, int, int, int]) -> Pixels:
    """The headshot warped into the target's ``roi`` only (not the whole frame)."""
    cv2: Any = require_cv2()
    m = matrix.copy()
    k = math.hypot(m[0, 0], m[1, 0])
    if k < 0.5:
        # warpAffine samples bilinearly and would alias a strong reduction: shrink first.
        factor = min(1.0, 2.0 * k)
        headshot = cv2.resize(headshot, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
        m[:, :2] /= factor
    x0, y0, x1, y1 = roi
    m[0, 2] -= x0
    m[1, 2] -= y0
    return cv2.warpAffine(  # type: ignore[no-any-return]
        headshot, m, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
    )
