"""The `Face` record and the `FaceDetector` protocol every detector follows."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from fluxkit.faces._io import Pixels, require_cv2

__all__ = ["Face", "FaceDetector", "Point", "downscale"]

Point = tuple[float, float]


@dataclass(frozen=True)
class Face:
    """One detected face, in the pixel coordinates of the image it was found in.

    Attributes:
        box: ``(x, y, width, height)`` of the face box.
        confidence: the detector's score; higher is surer. Haar reports its cascade weight
            (unbounded, real faces usually above 2), the YuNet detectors a probability 0-1.
        landmarks: named points when the detector gives them: ``left_eye``, ``right_eye``,
            ``nose``, ``mouth_left``, ``mouth_right``. *Left* and *right* are as seen in the
            image, not from the subject's point of view. Empty for Haar.
        detector: the name of the detector that found it.
    """

    box: tuple[float, float, float, float]
    confidence: float
    landmarks: Mapping[str, Point] = field(default_factory=dict)
    detector: str = "haar"

    @property
    def center(self) -> Point:
        """The centre of the box."""
        x, y, w, h = self.box
        return (x + w / 2, y + h / 2)

    @property
    def eyes(self) -> tuple[Point, Point] | None:
        """``(left_eye, right_eye)`` as seen in the image, or None without landmarks."""
        if "left_eye" in self.landmarks and "right_eye" in self.landmarks:
            return (self.landmarks["left_eye"], self.landmarks["right_eye"])
        return None

    def scaled(self, factor: float) -> Face:
        """The same face with every coordinate multiplied by ``factor``."""
        x, y, w, h = self.box
        return Face(
            box=(x * factor, y * factor, w * factor, h * factor),
            confidence=self.confidence,
            landmarks={k: (px * factor, py * factor) for k, (px, py) in self.landmarks.items()},
            detector=self.detector,
        )

    def describe(self) -> str:
        """A short human description: size, position and confidence."""
        x, y, w, h = self.box
        return f"{w:.0f}x{h:.0f} at ({x:.0f}, {y:.0f}), confidence {self.confidence:.2f}"


@runtime_checkable
class FaceDetector(Protocol):
    """Anything that finds faces in a BGR uint8 array can be passed as ``detector=``.

    ``confident`` is the score above which a second face makes the choice ambiguous.
    """

    name: str
    confident: float

    def detect(self, image: Pixels) -> list[Face]:
        """Faces in full-image coordinates, in any order."""
        ...


def downscale(image: Pixels, max_side: int) -> tuple[Pixels, float]:
    """``image`` shrunk so its longer side is at most ``max_side``, and the factor applied."""
    height, width = image.shape[:2]
    factor = min(1.0, max_side / max(height, width))
    if factor == 1.0:
        return image, 1.0
    cv2: Any = require_cv2()
    small: Pixels = cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
    return small, factor
