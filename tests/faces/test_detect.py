"""detect_faces and face choice: real faces, ranking, ambiguity, detectors."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from fluxkit import InvalidRequestError, MissingDependencyError
from fluxkit.faces import (
    Face,
    FaceDetector,
    HaarDetector,
    MultipleFacesError,
    YuNetDetector,
    detect_faces,
    get_detector,
    overlay_face,
)


def _inside(point: tuple[float, float], box: tuple[float, float, float, float]) -> bool:
    x, y, w, h = box
    return x <= point[0] <= x + w and y <= point[1] <= y + h


def test_haar_finds_both_faces(astronaut, grace) -> None:
    astro_faces = detect_faces(astronaut, detector="haar")
    grace_faces = detect_faces(grace, detector="haar")
    assert astro_faces and grace_faces
    # Eileen Collins' face centre is near (255, 125) in astronaut.png; Grace Hopper's near (265, 215).
    assert _inside((255, 125), astro_faces[0].box)
    assert _inside((265, 215), grace_faces[0].box)
    assert astro_faces[0].confidence > 2.5 and astro_faces[0].landmarks == {}


def test_haar_finds_the_face_in_a_painting(painted_grace) -> None:
    faces = detect_faces(painted_grace, detector="haar")
    assert faces and _inside((265, 215), faces[0].box)


def test_haar_ranks_by_confidence_not_area(astronaut) -> None:
    """At 1024 px the cascade also fires on the background with a *bigger* box."""
    big = astronaut.resize((1024, 1024), Image.Resampling.LANCZOS)
    faces = detect_faces(big, detector=HaarDetector(min_confidence=-5.0))
    assert _inside((510, 250), faces[0].box)
    confidences = [f.confidence for f in faces]
    assert confidences == sorted(confidences, reverse=True)


def test_blank_image_has_no_faces(blank) -> None:
    assert detect_faces(blank, detector="haar") == []


def test_ranking_is_by_confidence_then_area(fixed_detector) -> None:
    image = Image.new("RGB", (300, 200))
    big_weak = Face((0, 0, 150, 150), 1.0, detector="fixed")
    small_sure = Face((200, 20, 40, 40), 6.0, detector="fixed")
    small_equal = Face((100, 100, 30, 30), 1.0, detector="fixed")
    faces = detect_faces(image, detector=fixed_detector((300, [small_equal, big_weak, small_sure])))
    assert faces == [small_sure, big_weak, small_equal]


def test_two_real_faces_are_ambiguous(astronaut, grace) -> None:
    # Both faces at portrait scale (the astronaut's is small in its frame, so crop and enlarge).
    closer = astronaut.crop((100, 0, 512, 412)).resize((600, 600), Image.Resampling.LANCZOS)
    pair = Image.new("RGB", (1112, 600), (128, 128, 128))
    pair.paste(closer, (0, 0))
    pair.paste(grace, (600, 0))
    with pytest.raises(MultipleFacesError, match="face_index") as caught:
        overlay_face(pair, grace, detector="haar")
    assert caught.value.role == "target" and len(caught.value.faces) == 2
    chosen = overlay_face(pair, grace, detector="haar", face_index=1)
    assert chosen.target_face == caught.value.faces[1]
    with pytest.raises(InvalidRequestError, match="face_index"):
        overlay_face(pair, grace, detector="haar", face_index=2)


def test_a_weak_second_candidate_is_not_ambiguous(fixed_detector, grace) -> None:
    target = Image.new("RGB", (400, 300))
    detector = fixed_detector(
        (400, [Face((100, 50, 100, 100), 6.0), Face((300, 200, 90, 90), 1.0)]),
        (512, [Face((150, 150, 200, 250), 6.0)]),
    )
    assert overlay_face(target, grace, detector=detector).target_face.confidence == 6.0


def test_get_detector_by_name_and_instance() -> None:
    assert get_detector("haar").name == "haar"
    assert get_detector("auto").name in ("haar", "yuface")
    mine = HaarDetector(min_confidence=3.0)
    assert get_detector(mine) is mine
    assert isinstance(mine, FaceDetector)
    with pytest.raises(InvalidRequestError, match="detector"):
        get_detector("mtcnn")


def test_yunet_needs_a_model_file(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv("FLUXKIT_YUNET_MODEL", raising=False)
    with pytest.raises(InvalidRequestError, match="YuNet"):
        get_detector("yunet")
    with pytest.raises(InvalidRequestError, match="no such file"):
        YuNetDetector(tmp_path / "missing.onnx")


def test_yunet_rows_become_faces_with_image_left_eye_first(monkeypatch, tmp_path) -> None:
    """cv2.FaceDetectorYN rows are x, y, w, h, 5 points, score; parsed on a stand-in net."""
    import cv2

    model = tmp_path / "yunet.onnx"
    model.write_bytes(b"stand-in")

    class Net:
        def setInputSize(self, size: tuple[int, int]) -> None:
            self.size = size

        def detect(self, image: np.ndarray) -> tuple[int, np.ndarray]:
            row = [10, 20, 100, 120, 40, 60, 80, 62, 60, 90, 45, 110, 75, 111, 0.93]
            return 1, np.array([row], np.float32)

    monkeypatch.setattr(cv2.FaceDetectorYN, "create", lambda *args: Net(), raising=False)
    faces = YuNetDetector(model).detect(np.zeros((200, 300, 3), np.uint8))
    assert faces[0].box == (10, 20, 100, 120)
    assert faces[0].eyes == ((40, 60), (80, 62))
    assert faces[0].confidence == pytest.approx(0.93)


def test_yuface_gives_eyes_and_aligns_by_them(astronaut, grace) -> None:
    pytest.importorskip("yuface")
    face = detect_faces(astronaut, detector="yuface")[0]
    assert face.eyes is not None
    left, right = face.eyes
    assert left[0] < right[0] and _inside(left, face.box) and _inside(right, face.box)
    composite = overlay_face(astronaut, grace, detector="yuface")
    assert composite.alignment == "eyes"


def test_missing_opencv_names_the_extra(monkeypatch, astronaut, fixed_detector) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "cv2", None)
    with pytest.raises(MissingDependencyError, match=r"fluxkit\[faces\]"):
        HaarDetector()  # chosen detector fails up front, not at the first image
    with pytest.raises(MissingDependencyError, match="opencv-python-headless"):
        # Even with a detector that needs no OpenCV, warping and blending do.
        face = Face((180, 100, 150, 150), 9.0)
        overlay_face(astronaut, astronaut, detector=fixed_detector((512, [face])))


def test_face_helpers() -> None:
    face = Face((10, 20, 100, 50), 0.9, {"left_eye": (30, 40), "right_eye": (70, 40)})
    assert face.center == (60, 45)
    assert face.scaled(2).box == (20, 40, 200, 100)
    assert face.scaled(2).eyes == ((60, 80), (140, 80))
    assert Face((0, 0, 1, 1), 1.0).eyes is None
    assert "100x50" in face.describe()
