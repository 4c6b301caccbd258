"""The default detector: OpenCV's frontal-face Haar cascade, offline from the wheel.

It gives boxes only (no landmarks), misses faces tilted beyond ~12 degrees, and is ranked by the
cascade's level weight from ``detectMultiScale3(..., outputRejectLevels=True)``, which separates
real faces (weights of about 3-10) from false positives (about -1 to 1.5) far better than area.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from fluxkit._exceptions import MissingDependencyError
from fluxkit.faces._face import Face, downscale
from fluxkit.faces._io import Pixels, require_cv2

__all__ = ["HaarDetector"]

_CASCADE = "haarcascade_frontalface_default.xml"
# (longest side scanned, smallest face as a fraction of the shorter side): a fast coarse pass
# that finds portrait-sized faces, then a finer one only when the first found nothing.
_PASSES = ((400, 0.08), (800, 0.03))
_MIN_FACE_PX = 24


class HaarDetector:
    """OpenCV Haar cascade face detector (``detector="haar"``).

    Args:
        min_confidence: drop candidates whose cascade weight is below this.
        scale_factor: the cascade's pyramid step; smaller is slower and finds more.
        min_neighbors: overlapping hits needed to keep a candidate.

    Example:
        ```python
        from fluxkit.faces import HaarDetector, detect_faces

        faces = detect_faces("portrait.jpg", detector=HaarDetector(min_confidence=2.0))
        ```
    """

    name = "haar"
    confident = 2.5

    def __init__(
        self, *, min_confidence: float = 0.0, scale_factor: float = 1.15, min_neighbors: int = 4
    ) -> None:
        require_cv2()  # fail when the detector is chosen, not at the first image
        self.min_confidence = min_confidence
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        # A classifier per thread: the async API runs detection in worker threads, and OpenCV
        # does not promise that one CascadeClassifier is safe to share.
        self._local = threading.local()

    def detect(self, image: Pixels) -> list[Face]:
        """Faces in ``image`` (BGR uint8), in full-image coordinates."""
        cv2: Any = require_cv2()
        for max_side, min_fraction in _PASSES:
            small, factor = downscale(image, max_side)
            gray = cv2.equalizeHist(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY))
            min_px = max(_MIN_FACE_PX, int(min(gray.shape) * min_fraction))
            boxes, _, weights = self._classifier().detectMultiScale3(
                gray,
                scaleFactor=self.scale_factor,
                minNeighbors=self.min_neighbors,
                minSize=(min_px, min_px),
                outputRejectLevels=True,
            )
            faces = [
                Face(box=tuple(float(v) for v in box), confidence=float(weight), detector="haar")  # type: ignore[arg-type]
                for box, weight in zip(boxes, weights, strict=True)
                if float(weight) >= self.min_confidence
            ]
            if faces or factor == 1.0:
                return [face.scaled(1.0 / factor) for face in faces]
        return []

    def _classifier(self) -> Any:
        classifier = getattr(self._local, "classifier", None)
        if classifier is None:
            classifier = self._local.classifier = _load_cascade()
        return classifier

    def __repr__(self) -> str:
        return f"HaarDetector(min_confidence={self.min_confidence})"


def _load_cascade() -> Any:
    cv2: Any = require_cv2()
    folder = getattr(getattr(cv2, "data", None), "haarcascades", None)
    path = os.path.join(folder, _CASCADE) if folder else ""
    if not hasattr(cv2, "CascadeClassifier") or not os.path.isfile(path):
        # OpenCV 5 dropped both the class and the XML files from the headless wheel.
        raise MissingDependencyError(
            "Haar face detection", extra="faces", package="opencv-python-headless>=4.8,<5"
        )
    classifier = cv2.CascadeClassifier(path)
    if classifier.empty():
        raise MissingDependencyError(
            "Haar face detection", extra="faces", package="opencv-python-headless>=4.8,<5"
        )
    return classifier
