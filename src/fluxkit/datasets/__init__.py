"""Photos → trainer-ready datasets for fal, Replicate, ai-toolkit, kohya and diffusers.

```python
from fluxkit.datasets import pack_dataset

report = pack_dataset("photos/", target="fal", trigger="tok", out="tok-fal.zip")
print(report)          # what was fixed, dropped and warned
```

Every image is EXIF-oriented, stripped of metadata, converted to 8-bit RGB, never upscaled,
deduplicated (exact and perceptual), renamed ``0001.jpg``... and captioned; a ``manifest.json``
records hashes and captions. Archives are written atomically and read back safely
(`iter_archive`, `extract_archive`). Importing this package needs neither torch nor
huggingface_hub; Pillow and numpy are imported on first use.
"""

from __future__ import annotations

from fluxkit.datasets._archive import (
    ArchiveLimits,
    UnsafeArchiveError,
    extract_archive,
    iter_archive,
    read_manifest,
)
from fluxkit.datasets._captions import DEFAULT_TEMPLATE, TriggerPolicy
from fluxkit.datasets._faces import FaceLocator
from fluxkit.datasets._inputs import ImagesLike
from fluxkit.datasets._pack import MIN_IMAGES, pack_dataset
from fluxkit.datasets._report import (
    DatasetRefusedError,
    DatasetReport,
    DroppedImage,
    ImageEntry,
)
from fluxkit.datasets._targets import TARGETS, TargetName, TargetSpec

__all__ = [
    "DEFAULT_TEMPLATE",
    "MIN_IMAGES",
    "TARGETS",
    "ArchiveLimits",
    "DatasetRefusedError",
    "DatasetReport",
    "DroppedImage",
    "FaceLocator",
    "ImageEntry",
    "ImagesLike",
    "TargetName",
    "TargetSpec",
    "TriggerPolicy",
    "UnsafeArchiveError",
    "extract_archive",
    "iter_archive",
    "pack_dataset",
    "read_manifest",
]
