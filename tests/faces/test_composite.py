"""overlay_face on real faces: resemblance, seams, colour, size, and what it reports."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from skimage.metrics import structural_similarity

from fluxkit import InvalidRequestError
from fluxkit.faces import Composite, Face, FaceNotFoundError, overlay_face

cv2 = pytest.importorskip("cv2")

# Rim gradient energy allowed, relative to the target's own on the same rim. Feathered blends
# measure 0.87-0.99 on these pairs; an unfeathered paste 1.12-1.21.
SEAM_BOUND = 1.05


def _core_box(composite: Composite) -> tuple[slice, slice]:
    """Bounding box of the fully opaque part of the mask (the pasted face proper)."""
    ys, xs = np.nonzero(np.asarray(composite.mask) == 255)
    return slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1)


def _gradient(gray: np.ndarray) -> np.ndarray:
    return np.hypot(cv2.Sobel(gray, cv2.CV_32F, 1, 0), cv2.Sobel(gray, cv2.CV_32F, 0, 1))


def _seam_energy(composite: Composite, target: Image.Image, gray) -> tuple[float, float]:
    """Mean gradient magnitude on the mask's outer rim, in the composite and in the target."""
    alpha = np.asarray(composite.mask).astype(np.float32) / 255
    touched = (alpha > 0.005).astype(np.uint8)
    just_outside = cv2.dilate(touched, np.ones((5, 5), np.uint8)).astype(bool) & ~touched.astype(
        bool
    )
    rim = just_outside | ((alpha > 0.005) & (alpha < 0.5))
    return float(_gradient(gray(composite.image))[rim].mean()), float(
        _gradient(gray(target))[rim].mean()
    )


def _lab_mean(pixels: np.ndarray, where: np.ndarray) -> np.ndarray:
    return (
        cv2.cvtColor(np.asarray(pixels), cv2.COLOR_RGB2LAB).astype(np.float32)[where].mean(axis=0)
    )


def test_composite_face_resembles_the_headshot_not_the_target(
    grace_on_astronaut: Composite, astronaut, grace, gray, warp_headshot
) -> None:
    rows, cols = _core_box(grace_on_astronaut)
    aligned = gray(warp_headshot(grace_on_astronaut, grace))[rows, cols]
    pasted = structural_similarity(
        gray(grace_on_astronaut.image)[rows, cols], aligned, data_range=255
    )
    original = structural_similarity(gray(astronaut)[rows, cols], aligned, data_range=255)
    assert pasted > 0.8
    assert original < 0.3
    assert pasted > original + 0.5


def test_painted_target_takes_the_photo_face(painted_grace, astronaut, gray, warp_headshot) -> None:
    composite = overlay_face(painted_grace, astronaut, detector="haar")
    rows, cols = _core_box(composite)
    aligned = gray(warp_headshot(composite, astronaut))[rows, cols]
    pasted = structural_similarity(gray(composite.image)[rows, cols], aligned, data_range=255)
    original = structural_similarity(gray(painted_grace)[rows, cols], aligned, data_range=255)
    assert pasted > original + 0.4


@pytest.mark.parametrize("blend", ["alpha", "laplacian", "poisson"])
def test_no_visible_seam(blend, astronaut, grace, gray) -> None:
    composite = overlay_face(astronaut, grace, detector="haar", blend=blend)
    pasted, own = _seam_energy(composite, astronaut, gray)
    assert pasted <= SEAM_BOUND * own


def test_seam_metric_does_see_a_hard_paste(astronaut, grace, gray) -> None:
    """Guards the seam test above: an unfeathered, uncorrected paste must fail its bound."""
    hard = overlay_face(astronaut, grace, detector="haar", feather=0.0, color_match=0.0)
    pasted, own = _seam_energy(hard, astronaut, gray)
    assert pasted > SEAM_BOUND * own


@pytest.mark.parametrize("pair", ["grace_on_astronaut", "astronaut_on_painting"])
def test_pasted_colour_matches_the_target_face(
    pair, astronaut, grace, painted_grace, warp_headshot
) -> None:
    target, headshot = (
        (astronaut, grace) if pair == "grace_on_astronaut" else (painted_grace, astronaut)
    )
    composite = overlay_face(target, headshot, detector="haar")
    core = np.asarray(composite.mask) == 255
    raw = _lab_mean(warp_headshot(composite, headshot), core)
    want = _lab_mean(np.asarray(target), core)
    got = _lab_mean(np.asarray(composite.image), core)
    assert np.linalg.norm(got - want) < 0.25 * np.linalg.norm(raw - want)
    assert np.all(np.abs(got[1:] - want[1:]) < 4)  # a, b: hue hardly moves


