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

__all__ = ["InputImage"]

_ACCEPTED = "a path, an https:// URL, encoded image bytes, a PIL image or a uint8 numpy array"


@dataclass(frozen=True, eq=False)
class InputImage:
    """An init or reference image, either remote (``url``) or in memory (``data``, encoded).

    Build with :meth:`from_any`; backends send ``url`` as is and ``data`` inline (data URI) or
    through an upload, keyed by :attr:`sha256` so each image is uploaded once.
    """

    url: str | None = None
    data: bytes | None = field(default=None, repr=False)

    @classmethod
    def from_any(cls, value: Any, *, field: str = "image") -> InputImage:
        if isinstance(value, InputImage):
            return value
        if isinstance(value, str) and value.startswith(("https://", "http://")):
            return cls(url=value)
        if isinstance(value, str) and value.startswith("data:"):
            try:
                return cls._from_bytes(_media.decode_data_uri(value)[0], field)
            except ValueError as exc:
                raise InvalidRequestError(field, value, _ACCEPTED, reason=str(exc)) from None
        if isinstance(value, str | os.PathLike):
            path = Path(value).expanduser()
            if not path.is_file():
                raise InvalidRequestError(field, str(value), _ACCEPTED, reason="no such file")
            return cls._from_bytes(path.read_bytes(), field)
        if isinstance(value, bytes | bytearray | memoryview):
            return cls._from_bytes(bytes(value), field)
        type_name = f"{type(value).__module__}.{type(value).__qualname__}"
        if type_name.startswith("PIL.") and hasattr(value, "save"):
            return cls(data=_media.encode_image(value, "png"))
        if type_name == "numpy.ndarray":
            return cls(data=_media.encode_image(_array_to_pil(value, field), "png"))
        raise InvalidRequestError(field, value, _ACCEPTED, reason=f"unsupported type {type_name}")

    @classmethod
    def _from_bytes(cls, data: bytes, field: str) -> InputImage:
        if _media.sniff_format(data) is None:
            # Not a common web format: let Pillow decide, then carry it as PNG.
            try:
                return cls(data=_media.encode_image(_media.open_image(data), "png"))
            except Exception as exc:
                raise InvalidRequestError(
                    field, f"<{len(data)} bytes>", _ACCEPTED, reason=f"not a readable image: {exc}"
                ) from None
        return cls(data=data)

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

    if array.dtype != np.uint8:
        if (
            np.issubdtype(array.dtype, np.floating)
            and array.size
            and array.min() >= 0
            and array.max() <= 1
        ):
            array = (array * 255).round().astype(np.uint8)
        else:
            raise InvalidRequestError(field, f"<array {array.dtype}>", "uint8 0-255 or float 0-1")
    if array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (3, 4)):
        return Image.fromarray(array)
    raise InvalidRequestError(field, f"<array shape {array.shape}>", "HxW, HxWx3 or HxWx4")
