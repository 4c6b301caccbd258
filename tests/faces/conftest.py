"""Shared images: public-domain faces that ship inside registry wheels, nothing downloaded.

* Grace Hopper, ``matplotlib/mpl-data/sample_data/grace_hopper.jpg`` (US Navy photo, 512x600).
* Eileen Collins, ``skimage/data/astronaut.png`` (NASA, 512x512).
* A "painting": Grace Hopper through ``cv2.stylization``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image

cv2 = pytest.importorskip("cv2")

import fluxkit  # noqa: E402
from fluxkit import JobFailedError  # noqa: E402
from fluxkit.backends import Call, CallOutput, CancelToken, LocalBackend  # noqa: E402
from fluxkit.faces import Composite, Face, overlay_face  # noqa: E402


@pytest.fixture(scope="session")
def grace() -> Image.Image:
    from matplotlib import cbook

    path = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    return Image.open(path).convert("RGB")


@pytest.fixture(scope="session")
def astronaut() -> Image.Image:
    from skimage import data

    return Image.fromarray(data.astronaut())


@pytest.fixture(scope="session")
def painted_grace(grace: Image.Image) -> Image.Image:
    return Image.fromarray(cv2.stylization(np.asarray(grace), sigma_s=60, sigma_r=0.45))


@pytest.fixture(scope="session")
def blank() -> Image.Image:
    return Image.new("RGB", (400, 300), (200, 180, 160))


@pytest.fixture(scope="session")
def grace_on_astronaut(astronaut: Image.Image, grace: Image.Image) -> Composite:
    """Grace Hopper's face on the astronaut, Haar detector (the offline default path)."""
    return overlay_face(astronaut, grace, detector="haar")


class FixedDetector:
    """A detector that 'finds' given faces, so geometry can be tested exactly."""

    confident = 0.5

    def __init__(self, *faces_by_width: tuple[int, list[Face]]) -> None:
        self.name = "fixed"
        self._faces = dict(faces_by_width)

    def detect(self, image: npt.NDArray[np.uint8]) -> list[Face]:
        return list(self._faces[image.shape[1]])


@pytest.fixture
def fixed_detector() -> Callable[..., FixedDetector]:
    return FixedDetector


def _gray(image: Any) -> npt.NDArray[np.float32]:
    return cv2.cvtColor(np.asarray(image), cv2.COLOR_RGB2GRAY).astype(np.float32)  # type: ignore[no-any-return]


def _warped_headshot(composite: Composite, headshot: Image.Image) -> npt.NDArray[np.uint8]:
    width, height = composite.image.size
    matrix = np.array(composite.transform)
    return cv2.warpAffine(  # type: ignore[no-any-return]
        np.asarray(headshot), matrix, (width, height), borderMode=cv2.BORDER_REFLECT
    )


@pytest.fixture
def gray() -> Callable[[Any], npt.NDArray[np.float32]]:
    """Grey float32 copy of an RGB image (PIL or array)."""
    return _gray


@pytest.fixture
def warp_headshot() -> Callable[[Composite, Image.Image], npt.NDArray[np.uint8]]:
    """The headshot moved into target coordinates with a composite's own transform."""
    return _warped_headshot


class BrokenBackend(LocalBackend):
    """A local backend whose every job fails, as a provider outage would."""

    name = "broken"
    default_model = "broken-flux"
    capabilities_table = {"*": fluxkit.Capabilities(img2img=True)}

    def run(self, call: Call, emit: Callable[[Any], None], token: CancelToken) -> CallOutput:
        raise JobFailedError("GPU fell over", backend=self.name, request_id="job-1")


@pytest.fixture
def broken_backend() -> type[BrokenBackend]:
    """A backend class whose jobs always fail (JobFailedError, a ProviderError)."""
    return BrokenBackend
