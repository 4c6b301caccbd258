"""Input images are decoded and verified before anything is sent (fluxkit._images)."""

from __future__ import annotations

import io
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import fluxkit
from fluxkit._images import MAX_INPUT_BYTES, MAX_INPUT_PIXELS, MAX_INPUT_SIDE, InputImage


def _encoded(image: Image.Image, fmt: str = "PNG", **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height``: what a decompression bomb looks like
    to a reader before decoding (the pixels need never exist)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body).to_bytes(4, "big")
        return len(body).to_bytes(4, "big") + kind + body + crc

    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])
    idat = zlib.compress(b"\0" * 64)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


def _refused(value: object, field: str = "image") -> fluxkit.InvalidRequestError:
    with pytest.raises(fluxkit.InvalidRequestError) as caught:
        InputImage.from_any(value, field=field)
    error = caught.value
    assert error.field == field
    assert not isinstance(error.value, bytes | bytearray), "the error must not carry the bytes"
    assert len(str(error)) < 400
    return error


def test_caps_are_documented_constants() -> None:
    assert MAX_INPUT_PIXELS == 50_000_000
    assert MAX_INPUT_SIDE == 16_384
    assert MAX_INPUT_BYTES == 50 * 2**20


@pytest.mark.parametrize(("width", "height"), [(30_000, 30_000), (9_000, 9_000), (20_000, 64)])
def test_oversized_images_are_refused_from_the_header(width: int, height: int) -> None:
    error = _refused(_png_header_only(width, height), field="reference_image")
    assert "MP" in error.allowed


def test_pillows_own_bomb_error_becomes_a_typed_error() -> None:
    # 900 MP is past Pillow's hard limit: its DecompressionBombError is raised inside open()
    error = _refused(_png_header_only(30_000, 30_000))
    assert "bomb" in str(error) or "too large" in str(error)


