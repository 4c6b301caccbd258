"""Image bytes in memory: format sniffing, data URIs, hashing, decode and encode."""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from PIL import Image

__all__ = [
    "ImageFormat",
    "content_hash",
    "data_uri",
    "decode_data_uri",
    "encode_image",
    "image_size",
    "normalise_mode",
    "open_image",
    "open_verified",
    "sniff_format",
]

ImageFormat = Literal["png", "jpeg", "webp"]

_MIME = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp", "gif": "image/gif"}


def sniff_format(data: bytes) -> str | None:
    """The image format from magic bytes: ``png``, ``jpeg``, ``webp``, ``gif`` or None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    return None


def mime_type(data: bytes) -> str:
    return _MIME.get(sniff_format(data) or "", "application/octet-stream")


def content_hash(data: bytes) -> str:
    """Hex SHA-256 of the bytes: the key of every content-addressed cache."""
    return hashlib.sha256(data).hexdigest()


def data_uri(data: bytes, mime: str | None = None) -> str:
    return f"data:{mime or mime_type(data)};base64,{base64.b64encode(data).decode('ascii')}"


def decode_data_uri(uri: str) -> tuple[bytes, str]:
    """Bytes and MIME type of a ``data:`` URI (base64 or percent-encoded)."""
    if not uri.startswith("data:") or "," not in uri:
        raise ValueError("not a data URI")
    header, payload = uri[5:].split(",", 1)
    mime = header.split(";")[0] or "text/plain"
    if header.endswith(";base64"):
        try:
            return base64.b64decode(payload, validate=False), mime
        except binascii.Error as exc:
            raise ValueError(f"bad base64 in data URI: {exc}") from exc
    from urllib.parse import unquote_to_bytes

    return unquote_to_bytes(payload), mime


def decode_base64_image(text: str) -> bytes:
    """A provider's base64 image field, with or without a ``data:`` prefix."""
    if text.startswith("data:"):
        return decode_data_uri(text)[0]
    return base64.b64decode(text)


def open_image(data: bytes) -> Image.Image:
    """Decode bytes to a PIL image (fully loaded, decompression-bomb guard on)."""
    from PIL import Image

    image = Image.open(io.BytesIO(data))
    image.load()
    return image


class ImageRefused(ValueError):
    """Bytes that are not a usable image; ``reason`` says why in a few words."""

    def __init__(self, reason: str, size: tuple[int, int] | None = None) -> None:
        self.reason, self.size = reason, size
        super().__init__(reason)


def open_verified(data: bytes, *, max_pixels: int, max_side: int) -> Image.Image:
    """Decode ``data`` completely, refusing bombs, truncation and garbage.

    The header is read first and its dimensions checked against ``max_pixels``/``max_side``
    *before* any pixel is decoded, so a 900 MP bomb costs a few bytes of parsing; then the
    pixels are loaded, which is the only way to notice a truncated or corrupt file (the magic
    bytes alone say nothing). Multi-frame files keep their first frame.

    Raises:
        ImageRefused: with a short reason (never the bytes).

    Example:
        ```python
        from fluxkit._core._media import open_verified

        image = open_verified(png_bytes, max_pixels=50_000_000, max_side=16_384)
        ```
    """
    import warnings

    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            # Pillow's own bomb guard warns at ~89 MP and raises at twice that: our caps are
            # stricter and checked below, so its warning must neither print nor pass.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width < 1 or height < 1:
                raise ImageRefused("empty image", (width, height))
            if width > max_side or height > max_side or width * height > max_pixels:
                raise ImageRefused(f"{width}x{height} pixels is too large", (width, height))
            image.load()
    except ImageRefused:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageRefused(f"decompression bomb: {exc}") from None
    except UnidentifiedImageError:
        raise ImageRefused("not a readable image") from None
    # Pillow's decoders raise OSError (truncated), SyntaxError (bad PNG chunks), ValueError,
    # EOFError, struct.error, MemoryError...: all mean "this file is broken".
    except Exception as exc:
        raise ImageRefused(f"corrupt or truncated image: {_first_line(exc)}") from None
    return image


def normalise_mode(image: Image.Image) -> Image.Image:
    """``image`` in a mode every provider and encoder takes: RGB, RGBA or L.

    CMYK/YCbCr/LAB/HSV become RGB; palette images RGBA when they carry transparency; 1-bit
    becomes L; 16/32-bit integer and float images are scaled to 8-bit L over their own range
    (a plain ``convert("L")`` would clip everything above 255 to white).

    Example:
        ```python
        from PIL import Image
        from fluxkit._core._media import normalise_mode

        normalise_mode(Image.new("CMYK", (8, 8))).mode     # "RGB"
        ```
    """
    mode = image.mode
    if mode in ("RGB", "RGBA", "L"):
        return image
    if mode == "La":  # premultiplied: Pillow converts it to LA only
        return image.convert("LA").convert("RGBA")
    if mode in ("LA", "PA", "RGBa"):
        return image.convert("RGBA")
    if mode == "P":
        return image.convert("RGBA" if "transparency" in image.info else "RGB")
    if mode == "1":
        return image.convert("L")
    if mode in ("F",) or mode.startswith("I"):
        import numpy as np
        from PIL import Image as PILImage

        values = np.asarray(image, dtype=np.float64)
        values = np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)
        low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
        scaled = (values - low) * (255.0 / (high - low)) if high > low else values * 0.0
        return PILImage.fromarray(scaled.round().clip(0, 255).astype(np.uint8))  # 2-D uint8: L
    # CMYK, YCbCr, LAB, HSV, RGBX...: colour without alpha (LAB's "A" band is a colour axis)
    return image.convert("RGB")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0][:100] if text else "") or type(exc).__name__


def image_size(data: bytes) -> tuple[int, int]:
    """(width, height) from the header, without decoding the pixels."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        return image.size


def encode_image(image: Image.Image, fmt: str = "png", *, quality: int = 95) -> bytes:
    """Encode a PIL image; RGBA/P are flattened to RGB for JPEG."""
    fmt = fmt.lower()
    pil_format = {"jpg": "JPEG", "jpeg": "JPEG", "png": "PNG", "webp": "WEBP"}[fmt]
    if pil_format == "JPEG" and image.mode not in ("RGB", "L"):
        image = image.convert("RGB")
    buffer = io.BytesIO()
    if pil_format == "PNG":
        image.save(buffer, format="PNG")
    else:
        image.save(buffer, format=pil_format, quality=quality)
    return buffer.getvalue()
