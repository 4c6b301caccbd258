"""Reading inputs: every accepted kind, and clear errors for the rest."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from fluxkit import InvalidRequestError
from fluxkit.faces import UnreadableImageError, overlay_face
from fluxkit.faces._io import load_bgr, to_pil


def test_every_input_kind_gives_the_same_pixels(astronaut, tmp_path) -> None:
    rgb = np.asarray(astronaut)
    path = tmp_path / "a.png"
    astronaut.save(path)
    expected = rgb[:, :, ::-1]
    for value in (astronaut, rgb, path, str(path), path.read_bytes()):
        assert np.array_equal(load_bgr(value, "target"), expected)
    assert np.array_equal(np.asarray(to_pil(expected)), rgb)


def test_grey_and_transparent_inputs_become_rgb() -> None:
    assert load_bgr(np.zeros((4, 5), np.uint8), "target").shape == (4, 5, 3)
    clear = Image.new("RGBA", (3, 3), (10, 20, 30, 0))
    assert load_bgr(clear, "target")[0, 0].tolist() == [255, 255, 255]


def test_exif_orientation_is_applied() -> None:
    image = Image.new("RGB", (40, 20), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when shown
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif)
    assert load_bgr(buffer.getvalue(), "headshot").shape[:2] == (40, 20)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"definitely not an image", "not a readable image"),
        ("/no/such/file.png", "no such file"),
        (12345, "unsupported type"),
        (np.zeros((4, 4), np.float32), "uint8"),
    ],
)
def test_unreadable_inputs_name_the_image(value, reason) -> None:
    with pytest.raises(UnreadableImageError, match=reason) as caught:
        load_bgr(value, "headshot")
    assert caught.value.role == "headshot" and caught.value.field == "headshot"
    assert isinstance(caught.value, InvalidRequestError)


def test_decompression_bomb_is_refused(monkeypatch, astronaut) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (300, 300)).save(buffer, format="PNG")
    # Pillow raises above twice MAX_IMAGE_PIXELS; shrink the limit instead of building a bomb.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 20_000)
    with pytest.raises(UnreadableImageError, match="decompression bomb") as caught:
        overlay_face(astronaut, buffer.getvalue(), detector="haar")
    assert caught.value.role == "headshot"
