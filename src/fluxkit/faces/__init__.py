"""Face detection, alignment and compositing, and the overlay -> FLUX restyle pipeline.

Install with ``pip install "fluxkit[faces]"`` (OpenCV, headless, 4.x). Everything works offline:
the default detector is OpenCV's Haar cascade, shipped inside the wheel.

```python
import fluxkit
from fluxkit.faces import overlay_face, overlay_then_restyle

composite = overlay_face("painting.png", "me.jpg", fit="width", scale=1.0)
composite.save("overlay.png")

with fluxkit.Generator("fal") as gen:
    result = overlay_then_restyle(gen, "painting.png", "me.jpg", style="van-gogh")
result.save("restyled.png")
```

``import fluxkit.faces`` does not import OpenCV; the first detection does, and raises
`fluxkit.MissingDependencyError` naming the ``faces`` extra when it is missing.
"""

from __future__ import annotations

from fluxkit.faces._align import Alignment, Fit
from fluxkit.faces._blend import Blend
from fluxkit.faces._composite import Composite, overlay_face
from fluxkit.faces._detect import DETECTORS, detect_faces, get_detector
from fluxkit.faces._errors import (
    FaceNotFoundError,
    MultipleFacesError,
    RestyleFailed,
    UnreadableImageError,
)
from fluxkit.faces._face import Face, FaceDetector
from fluxkit.faces._haar import HaarDetector
from fluxkit.faces._io import FaceImageLike
from fluxkit.faces._landmarks import YuFaceDetector, YuNetDetector
from fluxkit.faces._restyle import (
    OverlayOptions,
    RestyleResult,
    aoverlay_then_restyle,
    overlay_then_restyle,
)
from fluxkit.faces._styles import STYLE_PRESETS, StylePreset, style_prompt

__all__ = [
    "DETECTORS",
    "STYLE_PRESETS",
    "Alignment",
    "Blend",
    "Composite",
    "Face",
    "FaceDetector",
    "FaceImageLike",
    "FaceNotFoundError",
    "Fit",
    "HaarDetector",
    "MultipleFacesError",
    "OverlayOptions",
    "RestyleFailed",
    "RestyleResult",
    "StylePreset",
    "UnreadableImageError",
    "YuFaceDetector",
    "YuNetDetector",
    "aoverlay_then_restyle",
    "detect_faces",
    "get_detector",
    "overlay_face",
    "overlay_then_restyle",
    "style_prompt",
]
