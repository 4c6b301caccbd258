"""What a generation returns: every image with its own seed, timings, ids and warnings."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fluxkit._core import _media

if TYPE_CHECKING:
    from PIL import Image

    from fluxkit._types import GenerationRequest

__all__ = ["GeneratedImage", "GenerationResult", "Timings"]


@dataclass(frozen=True)
class Timings:
    """Seconds spent waiting in the provider's queue, running, and in total (wall clock)."""

    queued: float | None = None
    running: float | None = None
    total: float = 0.0


@dataclass(eq=False)
class GeneratedImage:
    """One generated image and the seed that regenerates it.

    Holds the encoded bytes, or a URL fetched lazily (once) on first use. In a notebook the image
    displays itself.

    Attributes:
        seed: the seed of *this* image: ``generate(..., seed=image.seed, n=1)`` reproduces it.
        width, height: pixel size.
        format: ``png``, ``jpeg`` or ``webp``.
        url: the provider's URL when it returned one.
        record: the generation record embedded by :meth:`save`.
    """

    seed: int | None
    width: int
    height: int
    format: str = "png"
    url: str | None = None
    record: Mapping[str, Any] = field(default_factory=dict, repr=False)
    _data: bytes | None = field(default=None, repr=False)
    _fetch: Callable[[str], bytes] | None = field(default=None, repr=False, compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def data(self) -> bytes:
        """The encoded image bytes (downloads the URL on first access)."""
        if self._data is None:
            with self._lock:
                if self._data is None:
                    if self.url is None or self._fetch is None:
                        raise ValueError("image has neither data nor a fetchable URL")
                    self._data = self._fetch(self.url)
        return self._data

    @property
    def is_loaded(self) -> bool:
        return self._data is not None

    def to_pil(self) -> Image.Image:
        return _media.open_image(self.data)

    def to_numpy(self) -> Any:
        import numpy as np

        return np.asarray(self.to_pil().convert("RGB"))

    def save(self, path: str | os.PathLike[str], *, format: str | None = None) -> Path:
        """Write the image atomically, with its generation record embedded.

        The format follows ``format=`` or the file suffix (``.png``, ``.jpg``, ``.webp``); the
        record goes into a PNG text chunk or JPEG/WebP EXIF + XMP, and
        :func:`fluxkit.read_record` reads it back.
        """
        from fluxkit._record import write_image

        return write_image(self, Path(path), format=format)

    def _repr_png_(self) -> bytes:
        if self.format == "png":
            return self.data
        return _media.encode_image(self.to_pil(), "png")

    def __repr__(self) -> str:
        where = "loaded" if self._data is not None else f"url={self.url!r}"
        return (
            f"GeneratedImage(seed={self.seed}, {self.width}x{self.height} {self.format}, {where})"
        )


@dataclass(frozen=True)
class GenerationResult:
    """Everything a generation produced.

    Attributes:
        images: every image, in request order, each with its own seed.
        request: the request as resolved (model defaults filled in, seed fixed).
        backend: backend name.
        model: the provider's model id actually used.
        request_ids: the provider's job ids (one per call when ``n`` was split).
        timings: queue, run and total seconds.
        warnings: typed warnings (coerced values, NSFW flags, provider notices).
    """

    images: tuple[GeneratedImage, ...]
    request: GenerationRequest
    backend: str
    model: str
    request_ids: tuple[str, ...] = ()
    timings: Timings = field(default_factory=Timings)
    warnings: tuple[Warning, ...] = ()

    @property
    def image(self) -> GeneratedImage:
        """The first image."""
        return self.images[0]

    @property
    def seeds(self) -> tuple[int | None, ...]:
        return tuple(image.seed for image in self.images)

    def __iter__(self) -> Iterator[GeneratedImage]:
        return iter(self.images)

    def __len__(self) -> int:
        return len(self.images)

    def save(self, directory: str | os.PathLike[str], *, prefix: str = "fluxkit") -> list[Path]:
        """Save every image as ``{prefix}-{index}-{seed}.{format}`` in ``directory``."""
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        return [
            image.save(folder / f"{prefix}-{index:02d}-{image.seed}.{_suffix(image.format)}")
            for index, image in enumerate(self.images)
        ]


def _suffix(fmt: str) -> str:
    return "jpg" if fmt == "jpeg" else fmt
