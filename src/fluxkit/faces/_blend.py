"""Masks, colour matching and the three blends, all computed on the face's region only.

The mask is the lesson of the research prototype and of insightface's paste-back: opaque inside,
feathered only at the rim, and the feather kept *inside* the face ellipse, so that eyes, brows
and mouth are fully the headshot's and no ring of the headshot's background shows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from fluxkit.faces._align import Matrix, apply
from fluxkit.faces._face import Face
from fluxkit.faces._io import Pixels, require_cv2

__all__ = ["Blend", "FaceMasks", "blend", "face_masks", "match_colour"]

Blend = Literal["alpha", "poisson", "laplacian"]
Floats = npt.NDArray[np.float32]

# Ellipse radii as fractions of the face box, and the centre's drop (boxes sit high on the chin).
_OUTER = (0.44, 0.56)
_INNER = (0.30, 0.40)  # colour statistics: skin only, clear of hair, background and glasses
_DROP = 0.06
# Poisson clones inside the mask's nearly opaque part: its boundary then sits on skin, clear of
# hair and glasses frames, where the gradient solve has least to smear.
_POISSON_CORE = 0.9


@dataclass(frozen=True)
class FaceMasks:
    """The pasted face's masks, cropped to ``roi`` = ``(x0, y0, x1, y1)`` in the target."""

    roi: tuple[int, int, int, int]
    alpha: Floats  # 0..1, opaque core with a feathered rim
    inner: npt.NDArray[np.bool_]  # where colour statistics are taken


def face_masks(
    size: tuple[int, int], headshot: Face, matrix: Matrix, *, feather: float
) -> FaceMasks:
    """Elliptical masks for the headshot's face as pasted into a target of ``size`` (w, h)."""
    k = math.hypot(matrix[0, 0], matrix[1, 0])
    angle = math.degrees(math.atan2(matrix[1, 0], matrix[0, 0]))
    x, y, w, h = headshot.box
    centre = apply(matrix, (x + w / 2, y + h / 2 + _DROP * h))
    rx, ry = _OUTER[0] * w * k, _OUTER[1] * h * k
    sigma = max(1.0, feather * w * k)
    reach = max(rx, ry) + 2.0 * sigma
    width, height = size
    x0, y0 = max(0, int(centre[0] - reach)), max(0, int(centre[1] - reach))
    x1, y1 = min(width, int(centre[0] + reach) + 1), min(height, int(centre[1] + reach) + 1)
    if x1 - x0 < 4 or y1 - y0 < 4:
        x0, y0, x1, y1 = 0, 0, min(width, 4), min(height, 4)
    local = (centre[0] - x0, centre[1] - y0)
    # Shrinking the ellipse by 1.5 sigma before blurring keeps the feather inside it (the same
    # effect as the prototype's erosion, without a large morphology kernel).
    core = _ellipse((y1 - y0, x1 - x0), local, (rx - 1.5 * sigma, ry - 1.5 * sigma), angle)
    alpha = _blur(core.astype(np.float32) / 255.0, sigma)
    inner = _ellipse(
        (y1 - y0, x1 - x0), local, (_INNER[0] * w * k, _INNER[1] * h * k), angle
    ).astype(bool)
    return FaceMasks((x0, y0, x1, y1), alpha, inner)


def match_colour(
    source: Pixels, target: Pixels, inner: npt.NDArray[np.bool_], strength: float
) -> Pixels:
    """Reinhard colour transfer in CIE-LAB: ``source``'s mean and spread moved to ``target``'s.

    Statistics come from the ``inner`` pixels of each image only; ``strength`` 0..1 interpolates.
    """
    cv2: Any = require_cv2()
    if strength <= 0 or int(inner.sum()) < 16:
        return source
    # 8-bit LAB (OpenCV's lookup-table path) is ~4x faster than float and precise enough here:
    # the transfer is one affine map per channel, applied with cv2.transform in a single pass.
    src, dst = cv2.cvtColor(source, cv2.COLOR_BGR2LAB), cv2.cvtColor(target, cv2.COLOR_BGR2LAB)
    where = inner.astype(np.uint8)
    src_mean, src_std = (v.ravel() for v in cv2.meanStdDev(src, mask=where))
    dst_mean, dst_std = (v.ravel() for v in cv2.meanStdDev(dst, mask=where))
    # A nearly flat channel (a grey painting, a blown-out photo) must not explode the spread.
    ratio = np.clip(dst_std / (src_std + 0.5), 0.4, 2.5)
    gain = 1.0 - strength + strength * ratio
    offset = strength * (dst_mean - src_mean * ratio)
    affine = np.zeros((3, 4))
    affine[np.arange(3), np.arange(3)] = gain
    affine[:, 3] = offset
    return cv2.cvtColor(cv2.transform(src, affine), cv2.COLOR_LAB2BGR)  # type: ignore[no-any-return]


