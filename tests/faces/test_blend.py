"""Masks and colour transfer in isolation."""

from __future__ import annotations

import numpy as np
import pytest

from fluxkit.faces import Face
from fluxkit.faces._align import align
from fluxkit.faces._blend import blend, face_masks, match_colour

cv2 = pytest.importorskip("cv2")


def _masks(feather: float = 0.05):
    face = Face((100, 100, 200, 200), 5.0)
    matrix, _ = align(face, face)
    return face_masks((400, 400), face, matrix, feather=feather)


def test_mask_covers_the_face_region_only() -> None:
    masks = _masks()
    x0, y0, x1, y1 = masks.roi
    assert 0 <= x0 < 100 and x1 > 300 and y1 <= 400
    alpha = masks.alpha
    centre = alpha[212 - y0, 200 - x0]  # the ellipse centre sits 6% of h below the box centre
    assert centre == pytest.approx(1.0)
    assert alpha.min() == pytest.approx(0.0, abs=1e-3)  # the ROI corners are untouched
    assert 0 < alpha.mean() < 1


def test_feather_widens_the_soft_rim() -> None:
    def rim(feather: float) -> int:
        alpha = _masks(feather).alpha
        return int(np.count_nonzero((alpha > 0.02) & (alpha < 0.98)))

    assert rim(0.02) < rim(0.05) < rim(0.1)


def test_inner_statistics_region_is_inside_the_opaque_core() -> None:
    masks = _masks()
    assert masks.inner.any()
    assert masks.alpha[masks.inner].min() > 0.8


def test_match_colour_moves_mean_and_spread() -> None:
    rng = np.random.default_rng(0)
    source = np.clip(rng.normal((60, 90, 200), 10, (64, 64, 3)), 0, 255).astype(np.uint8)
    target = np.clip(rng.normal((120, 140, 150), 25, (64, 64, 3)), 0, 255).astype(np.uint8)
    inner = np.ones((64, 64), bool)
    out = match_colour(source, target, inner, strength=1.0)

    def lab(pixels: np.ndarray) -> np.ndarray:
        return cv2.cvtColor(pixels, cv2.COLOR_BGR2LAB).reshape(-1, 3).astype(np.float32)

    assert np.abs(lab(out).mean(0) - lab(target).mean(0)).max() < 3
    assert np.abs(lab(out).std(0) - lab(target).std(0)).max() < 4
    assert match_colour(source, target, inner, strength=0.0) is source


def test_poisson_leaves_everything_outside_the_mask_alone() -> None:
    masks = _masks()
    target = np.full((400, 400, 3), 90, np.uint8)
    x0, y0, x1, y1 = masks.roi
    face = np.full((y1 - y0, x1 - x0, 3), 200, np.uint8)
    out, used = blend("poisson", face, target, masks)
    outside = np.ones((400, 400), bool)
    outside[y0:y1, x0:x1] = used == 0
    assert np.array_equal(out[outside], target[outside])