def test_truncated_jpeg_is_refused() -> None:
    jpeg = _encoded(Image.new("RGB", (256, 256), "red"), "JPEG")
    assert "truncated" in str(_refused(jpeg[: len(jpeg) // 2]))


def test_garbage_after_a_png_signature_is_refused() -> None:
    _refused(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)


def test_magic_bytes_alone_are_not_an_image() -> None:
    _refused(b"\xff\xd8\xff" + b"\0" * 100)


def test_oversized_files_are_refused_by_stat_before_reading(tmp_path: Path) -> None:
    sparse = tmp_path / "huge.jpg"
    with sparse.open("wb") as handle:
        handle.write(b"\xff\xd8\xff")
        handle.truncate(512 * 1024 * 1024)
    error = _refused(sparse)
    assert "536870912 bytes" in str(error)


def test_oversized_bytes_and_data_uris_are_refused_before_decoding() -> None:
    _refused(b"\0" * (MAX_INPUT_BYTES + 1))
    _refused("data:image/png;base64," + "A" * (MAX_INPUT_BYTES * 2))


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("CMYK", "RGB"),
        ("YCbCr", "RGB"),
        ("F", "L"),
        ("I", "L"),
        ("I;16", "L"),
        ("LA", "RGBA"),
        ("La", "RGBA"),
        ("PA", "RGBA"),
        ("1", "L"),
        ("P", "RGB"),
        ("RGBX", "RGB"),
        ("LAB", "RGB"),
    ],
)
def test_odd_pil_modes_are_converted_to_png(mode: str, expected: str) -> None:
    image = InputImage.from_any(Image.new(mode, (8, 8)), field="image")
    assert image.mime == "image/png" and image.size == (8, 8)
    assert Image.open(io.BytesIO(image.data or b"")).mode == expected


def test_transparent_palette_keeps_its_alpha() -> None:
    palette = Image.new("P", (8, 8))
    encoded = _encoded(palette, "PNG", transparency=0)
    image = InputImage.from_any(encoded)
    assert Image.open(io.BytesIO(image.data or b"")).mode == "RGBA"


def test_sixteen_bit_images_are_scaled_not_clipped() -> None:
    ramp = Image.fromarray(np.arange(0, 65536, 256, dtype=np.uint16).reshape(16, 16))
    assert ramp.mode.startswith("I")
    pixels = np.asarray(InputImage.from_any(ramp).to_pil())
    assert pixels.min() == 0 and pixels.max() == 255 and len(np.unique(pixels)) > 100


def test_cmyk_jpeg_bytes_are_reencoded_and_plain_ones_pass_unchanged() -> None:
    cmyk = _encoded(Image.new("CMYK", (16, 16)), "JPEG")
    assert InputImage.from_any(cmyk).mime == "image/png"
    rgb = _encoded(Image.new("RGB", (16, 16), "blue"), "JPEG")
    assert InputImage.from_any(rgb).data == rgb  # verified, then sent as the user gave it


@pytest.mark.parametrize(
    "path", ["~nosuchuser/face.png", "f" * 256 + ".png", "x\0y.png", "./missing.png"]
)
def test_hostile_paths_are_typed_errors(path: str) -> None:
    _refused(path, field="reference_image")


def test_directories_are_refused(tmp_path: Path) -> None:
    assert "regular file" in str(_refused(tmp_path))


@pytest.mark.parametrize(
    "array",
    [
        np.zeros((0, 4, 3), np.uint8),
        np.zeros((4, 4, 2), np.uint8),
        np.full((4, 4), np.nan),
        np.zeros((4, 4), bool),
        np.zeros((MAX_INPUT_SIDE + 1, 1), np.uint8),
    ],
)
def test_bad_arrays_are_refused(array: np.ndarray) -> None:  # type: ignore[type-arg]
    _refused(array)


def test_bad_urls_are_refused() -> None:
    _refused("https://")
    _refused("https://exa mple.com/x.png")
    assert InputImage.from_any("https://example.com/x.png").url == "https://example.com/x.png"


def test_request_names_the_field() -> None:
    with pytest.raises(fluxkit.InvalidRequestError) as caught:
        fluxkit.GenerationRequest(prompt="x", reference_image=b"\x89PNG\r\n\x1a\nbroken")
    assert caught.value.field == "reference_image"


def _with_text_chunk(png: bytes, key: str, text: str) -> bytes:
    """``png`` with an iTXt chunk inserted just before IEND (after the pixel data)."""
    body = key.encode() + b"\0\0\0\0\0" + text.encode()
    chunk = (
        len(body).to_bytes(4, "big")
        + b"iTXt"
        + body
        + zlib.crc32(b"iTXt" + body).to_bytes(4, "big")
    )
    return png[:-12] + chunk + png[-12:]


def test_read_record_reads_metadata_without_decoding_pixels() -> None:
    # the header claims 20000 x 20000 (400 MP): decoding would be refused or cost GBs
    huge = _with_text_chunk(_png_header_only(20_000, 20_000), "fluxkit", '{"seed": 7}')
    assert fluxkit.read_record(huge) == {"seed": 7}
    assert fluxkit.read_record(_png_header_only(64, 64)) is None


def test_face_loading_caps_pixels_and_drafts_large_jpeg_headshots(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from fluxkit.faces import _io
    from fluxkit.faces._errors import UnreadableImageError

    monkeypatch.setattr(_io, "MAX_FACE_PIXELS", 64 * 64)
    jpeg = _encoded(Image.new("RGB", (256, 256), "red"), "JPEG")
    assert (
        _io.load_bgr(jpeg, "headshot").shape[0] * _io.load_bgr(jpeg, "headshot").shape[1] <= 64 * 64
    )
    with pytest.raises(UnreadableImageError, match="MP limit"):
        _io.load_bgr(jpeg, "target")
    with pytest.raises(UnreadableImageError):
        _io.load_bgr(_png_header_only(256, 256), "headshot")
