"""Face detection: the `Face` record, the detectors, and `detect_faces`.

Detectors are tuned for images of a few hundred pixels, so each one works on a downscaled copy
and scales its boxes back. Candidates are ranked by the detector's own confidence, never by area:
OpenCV's Haar cascade can return a background false positive larger than the real face.
"""

from __future__ import annotations

import functools
import os

from fluxkit._exceptions import InvalidRequestError, MissingDependencyError
from fluxkit.faces._errors import FaceNotFoundError, MultipleFacesError
from fluxkit.faces._face import Face, FaceDetector
from fluxkit.faces._haar import HaarDetector
from fluxkit.faces._io import FaceImageLike, load_bgr
from fluxkit.faces._landmarks import YuFaceDetector, YuNetDetector

__all__ = ["DETECTORS", "detect_faces", "get_detector", "pick_face", "rank_faces"]

DETECTORS: tuple[str, ...] = ("auto", "haar", "yuface", "yunet")
"""Detector names accepted by ``detector=``; ``"auto"`` is ``"yuface"`` when installed, else
``"haar"``."""


def get_detector(detector: str | FaceDetector = "auto") -> FaceDetector:
    """Resolve a detector name (see `DETECTORS`) or pass an instance through.

    Example:
        ```python
        from fluxkit.faces import get_detector

        get_detector("haar").name  # "haar"
        ```
    """
    if not isinstance(detector, str):
        return detector
    if detector not in DETECTORS:
        raise InvalidRequestError("detector", detector, ", ".join(DETECTORS) + " or an instance")
    return _named_detector(detector, os.environ.get("FLUXKIT_YUNET_MODEL"))


@functools.lru_cache(maxsize=8)
def _named_detector(name: str, yunet_model: str | None) -> FaceDetector:
    if name == "haar":
        return HaarDetector()
    if name == "yuface":
        return YuFaceDetector()
    if name == "yunet":
        if not yunet_model:
            raise InvalidRequestError(
                "detector",
                "yunet",
                "YuNetDetector('face_detection_yunet_2023mar.onnx') or FLUXKIT_YUNET_MODEL set",
                reason="the YuNet model file is not bundled with any wheel",
            )
        return YuNetDetector(yunet_model)
    try:
        return YuFaceDetector()
    except MissingDependencyError:
        return HaarDetector()


def detect_faces(
    image: FaceImageLike, *, detector: str | FaceDetector = "auto", role: str = "image"
) -> list[Face]:
    """Find the faces in ``image``, most confident first (larger first among equals).

    Works offline: the default Haar cascades ship inside ``opencv-python-headless``.

    Args:
        image: a path, encoded bytes, a PIL image or an RGB uint8 array.
        detector: ``"auto"``, ``"haar"``, ``"yuface"``, ``"yunet"`` or a `FaceDetector`.
        role: how errors name the image (``"target"``, ``"headshot"``).

    Returns:
        Every face found, possibly none; ``faces[0]`` is the best candidate.

    Example:
        ```python
        from matplotlib import cbook
        from fluxkit.faces import detect_faces

        faces = detect_faces(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
        faces[0].box   # (x, y, width, height)
        ```
    """
    return rank_faces(get_detector(detector).detect(load_bgr(image, role)))


def rank_faces(faces: list[Face]) -> list[Face]:
    """Most confident first; among equal confidence, larger first."""
    return sorted(faces, key=lambda f: (-f.confidence, -f.box[2] * f.box[3]))


def pick_face(
    faces: list[Face],
    index: int | None,
    *,
    role: str,
    size: tuple[int, int],
    detector: FaceDetector,
    index_argument: str,
) -> Face:
    """The face ``index`` selects, or the only clearly best one; raises when there is none."""
    if not faces:
        raise FaceNotFoundError(role, size, detector=detector.name)
    if index is not None:
        if not -len(faces) <= index < len(faces):
            raise InvalidRequestError(
                index_argument, index, f"0..{len(faces) - 1}", reason=f"{len(faces)} faces found"
            )
        return faces[index]
    top = faces[0]
    rivals = [
        face
        for face in faces[1:]
        if face.confidence >= detector.confident and face.confidence >= 0.5 * top.confidence
    ]
    if rivals:
        raise MultipleFacesError(role, faces, index_argument=index_argument)
    return top
