"""Input images: whatever the user passes, normalised once to URL or encoded bytes."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fluxkit._core import _media
from fluxkit._exceptions import InvalidRequestError

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["MAX_INPUT_BYTES", "MAX_INPUT_PIXELS", "MAX_INPUT_SIDE", "InputImage"]

MAX_INPUT_BYTES = 50 * 1024 * 1024
"""Largest encoded input image (file, bytes or data URI) fluxkit reads: 50 MiB.

A file's size is checked with ``stat`` before a byte of it is read."""
MAX_INPUT_PIXELS = 50_000_000
"""Largest input image in pixels (width x height): 50 MP, a 48 MP phone photo fits.

Checked from the header before the pixels are decoded: providers scale inputs to about 1-2 MP,
so anything larger only costs memory, upload time and money."""
MAX_INPUT_SIDE = 16_384
"""Longest side of an input image, in pixels."""

_ACCEPTED = "a path, an https:// URL, encoded image bytes, a PIL image or a uint8 numpy array"
_LIMITS = (
    f"a decodable PNG/JPEG/WebP/... image of at most {MAX_INPUT_PIXELS // 1_000_000} MP, "
    f"{MAX_INPUT_SIDE} px a side and {MAX_INPUT_BYTES // 2**20} MiB"
)
# Encoded formats providers read as they are; anything else is re-encoded as PNG.
_PASSTHROUGH_FORMATS = frozenset({"png", "jpeg", "webp"})
_PASSTHROUGH_MODES = frozenset({"RGB", "RGBA", "L"})


