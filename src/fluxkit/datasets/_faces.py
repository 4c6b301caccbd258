"""Square crops centred on the face, using the faces helper (``fluxkit[faces]``).

Detection runs on a copy at most 640 px wide (the cascade is tuned for that) and detections are
ranked by the cascade's level weights, not by area: Haar's false positives are often larger than
the real face.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["FaceLocator", "centre_square", "default_face_locator", "square_around"]

FaceLocator = Callable[["Image.Image"], "tuple[int, int, int, int] | None"]
"""Returns the main face as ``(left, top, width, height)`` in image pixels, or None."""

_DETECT_SIDE = 640


def default_face_locator() -> FaceLocator | None:
    """The faces helper's detector (``fluxkit.faces``), else OpenCV's Haar cascade directly;
    None when OpenCV (``fluxkit[faces]``) is not installed."""
    from fluxkit._exceptions import MissingDependencyError

    try:
        from fluxkit.faces import detect_faces, get_detector

        detector = get_detector("auto")
    except (ImportError, MissingDependencyError):
        return _haar_locator()

    def locate(image: Image.Image) -> tuple[int, int, int, int] | None:
        try:
            faces = detect_faces(image, detector=detector)
        except MissingDependencyError:
            return None
        if not faces:
            return None
        x, y, w, h = faces[0].box
        return round(x), round(y), round(w), round(h)

    return locate


def _haar_locator() -> FaceLocator | None:
    try:
        import cv2
    except ImportError:
        return None
    cascade_dir = getattr(getattr(cv2, "data", None), "haarcascades", None)
    if not cascade_dir or not hasattr(cv2, "CascadeClassifier"):
        return None  # OpenCV 5 dropped the cascades
    cascade = cv2.CascadeClassifier(cascade_dir + "haarcascade_frontalface_default.xml")
    if cascade.empty():
        return None

    def locate(image: Image.Image) -> tuple[int, int, int, int] | None:
        import numpy as np

        scale = min(1.0, _DETECT_SIDE / max(image.size))
        small = image.convert("L")
        if scale < 1.0:
            small = small.resize((round(image.size[0] * scale), round(image.size[1] * scale)))
        gray = np.asarray(small)
        boxes, _levels, weights = cascade.detectMultiScale3(
            gray, scaleFactor=1.1, minNeighbors=5, minSize=(24, 24), outputRejectLevels=True
        )
        if len(boxes) == 0:
            return None
        best = max(range(len(boxes)), key=lambda i: float(np.ravel(weights)[i]))
        x, y, w, h = (int(v / scale) for v in boxes[best])
        return x, y, w, h

    return locate


def square_around(
    size: tuple[int, int], face: tuple[int, int, int, int]
) -> tuple[int, int, int, int]:
    """The largest square crop box centred as near the face centre as the image allows."""
    width, height = size
    side = min(width, height)
    cx = face[0] + face[2] / 2
    cy = face[1] + face[3] / 2
    left = int(min(max(cx - side / 2, 0), width - side))
    top = int(min(max(cy - side / 2, 0), height - side))
    return left, top, left + side, top + side


def centre_square(size: tuple[int, int]) -> tuple[int, int, int, int]:
    """The largest centred square crop box."""
    width, height = size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    return left, top, left + side, top + side
