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
    from fluxkit.batch._pricing import CostEstimate

__all__ = ["CallFailure", "GeneratedImage", "GenerationResult", "Timings"]


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
        record: the generation record embedded by `save`.
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

    def save(
        self,
        path: str | os.PathLike[str],
        *,
        format: str | None = None,
        overwrite: bool = False,
    ) -> Path:
        """Write the image atomically, with its generation record embedded.

        The format follows ``format=`` or the file suffix (``.png``, ``.jpg``, ``.webp``); the
        record goes into a PNG text chunk or JPEG/WebP EXIF + XMP, and
        `fluxkit.read_record` reads it back. The file appears complete or not at all, with
        the usual permissions (the umask applies).

        Args:
            path: the file to write; missing folders are created.
            format: ``png``, ``jpeg`` or ``webp``; default from the suffix, else the image's own.
            overwrite: replace ``path`` if it exists.

        Returns:
            The path written.

        Raises:
            OutputExistsError: ``path`` exists and ``overwrite`` is False; nothing is written.

        Example:
            ```python
            import fluxkit

            image = fluxkit.Generator("fake").generate("a fox", seed=7).image
            image.save("fox.png")
            image.save("fox.png", overwrite=True)  # without overwrite=True: OutputExistsError
            ```
        """
        from fluxkit._record import write_image

        return write_image(self, Path(path), format=format, overwrite=overwrite)

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
class CallFailure:
    """One provider call of a generation that failed while others succeeded.

    With ``n > 1`` fluxkit splits the work into calls; a failed call does not throw away the
    images the other calls produced (and that were paid for). Its error says why and carries
    the provider's request id and, when the job finished but its images could not be fetched,
    their URLs (`fluxkit.ResultUnavailableError`).

    Attributes:
        index: the call's position in the generation.
        seeds: the seeds of the images this call would have produced.
        error: the typed error (a ``ProviderError`` or ``DeadlineExceeded``).
    """

    index: int
    seeds: tuple[int, ...]
    error: Exception

    @property
    def request_id(self) -> str | None:
        return getattr(self.error, "request_id", None)


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
        failures: calls that failed while others succeeded (``n > 1``): their seeds and typed
            errors. Empty when every image arrived; when *every* call fails, ``generate()``
            raises the first error instead of returning.
    """

    images: tuple[GeneratedImage, ...]
    request: GenerationRequest
    backend: str
    model: str
    request_ids: tuple[str, ...] = ()
    timings: Timings = field(default_factory=Timings)
    warnings: tuple[Warning, ...] = ()
    failures: tuple[CallFailure, ...] = ()
    cost: CostEstimate | None = None
    """What this generation cost in USD, from the price table and what the provider returned
    (``cost.basis`` says ``reported`` or ``estimated``); None when no price is known."""

    @property
    def ok(self) -> bool:
        """True when every requested image arrived (no `failures`)."""
        return not self.failures

    def raise_for_failures(self) -> GenerationResult:
        """Raise the first failure's error if any call failed; else return ``self``.

        For code that wants all-or-nothing: ``gen.generate(..., n=4).raise_for_failures()``.
        The error's ``partial`` attribute holds this result, so paid images stay reachable.
        """
        if self.failures:
            error = self.failures[0].error
            error.partial = self  # type: ignore[attr-defined]
            raise error
        return self

    @property
    def image(self) -> GeneratedImage:
        """The first image."""
        return self.images[0]

    @property
    def seeds(self) -> tuple[int | None, ...]:
        return tuple(image.seed for image in self.images)

    def __iter__(self) -> Iterator[GeneratedImage]:
        return iter(self.images)

    def _repr_html_(self) -> str:
        """A grid of thumbnails, each captioned with its seed (how Jupyter shows a result)."""
        return _result_html(self)

    def __len__(self) -> int:
        return len(self.images)

    def save(
        self,
        directory: str | os.PathLike[str],
        *,
        prefix: str = "fluxkit",
        overwrite: bool = False,
    ) -> list[Path]:
        """Save every image in ``directory`` (created if missing); returns the paths, in order.

        Image ``i`` is named ``{prefix}-{i:02d}-{seed}.{format}`` (``{prefix}-{i:02d}.{format}``
        when the seed is unknown). If that name is taken, ``-1``, ``-2``, ... is added before
        the suffix (``fluxkit-00-7-1.png``), so running the same prompt and seed three times
        keeps three files. Names are claimed atomically: concurrent saves never collide.
        With ``overwrite=True`` the plain names are used and existing files replaced.

        Example:
            ```python
            import fluxkit

            result = fluxkit.Generator("fake").generate("a fox", seed=7, n=2)
            result.save("out")  # [out/fluxkit-00-7.png, out/fluxkit-01-8.png]
            result.save("out")  # [out/fluxkit-00-7-1.png, out/fluxkit-01-8-1.png]
            ```
        """
        from fluxkit._record import write_image, write_image_free_name

        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        paths: list[Path] = []
        for index, image in enumerate(self.images):
            stem = f"{prefix}-{index:02d}" + ("" if image.seed is None else f"-{image.seed}")
            suffix = f".{_suffix(image.format)}"
            if overwrite:
                paths.append(write_image(image, folder / f"{stem}{suffix}", overwrite=True))
            else:
                paths.append(write_image_free_name(image, folder, stem, suffix))
        return paths


_THUMBNAIL = 256


def _thumbnail_uri(image: GeneratedImage) -> str:
    """A small PNG of ``image`` as a data URI (a notebook never holds full-size copies)."""
    import base64

    picture = image.to_pil().copy()
    picture.thumbnail((_THUMBNAIL, _THUMBNAIL))
    encoded = base64.b64encode(_media.encode_image(picture, "png")).decode("ascii")
    return f"data:image/png;base64,{encoded}"


def _result_html(result: GenerationResult) -> str:
    from html import escape

    cells = []
    for index, image in enumerate(result.images):
        seed = "seed unknown" if image.seed is None else f"seed {image.seed}"
        try:
            body = (
                f'<img src="{_thumbnail_uri(image)}" alt="image {index}, {seed}" '
                f'style="max-width:{_THUMBNAIL}px;max-height:{_THUMBNAIL}px;display:block">'
            )
        except Exception as exc:  # an expired URL must not break the notebook's display
            body = f"<em>not available: {escape(type(exc).__name__)}</em>"
        cells.append(
            '<figure style="margin:0;text-align:center">'
            f"{body}<figcaption><code>{escape(seed)}</code> · {image.width}×{image.height}"
            "</figcaption></figure>"
        )
    for failure in result.failures:
        seeds = ", ".join(str(seed) for seed in failure.seeds)
        cells.append(
            '<figure style="margin:0;text-align:center"><em>failed</em>'
            f"<figcaption>seeds {escape(seeds)}: {escape(type(failure.error).__name__)}"
            "</figcaption></figure>"
        )
    prompt = escape(
        result.request.prompt
        if len(result.request.prompt) <= 120
        else result.request.prompt[:117] + "..."
    )
    header = (
        f"<div><b>{escape(result.backend)}</b> · <code>{escape(result.model)}</code> · "
        f"{len(result.images)} image{'s' if len(result.images) != 1 else ''} · {prompt}</div>"
    )
    grid = (
        '<div style="display:grid;gap:8px;'
        f'grid-template-columns:repeat(auto-fill,minmax({_THUMBNAIL // 2}px,{_THUMBNAIL}px))">'
        + "".join(cells)
        + "</div>"
    )
    warnings = "".join(f"<div>⚠ {escape(str(warning))}</div>" for warning in result.warnings)
    return f'<div class="fluxkit-result">{header}{grid}{warnings}</div>'


def _suffix(fmt: str) -> str:
    return "jpg" if fmt == "jpeg" else fmt
