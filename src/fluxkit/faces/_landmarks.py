"""Detectors that also give five landmarks (eyes, nose tip, mouth corners), both YuNet.

* ``yuface``: libfacedetection's YuNet compiled into a 0.5 MB wheel with the weights inside
  (offline; CPython <= 3.11 on Linux only). Picked by ``detector="auto"`` when installed.
* ``yunet``: OpenCV's own ``cv2.FaceDetectorYN`` with a YuNet ONNX file you supply (no wheel
  ships it; get ``face_detection_yunet_2023mar.onnx`` from the OpenCV model zoo).

Both tolerate ~45 degrees of roll, where Haar gives up at ~12, and the eyes let the compositor
rotate the headshot to the target's head tilt.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import numpy as np

from fluxkit._exceptions import InvalidRequestError, MissingDependencyError
from fluxkit.faces._face import Face, downscale
from fluxkit.faces._io import Pixels, require_cv2

__all__ = ["YuFaceDetector", "YuNetDetector"]

# Both report points in this order, with left/right as seen in the image.
_LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")


def _face(box: Any, score: float, points: Any, factor: float, name: str) -> Face:
    xy = np.asarray(points, dtype=np.float64).reshape(5, 2) / factor
    x, y, w, h = (float(v) / factor for v in box)
    landmarks = {
        key: (float(px), float(py)) for key, (px, py) in zip(_LANDMARK_NAMES, xy, strict=True)
    }
    return Face(box=(x, y, w, h), confidence=score, landmarks=landmarks, detector=name)


class YuFaceDetector:
    """YuNet from the ``yuface`` package (``detector="yuface"``): boxes and 5 landmarks.

    Args:
        min_confidence: drop candidates below this probability (0-1).

    Example:
        ```python
        from fluxkit.faces import YuFaceDetector, detect_faces

        faces = detect_faces("portrait.jpg", detector=YuFaceDetector())
        faces[0].eyes    # ((x, y), (x, y))
        ```
    """

    name = "yuface"
    confident = 0.8
    max_side = 640  # yuface warns above 960 px and gains nothing at portrait scale

    def __init__(self, *, min_confidence: float = 0.5) -> None:
        try:
            import yuface  # type: ignore[import-not-found, import-untyped, unused-ignore]
        except ImportError as exc:
            raise MissingDependencyError(
                "YuNet face landmarks", extra="faces-landmarks", package="yuface"
            ) from exc
        self._yuface: Any = yuface
        self.min_confidence = min_confidence

    def detect(self, image: Pixels) -> list[Face]:
        """Faces in ``image`` (BGR uint8) with landmarks, in full-image coordinates."""
        small, factor = downscale(image, self.max_side)
        scores, boxes, points = self._yuface.detect(
            np.ascontiguousarray(small), conf=self.min_confidence
        )
        return [
            _face(box, float(score) / 100.0, pts, factor, self.name)
            for score, box, pts in zip(scores, boxes, points, strict=True)
        ]

    def __repr__(self) -> str:
        return f"YuFaceDetector(min_confidence={self.min_confidence})"


class YuNetDetector:
    """YuNet through ``cv2.FaceDetectorYN`` with a model file you supply (``detector="yunet"``).

    Args:
        model: path to a YuNet ONNX file, e.g. ``face_detection_yunet_2023mar.onnx``.
        min_confidence: drop candidates below this probability (0-1).

    Example:
        ```python
        from fluxkit.faces import YuNetDetector, overlay_face

        detector = YuNetDetector("models/face_detection_yunet_2023mar.onnx")
        overlay_face("painting.png", "me.jpg", detector=detector)
        ```
    """

    name = "yunet"
    confident = 0.8
    max_side = 640

    def __init__(self, model: str | os.PathLike[str], *, min_confidence: float = 0.6) -> None:
        self.model = os.fspath(model)
        if not os.path.isfile(self.model):
            raise InvalidRequestError(
                "model", self.model, "a YuNet .onnx file", reason="no such file"
            )
        self.min_confidence = min_confidence
        self._local = threading.local()  # one cv2 detector per thread: it keeps state

    def detect(self, image: Pixels) -> list[Face]:
        """Faces in ``image`` (BGR uint8) with landmarks, in full-image coordinates."""
        small, factor = downscale(image, self.max_side)
        net = self._net()
        net.setInputSize((small.shape[1], small.shape[0]))
        _, rows = net.detect(small)
        if rows is None:
            return []
        return [_face(row[0:4], float(row[14]), row[4:14], factor, self.name) for row in rows]

    def _net(self) -> Any:
        net = getattr(self._local, "net", None)
        if net is None:
            cv2: Any = require_cv2()
            net = cv2.FaceDetectorYN.create(
                self.model, "", (320, 320), self.min_confidence, 0.3, 50
            )
            self._local.net = net
        return net

    def __repr__(self) -> str:
        return f"YuNetDetector({self.model!r})"
