"""What can go wrong with a face composite, as typed errors and the restyle warning.

Every error is an `InvalidRequestError` (so also a ``ValueError``): the input
images are the caller's to fix, and nothing was sent anywhere. Each one names the image
(``"target"`` or ``"headshot"``) it is about.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from fluxkit._exceptions import FluxkitError, InvalidRequestError
from fluxkit._warnings import FluxkitWarning

if TYPE_CHECKING:
    from fluxkit.faces._face import Face

__all__ = [
    "FaceNotFoundError",
    "MultipleFacesError",
    "RestyleFailed",
    "UnreadableImageError",
]

NO_FACE_HINTS: tuple[str, ...] = (
    "the face may be too small (under ~5% of the shorter side): crop closer",
    "the head may be tilted more than ~12 degrees: straighten it, or use a landmark detector "
    "(detector='yunet' or 'yuface')",
    "the face may be occluded or turned away (sunglasses, hands, profile view)",
)


class UnreadableImageError(InvalidRequestError):
    """An input could not be decoded, or is larger than Pillow's decompression-bomb limit.

    Attributes:
        role: ``"target"`` or ``"headshot"``.
    """

    def __init__(self, role: str, value: object, reason: str) -> None:
        self.role = role
        super().__init__(
            role,
            value,
            "a path, encoded image bytes, a PIL image or an RGB uint8 array",
            reason=reason,
        )


class FaceNotFoundError(InvalidRequestError):
    """No face was detected in an image.

    Attributes:
        role: ``"target"`` or ``"headshot"``.
        size: the image's (width, height).
        hints: likely reasons, most likely first.
    """

    def __init__(self, role: str, size: tuple[int, int], *, detector: str) -> None:
        self.role = role
        self.size = size
        self.hints = NO_FACE_HINTS
        self.detector = detector
        message = (
            f"no face found in the {role} image ({size[0]}x{size[1]}, detector {detector!r}); "
            "possible causes: " + "; ".join(self.hints)
        )
        ValueError.__init__(self, message)
        self.field, self.value, self.reason = role, f"<{size[0]}x{size[1]} image>", "no face"
        self.allowed = "an image with a clearly visible, roughly upright face"


class MultipleFacesError(InvalidRequestError):
    """Several faces are about equally likely and no index says which one to use.

    Attributes:
        role: ``"target"`` or ``"headshot"``.
        faces: every face found, in `detect_faces` order.
        index_argument: the argument that picks one (``face_index`` or
            ``headshot_face_index``).
    """

    def __init__(self, role: str, faces: Sequence[Face], *, index_argument: str) -> None:
        self.role = role
        self.faces = tuple(faces)
        self.index_argument = index_argument
        listed = ", ".join(f"{i}: {face.describe()}" for i, face in enumerate(self.faces[:6]))
        message = (
            f"{len(self.faces)} faces found in the {role} image; pass "
            f"{index_argument}=0..{len(self.faces) - 1} to choose one ({listed})"
        )
        ValueError.__init__(self, message)
        self.field, self.value, self.reason = index_argument, None, "ambiguous"
        self.allowed = f"0..{len(self.faces) - 1}"


class RestyleFailed(FluxkitWarning):
    """The img2img restyle failed, so the plain composite was returned instead.

    Attributes:
        error: the error the generator raised.
        backend: the generator's backend name.
    """

    def __init__(self, error: FluxkitError, backend: str) -> None:
        self.error = error
        self.backend = backend
        super().__init__(
            f"restyle on {backend} failed, returning the overlay only: "
            f"{type(error).__name__}: {error}"
        )
