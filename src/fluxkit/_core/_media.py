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
    "open_image",
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