@dataclass(frozen=True, eq=False)
class InputImage:
    """An init or reference image, either remote (``url``) or in memory (``data``, encoded).

    Build with :meth:`from_any`; backends send ``url`` as is and ``data`` inline (data URI) or
    through an upload, keyed by :attr:`sha256` so each image is uploaded once.

    Every in-memory image is decoded and verified when it is built, before any network call:
    at most :data:`MAX_INPUT_BYTES` encoded, :data:`MAX_INPUT_PIXELS` pixels and
    :data:`MAX_INPUT_SIDE` a side, all pixels present (truncated files are refused), and in a
    mode providers read (CMYK, 16-bit, float, palette, ... are converted and sent as PNG).

    Example:
        ```python
        from fluxkit import InputImage

        image = InputImage.from_any("photo.jpg", field="image")
        image.mime, image.size        # ("image/jpeg", (1024, 768))
        ```
    """

    url: str | None = None
    data: bytes | None = field(default=None, repr=False)
    size: tuple[int, int] | None = None
    """(width, height) of in-memory images; None for URLs (not downloaded)."""
    path: str | None = field(default=None, compare=False)
    """The file it was read from, when it was given as a path (kept in generation records so
    ``fluxkit.replay`` can find it again)."""

    @classmethod
    def from_any(cls, value: Any, *, field: str = "image") -> InputImage:
        """Normalise what the user passed; raise :class:`InvalidRequestError` naming ``field``.

        Example:
            ```python
            from fluxkit import InputImage

            InputImage.from_any("https://example.com/face.png").url
            InputImage.from_any(open("face.png", "rb").read(), field="reference_image")
            ```
        """
        if isinstance(value, InputImage):
            return value
        if isinstance(value, str) and value.startswith(("https://", "http://")):
            return cls._from_url(value, field)
        if isinstance(value, str) and value.startswith("data:"):
            # base64 is 4/3 of the bytes: refuse an oversized URI before decoding it
            if len(value) > MAX_INPUT_BYTES * 4 // 3 + 1024:
                raise InvalidRequestError(
                    field, f"<data URI of {len(value)} chars>", _LIMITS, reason="too large"
                )
            try:
                decoded = _media.decode_data_uri(value)[0]
            except ValueError as exc:
                raise InvalidRequestError(
                    field, value[:40], _ACCEPTED, reason=str(exc)[:100]
                ) from None
            return cls._from_bytes(decoded, field)
        if isinstance(value, str | os.PathLike):
            return cls._from_path(value, field)
        if isinstance(value, bytes | bytearray | memoryview):
            if len(value) > MAX_INPUT_BYTES:
                raise InvalidRequestError(
                    field, f"<{len(value)} bytes>", _LIMITS, reason="too large"
                )
            return cls._from_bytes(bytes(value), field)
        type_name = f"{type(value).__module__}.{type(value).__qualname__}"
        if type_name.startswith("PIL.") and hasattr(value, "save"):
            return cls._from_pil(value, field)
        if type_name == "numpy.ndarray":
            return cls._from_pil(_array_to_pil(value, field), field)
        raise InvalidRequestError(
            field, f"<{type_name}>", _ACCEPTED, reason=f"unsupported type {type_name}"
        )

    @classmethod
    def _from_url(cls, value: str, field: str) -> InputImage:
        from urllib.parse import urlsplit

        try:
            host = urlsplit(value).hostname
        except ValueError:
            host = None
        if not host or any(ch.isspace() or ord(ch) < 32 for ch in value):
            raise InvalidRequestError(field, value, _ACCEPTED, reason="not a valid URL")
        return cls(url=value)

    @classmethod
    def _from_path(cls, value: str | os.PathLike[Any], field: str) -> InputImage:
        shown = repr(value)[:80]
        try:
            path = Path(value).expanduser()
            # stat before reading: a 512 MB sparse "JPEG" must not be read into memory
            stat = path.stat()
        except FileNotFoundError:
            raise InvalidRequestError(field, shown, _ACCEPTED, reason="no such file") from None
        except (OSError, RuntimeError, ValueError, TypeError) as exc:
            # ENAMETOOLONG, "~nosuchuser" (RuntimeError), NUL bytes (ValueError), bytes paths
            reason = f"unreadable path: {type(exc).__name__}"
            raise InvalidRequestError(field, shown, _ACCEPTED, reason=reason) from None
        import stat as stat_module

        if not stat_module.S_ISREG(stat.st_mode):
            raise InvalidRequestError(field, shown, _ACCEPTED, reason="not a regular file")
        if stat.st_size > MAX_INPUT_BYTES:
            raise InvalidRequestError(field, shown, _LIMITS, reason=f"file is {stat.st_size} bytes")
        try:
            with path.open("rb") as handle:
                # read one byte more than allowed: a file that grew since stat is still caught
                data = handle.read(MAX_INPUT_BYTES + 1)
        except OSError as exc:
            raise InvalidRequestError(
                field, shown, _ACCEPTED, reason=f"unreadable file: {type(exc).__name__}"
            ) from None
        if len(data) > MAX_INPUT_BYTES:
            raise InvalidRequestError(field, shown, _LIMITS, reason="file is too large")
        from dataclasses import replace

        return replace(cls._from_bytes(data, field), path=str(path.resolve()))

    @classmethod
    def _from_bytes(cls, data: bytes, field: str) -> InputImage:
        try:
            image = _media.open_verified(data, max_pixels=MAX_INPUT_PIXELS, max_side=MAX_INPUT_SIDE)
        except _media.ImageRefused as exc:
            raise InvalidRequestError(
                field, f"<{len(data)} bytes>", _LIMITS, reason=exc.reason
            ) from None
        with image:
            fmt = _media.sniff_format(data)
            frames = int(getattr(image, "n_frames", 1) or 1)
            if fmt in _PASSTHROUGH_FORMATS and image.mode in _PASSTHROUGH_MODES and frames == 1:
                # verified and already in a form providers read: send the user's bytes unchanged
                return cls(data=data, size=image.size)
            return cls._encoded(image, field)

    @classmethod
    def _from_pil(cls, image: Image.Image, field: str) -> InputImage:
        try:
            width, height = image.size
        except Exception:
            raise InvalidRequestError(field, "<PIL image>", _LIMITS, reason="no size") from None
        if width < 1 or height < 1:
            raise InvalidRequestError(
                field, f"<PIL image {width}x{height}>", _LIMITS, reason="empty"
            )
        if width > MAX_INPUT_SIDE or height > MAX_INPUT_SIDE or width * height > MAX_INPUT_PIXELS:
            raise InvalidRequestError(
                field, f"<PIL image {width}x{height}>", _LIMITS, reason="too large"
            )
        try:
            image.load()  # a lazily opened file may still be truncated
        except Exception as exc:
            raise InvalidRequestError(
                field,
                f"<PIL image {width}x{height}>",
                _LIMITS,
                reason=f"corrupt or truncated image: {type(exc).__name__}",
            ) from None
        return cls._encoded(image, field)

    @classmethod
    def _encoded(cls, image: Image.Image, field: str) -> InputImage:
        """``image`` converted to a provider-safe mode and encoded as PNG."""
        try:
            normal = _media.normalise_mode(image)
            return cls(data=_media.encode_image(normal, "png"), size=normal.size)
        except Exception as exc:
            raise InvalidRequestError(
                field,
                f"<{image.mode} image {image.size[0]}x{image.size[1]}>",
                _LIMITS,
                reason=f"cannot convert: {type(exc).__name__}",
            ) from None

    @cached_property
    def sha256(self) -> str:
        """Content hash (of the bytes, or of the URL for remote images)."""
        return _media.content_hash(
            self.data if self.data is not None else (self.url or "").encode()
        )

    @property
    def mime(self) -> str:
        return _media.mime_type(self.data) if self.data is not None else "application/octet-stream"

    def data_uri(self) -> str:
        if self.data is None:
            raise ValueError("remote image has no inline data")
        return _media.data_uri(self.data)

    def to_pil(self) -> Image.Image:
        if self.data is None:
            raise ValueError("remote image: download it first")
        return _media.open_image(self.data)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, InputImage) and self.sha256 == other.sha256

    def __hash__(self) -> int:
        return hash(self.sha256)

    def __repr__(self) -> str:
        if self.url:
            return f"InputImage(url={self.url[:60]!r})"
        return f"InputImage(<{len(self.data or b'')} bytes {self.mime}, sha256={self.sha256[:12]}>)"


def _array_to_pil(array: Any, field: str) -> Image.Image:
    import numpy as np
    from PIL import Image

    shape = tuple(array.shape)
    if not (len(shape) == 2 or (len(shape) == 3 and shape[2] in (3, 4))) or 0 in shape:
        raise InvalidRequestError(field, f"<array shape {shape}>", "HxW, HxWx3 or HxWx4")
    if (
        shape[0] > MAX_INPUT_SIDE
        or shape[1] > MAX_INPUT_SIDE
        or shape[0] * shape[1] > MAX_INPUT_PIXELS
    ):
        raise InvalidRequestError(field, f"<array shape {shape}>", _LIMITS, reason="too large")
    if array.dtype != np.uint8:
        floating = np.issubdtype(array.dtype, np.floating)
        # NaN fails both comparisons, so it is refused with the other out-of-range values
        if floating and bool(np.all((array >= 0) & (array <= 1))):
            array = (array * 255).round().astype(np.uint8)
        else:
            raise InvalidRequestError(field, f"<array {array.dtype}>", "uint8 0-255 or float 0-1")
    return Image.fromarray(np.ascontiguousarray(array))