def blend(method: Blend, face: Pixels, target: Pixels, masks: FaceMasks) -> tuple[Pixels, Floats]:
    """The target with ``face`` (cropped to ``masks.roi``) blended in, and the mask used."""
    x0, y0, x1, y1 = masks.roi
    background = target[y0:y1, x0:x1]
    out = target.copy()
    if method == "alpha":
        cv2: Any = require_cv2()
        out[y0:y1, x0:x1] = cv2.blendLinear(face, background, masks.alpha, 1.0 - masks.alpha)
        return out, masks.alpha
    if method == "laplacian":
        out[y0:y1, x0:x1] = _laplacian(face, background, masks.alpha)
        return out, masks.alpha
    return _poisson(face, target, masks)


def _ellipse(
    shape: tuple[int, int], centre: tuple[float, float], radii: tuple[float, float], angle: float
) -> npt.NDArray[np.uint8]:
    cv2: Any = require_cv2()
    canvas = np.zeros(shape, np.uint8)
    if min(radii) <= 0.5:
        return canvas
    bits = 4  # sub-pixel precision for the outline
    one = 1 << bits
    cv2.ellipse(
        canvas,
        (round(centre[0] * one), round(centre[1] * one)),
        (round(radii[0] * one), round(radii[1] * one)),
        angle,
        0,
        360,
        color=255,
        thickness=-1,
        lineType=cv2.LINE_AA,
        shift=bits,
    )
    return canvas


def _blur(mask: Floats, sigma: float) -> Floats:
    """Gaussian blur; wide blurs run on a reduced copy (a smooth mask loses nothing by it)."""
    cv2: Any = require_cv2()
    height, width = mask.shape
    step = max(1, int(sigma / 4))
    if step == 1:
        return cv2.GaussianBlur(mask, (0, 0), sigma)  # type: ignore[no-any-return]
    small = cv2.resize(
        mask, (max(1, width // step), max(1, height // step)), interpolation=cv2.INTER_AREA
    )
    small = cv2.GaussianBlur(small, (0, 0), sigma / step)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)  # type: ignore[no-any-return]


def _laplacian(face: Pixels, background: Pixels, alpha: Floats, levels: int = 4) -> Pixels:
    """Multi-band blend: coarse bands mix over a wide zone, fine detail over a narrow one."""
    cv2: Any = require_cv2()
    masks, fgs, bgs = [alpha], [face.astype(np.float32)], [background.astype(np.float32)]
    for _ in range(levels):
        if min(masks[-1].shape) < 8:
            break
        masks.append(cv2.pyrDown(masks[-1]))
        fgs.append(cv2.pyrDown(fgs[-1]))
        bgs.append(cv2.pyrDown(bgs[-1]))
    top = len(masks) - 1
    out: Floats = fgs[top] * masks[top][..., None] + bgs[top] * (1.0 - masks[top][..., None])
    for i in range(top - 1, -1, -1):
        size = (fgs[i].shape[1], fgs[i].shape[0])
        band_fg = fgs[i] - cv2.pyrUp(fgs[i + 1], dstsize=size)
        band_bg = bgs[i] - cv2.pyrUp(bgs[i + 1], dstsize=size)
        a = masks[i][..., None]
        out = cv2.pyrUp(out, dstsize=size) + band_fg * a + band_bg * (1.0 - a)
    blended: Pixels = np.clip(out + 0.5, 0, 255).astype(np.uint8)
    return blended


def _poisson(face: Pixels, target: Pixels, masks: FaceMasks) -> tuple[Pixels, Floats]:
    """``cv2.seamlessClone`` NORMAL_CLONE over the mask's nearly opaque core."""
    cv2: Any = require_cv2()
    binary = (masks.alpha > _POISSON_CORE).astype(np.uint8) * 255
    # seamlessClone fails when the mask touches the source's border.
    binary[:2, :] = binary[-2:, :] = 0
    binary[:, :2] = binary[:, -2:] = 0
    if not binary.any():
        return target.copy(), binary.astype(np.float32)
    bx, by, bw, bh = cv2.boundingRect(binary)
    x0, y0 = masks.roi[0], masks.roi[1]
    centre = (x0 + bx + bw // 2, y0 + by + bh // 2)
    out = cv2.seamlessClone(face, target, binary, centre, cv2.NORMAL_CLONE)
    return out, binary.astype(np.float32) / 255.0