def test_colour_match_off_keeps_the_headshot_colour(astronaut, grace, warp_headshot) -> None:
    composite = overlay_face(astronaut, grace, detector="haar", color_match=0.0)
    core = np.asarray(composite.mask) == 255
    raw = _lab_mean(warp_headshot(composite, grace), core)
    assert np.allclose(_lab_mean(np.asarray(composite.image), core), raw, atol=1.0)


def test_composite_reports_what_was_done(grace_on_astronaut: Composite, astronaut) -> None:
    c = grace_on_astronaut
    assert c.image.size == astronaut.size and c.image.mode == "RGB"
    assert c.mask.size == astronaut.size and c.mask.mode == "L"
    assert c.target_face.detector == "haar" and c.alignment == "box"
    assert (c.fit, c.scale, c.blend) == ("width", 1.0, "alpha")
    assert any("LAB" in step for step in c.steps)
    assert set(c.timings) == {"detect", "warp", "colour", "blend", "total"}
    # Outside the mask the target is untouched.
    outside = np.asarray(c.mask) == 0
    assert np.array_equal(np.asarray(c.image)[outside], np.asarray(astronaut)[outside])


def test_mask_is_opaque_inside_and_feathered_at_the_rim(grace_on_astronaut: Composite) -> None:
    alpha = np.asarray(grace_on_astronaut.mask)
    x, y, w, h = grace_on_astronaut.pasted_box
    assert alpha[int(y + h * 0.5), int(x + w * 0.5)] == 255  # nose
    assert alpha[int(y + h * 0.4), int(x + w * 0.3)] >= 250  # eyes
    assert alpha[int(y + h * 0.4), int(x + w * 0.7)] >= 250
    feathered = np.count_nonzero((alpha > 0) & (alpha < 255))
    assert feathered > 0.1 * np.count_nonzero(alpha == 255)


def _square(x: float, y: float, w: float, h: float) -> Face:
    return Face(box=(x, y, w, h), confidence=9.0, detector="fixed")


@pytest.mark.parametrize(
    ("fit", "scale", "expected"),
    [("width", 1.0, (100, 150)), ("height", 1.0, (80, 120)), ("width", 1.3, (130, 195))],
)
def test_fit_and_scale_set_the_pasted_size(fit, scale, expected, grace, fixed_detector) -> None:
    target = Image.new("RGB", (400, 300), (120, 100, 90))
    # target face 100x120, headshot face 200x300: width fit halves it, height fit scales by 0.4.
    detector = fixed_detector(
        (400, [_square(150, 90, 100, 120)]), (512, [_square(150, 150, 200, 300)])
    )
    composite = overlay_face(target, grace, fit=fit, scale=scale, detector=detector)
    x, y, w, h = composite.pasted_box
    assert (w, h) == pytest.approx(expected)
    assert (x + w / 2, y + h / 2) == pytest.approx((200, 150))  # box centres matched


def test_scale_grows_the_mask(astronaut, grace) -> None:
    small = overlay_face(astronaut, grace, detector="haar", scale=0.9)
    large = overlay_face(astronaut, grace, detector="haar", scale=1.2)
    ratio = np.count_nonzero(np.asarray(large.mask)) / np.count_nonzero(np.asarray(small.mask))
    assert ratio == pytest.approx((1.2 / 0.9) ** 2, rel=0.15)


def test_blank_target_names_the_target(blank, grace) -> None:
    with pytest.raises(FaceNotFoundError, match="target") as caught:
        overlay_face(blank, grace, detector="haar")
    assert caught.value.role == "target"
    assert caught.value.size == (400, 300)
    assert any("small" in h for h in caught.value.hints)
    assert any("tilted" in h for h in caught.value.hints)
    assert any("occluded" in h for h in caught.value.hints)
    assert isinstance(caught.value, ValueError)


def test_blank_headshot_names_the_headshot(astronaut, blank) -> None:
    with pytest.raises(FaceNotFoundError, match="headshot"):
        overlay_face(astronaut, blank, detector="haar")


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("blend", "smear"),
        ("fit", "diagonal"),
        ("scale", 0.0),
        ("scale", float("nan")),
        ("color_match", 1.5),
        ("feather", -0.1),
    ],
)
def test_bad_options_are_rejected_before_any_work(option, value, astronaut, grace) -> None:
    with pytest.raises(InvalidRequestError, match=option):
        overlay_face(astronaut, grace, detector="haar", **{option: value})


def test_composite_saves_and_displays(grace_on_astronaut: Composite, tmp_path) -> None:
    path = grace_on_astronaut.save(tmp_path / "out.png")
    assert Image.open(path).size == grace_on_astronaut.image.size
    assert grace_on_astronaut._repr_png_().startswith(b"\x89PNG")
