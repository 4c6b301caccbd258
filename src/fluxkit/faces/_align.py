"""Where the headshot's face goes: a similarity transform (rotate, scale, shift) onto the target.

The scale always comes from the face boxes (``fit="width"`` or ``"height"``, times ``scale``) so
that the user's choice means the same thing with every detector. The eyes, when both faces have
them, add the rotation (head tilt) and the anchor point; without them the box centres are matched.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import numpy.typing as npt

from fluxkit._exceptions import InvalidRequestError
from fluxkit.faces._face import Face, Point

__all__ = ["Alignment", "Fit", "Matrix", "align", "apply", "pasted_box"]

Fit = Literal["width", "height"]
Alignment = Literal["eyes", "box"]
Matrix = npt.NDArray[np.float64]
"""A 2x3 affine matrix mapping headshot pixels to target pixels."""


def align(
    headshot: Face, target: Face, *, fit: Fit = "width", scale: float = 1.0, use_eyes: bool = True
) -> tuple[Matrix, Alignment]:
    """The transform taking ``headshot``'s face onto ``target``'s, and how it was found.

    Args:
        headshot: the face to move, in headshot coordinates.
        target: the face to cover, in target coordinates.
        fit: match the box ``"width"`` or ``"height"``.
        scale: multiplies the fitted size (1.2 pastes a face 20% larger).
        use_eyes: rotate and anchor by the eyes when both faces have them.

    Example:
        ```python
        from fluxkit.faces import Face
        from fluxkit.faces._align import align

        m, how = align(Face((0, 0, 100, 120), 5.0), Face((50, 50, 200, 200), 5.0), fit="width")
        m[0, 0]  # 2.0
        ```
    """
    if fit not in ("width", "height"):
        raise InvalidRequestError("fit", fit, "'width' or 'height'")
    if not (isinstance(scale, int | float) and math.isfinite(scale) and 0.1 <= scale <= 10):
        raise InvalidRequestError("scale", scale, "a number from 0.1 to 10")
    axis = 2 if fit == "width" else 3
    k = target.box[axis] / headshot.box[axis] * float(scale)
    src_eyes, dst_eyes = headshot.eyes, target.eyes
    if use_eyes and src_eyes is not None and dst_eyes is not None:
        angle = _angle(dst_eyes) - _angle(src_eyes)
        src_anchor, dst_anchor = _midpoint(src_eyes), _midpoint(dst_eyes)
        alignment: Alignment = "eyes"
    else:
        angle = 0.0
        src_anchor, dst_anchor = headshot.center, target.center
        alignment = "box"
    c, s = k * math.cos(angle), k * math.sin(angle)
    rotation = np.array([[c, -s], [s, c]])
    shift = np.asarray(dst_anchor) - rotation @ np.asarray(src_anchor)
    return np.hstack([rotation, shift[:, None]]), alignment


def apply(matrix: Matrix, point: Point) -> Point:
    """``point`` mapped through ``matrix``."""
    x, y = point
    return (
        float(matrix[0, 0] * x + matrix[0, 1] * y + matrix[0, 2]),
        float(matrix[1, 0] * x + matrix[1, 1] * y + matrix[1, 2]),
    )


def pasted_box(headshot: Face, matrix: Matrix) -> tuple[float, float, float, float]:
    """The headshot's face box as pasted: its scaled size, centred where its centre lands."""
    k = math.hypot(matrix[0, 0], matrix[1, 0])
    cx, cy = apply(matrix, headshot.center)
    w, h = headshot.box[2] * k, headshot.box[3] * k
    return (cx - w / 2, cy - h / 2, w, h)


def _angle(eyes: tuple[Point, Point]) -> float:
    (x0, y0), (x1, y1) = eyes
    return math.atan2(y1 - y0, x1 - x0)


def _midpoint(eyes: tuple[Point, Point]) -> Point:
    (x0, y0), (x1, y1) = eyes
    return ((x0 + x1) / 2, (y0 + y1) / 2)
