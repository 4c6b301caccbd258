"""Reading input images into the BGR arrays OpenCV works on, and back to PIL.

Everything is decoded by Pillow, never ``cv2.imread``: Pillow keeps its decompression-bomb guard
and applies EXIF orientation (phone headshots are often stored sideways, and no detector finds a
face lying on its side).
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

import numpy as np
import numpy.typing as npt

from fluxkit._exceptions import MissingDependencyError
from fluxkit.faces._errors import UnreadableImageError

if TYPE_CHECKING:
    from PIL import Image

__all__ = [
    "OUTPUT_FORMATS",
    "FaceImageLike",
    "Pixels",
    "load_bgr",
    "output_format",
    "require_cv2",
    "save_image",
    "to_pil",
]

Pixels = npt.NDArray[np.uint8]
"""An HxWx3 uint8 image in OpenCV's BGR channel order."""

FaceImageLike = Union[str, os.PathLike[str], bytes, "Image.Image", "npt.NDArray[Any]"]
"""What the face functions accept: a path, encoded bytes, a PIL image, or an RGB/RGBA/grey
uint8 array (channel order as Pillow and scikit-image use, *not* OpenCV's BGR). Objects with a
``to_pil()`` method (fluxkit's ``GeneratedImage``) work too."""


OUTPUT_FORMATS: dict[str, str] = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".webp": "WEBP",
    ".bmp": "BMP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
}
"""Suffixes a composite can be saved as, and Pillow's format name for each."""


def output_format(path: str | os.PathLike[str]) -> str:
    """Pillow's format name for ``path``'s suffix, or an ``InvalidRequestError``.

    Checked before any work (and before any paid restyle) so a typo in the output name cannot
    waste a generation.

    Example:
        ```python
        from fluxkit.faces._io import output_format

        output_format("out.jpg")  # 'JPEG'
        ```
    """
    from fluxkit._exceptions import InvalidRequestError

    fmt = OUTPUT_FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise InvalidRequestError(
            "output", os.fspath(path), "a file name ending in " + ", ".join(OUTPUT_FORMATS)
        )
    return fmt


def save_image(
    image: Image.Image, path: str | os.PathLike[str], *, overwrite: bool = False
) -> Path:
    """Encode ``image`` (format from the suffix) and write it atomically to ``path``.

    The file appears complete or not at all; an existing file is replaced only with
    ``overwrite=True``.

    Raises:
        InvalidRequestError: the suffix is not an image format.
        OutputExistsError: ``path`` exists and ``overwrite`` is False.

    Example:
        ```python
        from PIL import Image
        from fluxkit.faces._io import save_image

        save_image(Image.new("RGB", (8, 8)), "black.png")
        ```
    """
    from fluxkit._exceptions import OutputExistsError
    from fluxkit._files import atomic_write

    target = Path(path)
    fmt = output_format(target)
    if not overwrite and os.path.lexists(target):
        raise OutputExistsError(target)
    if fmt == "JPEG" and image.mode not in ("RGB", "L"):
        image = image.convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return atomic_write(target, buffer.getvalue(), overwrite=overwrite)


def require_cv2() -> Any:
    """The ``cv2`` module, or a `MissingDependencyError` naming the ``faces`` extra."""
    try:
        import cv2
    except ImportError as exc:
        raise MissingDependencyError(
            "face compositing", extra="faces", package="opencv-python-headless"
        ) from exc
    return cv2


def load_bgr(value: object, role: str) -> Pixels:
    """Decode ``value`` to a BGR uint8 array; ``role`` ("target"/"headshot") names it in errors."""
    from PIL import Image

    if isinstance(value, np.ndarray):
        return _array_to_bgr(value, role)
    if isinstance(value, Image.Image):
        image = value
    elif hasattr(value, "to_pil") and callable(value.to_pil):
        image = value.to_pil()
    elif isinstance(value, bytes | bytearray | memoryview):
        image = _open(io.BytesIO(bytes(value)), role, f"<{len(value)} bytes>")
    elif isinstance(value, str | os.PathLike):
        path = Path(value).expanduser()
        if not path.is_file():
            raise UnreadableImageError(role, str(value), "no such file")
        image = _open(path, role, str(value))
    else:
        kind = f"{type(value).__module__}.{type(value).__qualname__}"
        raise UnreadableImageError(role, value, f"unsupported type {kind}")
    rgb = np.asarray(_to_rgb(image))
    return np.ascontiguousarray(rgb[:, :, ::-1])


def to_pil(bgr: Pixels) -> Image.Image:
    """A PIL RGB image of a BGR array."""
    from PIL import Image

    return Image.fromarray(np.ascontiguousarray(bgr[:, :, ::-1]), "RGB")


MAX_FACE_PIXELS = 50_000_000
"""Largest image (width x height) the face tools decode: 50 MP, about 150 MB as RGB.

Checked from the header before decoding. A larger JPEG headshot is decoded at a reduced scale
(JPEG's DCT scaling: only a face is taken from it); a larger target is refused, since the
composite must keep the target's size."""


def _open(source: io.BytesIO | Path, role: str, shown: str) -> Image.Image:
    import warnings

    from PIL import Image, ImageOps

    try:
        with warnings.catch_warnings():
            # our own cap below is stricter than Pillow's bomb warning: keep it quiet
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(source)
        width, height = image.size
        if width * height > MAX_FACE_PIXELS:
            if role == "headshot" and image.format == "JPEG":
                # draft() keeps each side at least the size asked and under twice it: asking
                # for half the capped side guarantees the result fits the cap
                scale = (MAX_FACE_PIXELS / (width * height)) ** 0.5 / 2
                image.draft("RGB", (int(width * scale), int(height * scale)))
            if image.size[0] * image.size[1] > MAX_FACE_PIXELS:
                raise UnreadableImageError(
                    role,
                    shown,
                    f"{width}x{height} is over the {MAX_FACE_PIXELS // 1_000_000} MP limit "
                    "of the face tools",
                )
        image.load()
    except UnreadableImageError:
        raise
    except Image.DecompressionBombError as exc:
        raise UnreadableImageError(
            role, shown, f"refused as a possible decompression bomb: {exc}"
        ) from None
    except Exception as exc:  # OSError, SyntaxError, EOFError, struct.error: a broken file
        raise UnreadableImageError(role, shown, f"not a readable image: {exc}") from None
    return ImageOps.exif_transpose(image)


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode == "RGB":
        return image
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        # Transparent areas become white rather than whatever colour hides under alpha 0.
        from PIL import Image

        rgba = image.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, (255, 255, 255))
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        return canvas
    return image.convert("RGB")


def _array_to_bgr(array: npt.NDArray[Any], role: str) -> Pixels:
    if array.dtype != np.uint8:
        raise UnreadableImageError(role, f"<array {array.dtype}>", "arrays must be uint8 (0-255)")
    if array.ndim == 2:
        return np.ascontiguousarray(np.repeat(array[:, :, None], 3, axis=2))
    if array.ndim == 3 and array.shape[2] in (3, 4):
        return np.ascontiguousarray(array[:, :, 2::-1])
    raise UnreadableImageError(role, f"<array shape {array.shape}>", "shape must be HxW or HxWx3/4")
