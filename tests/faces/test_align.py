"""The similarity transform: fit, scale, eye rotation, anchors."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fluxkit import InvalidRequestError
from fluxkit.faces import Face
from fluxkit.faces._align import align, apply, pasted_box


def _with_eyes(box: tuple[float, float, float, float], tilt_deg: float = 0.0) -> Face:
    x, y, w, h = box
    cx, cy, half = x + w / 2, y + 0.4 * h, 0.2 * w
    dx, dy = half * math.cos(math.radians(tilt_deg)), half * math.sin(math.radians(tilt_deg))
    eyes = {"left_eye": (cx - dx, cy - dy), "right_eye": (cx + dx, cy + dy)}
    return Face(box, 0.9, eyes, detector="test")


def test_box_fit_by_width_and_height() -> None:
    headshot, target = Face((0, 0, 200, 300), 5.0), Face((100, 100, 100, 120), 5.0)
    by_width, how = align(headshot, target, fit="width")
    assert how == "box" and by_width[0, 0] == pytest.approx(0.5) and by_width[0, 1] == 0
    by_height, _ = align(headshot, target, fit="height")
    assert by_height[0, 0] == pytest.approx(0.4)
    assert apply(by_height, headshot.center) == pytest.approx(target.center)


def test_scale_multiplies_the_fit() -> None:
    headshot, target = Face((0, 0, 200, 300), 5.0), Face((100, 100, 100, 120), 5.0)
    matrix, _ = align(headshot, target, fit="width", scale=1.5)
    assert pasted_box(headshot, matrix)[2:] == pytest.approx((150, 225))


def test_eyes_rotate_to_the_target_tilt_and_meet() -> None:
    headshot = _with_eyes((0, 0, 200, 200), tilt_deg=-5)
    target = _with_eyes((300, 100, 100, 100), tilt_deg=10)
    matrix, how = align(headshot, target)
    assert how == "eyes"
    assert math.degrees(math.atan2(matrix[1, 0], matrix[0, 0])) == pytest.approx(15)
    assert math.hypot(matrix[0, 0], matrix[1, 0]) == pytest.approx(0.5)  # still the width fit
    src_mid = tuple((a + b) / 2 for a, b in zip(*headshot.eyes, strict=True))
    dst_mid = tuple((a + b) / 2 for a, b in zip(*target.eyes, strict=True))
    assert apply(matrix, src_mid) == pytest.approx(dst_mid)


def test_eye_alignment_can_be_turned_off() -> None:
    headshot, target = _with_eyes((0, 0, 200, 200), -5), _with_eyes((0, 0, 100, 100), 10)
    matrix, how = align(headshot, target, use_eyes=False)
    assert how == "box" and matrix[1, 0] == 0


def test_bad_fit_and_scale() -> None:
    face = Face((0, 0, 10, 10), 1.0)
    with pytest.raises(InvalidRequestError, match="fit"):
        align(face, face, fit="area")  # type: ignore[arg-type]
    with pytest.raises(InvalidRequestError, match="scale"):
        align(face, face, scale=-1)


@given(
    w=st.floats(20, 800),
    h=st.floats(20, 800),
    tw=st.floats(20, 800),
    th=st.floats(20, 800),
    scale=st.floats(0.5, 2.0),
    fit=st.sampled_from(["width", "height"]),
)
def test_pasted_size_follows_fit_times_scale(w, h, tw, th, scale, fit) -> None:
    headshot, target = Face((5, 7, w, h), 1.0), Face((11, 13, tw, th), 1.0)
    matrix, _ = align(headshot, target, fit=fit, scale=scale)
    _, _, pw, ph = pasted_box(headshot, matrix)
    if fit == "width":
        assert pw == pytest.approx(tw * scale)
    else:
        assert ph == pytest.approx(th * scale)
    assert pw / ph == pytest.approx(w / h)  # never distorted
