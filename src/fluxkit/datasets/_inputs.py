"""What ``pack_dataset`` accepts: a folder, a zip, a list of paths or PIL images.

Inputs are yielded lazily, one at a time, each with its caption from a same-stem ``.txt``
sidecar when there is one (the convention of every trainer), so a folder of 200 photos is never
in memory at once.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Union

from fluxkit._exceptions import InvalidRequestError
from fluxkit.datasets._archive import ArchiveLimits, iter_archive

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["IMAGE_SUFFIXES", "ImagesLike", "SourceItem", "iter_sources"]

IMAGE_SUFFIXES = frozenset(
    {
        ".jpg",
        ".jpeg",
        ".png",
        ".webp",
        ".bmp",
        ".gif",
        ".tif",
        ".tiff",
        ".heic",
        ".heif",
        ".avif",
    }
)
_MAX_CAPTION_BYTES = 64 * 1024

ImagesLike = Union[str, os.PathLike[str], Sequence[Union[str, os.PathLike[str], "Image.Image"]]]  # noqa: UP007
"""A folder or zip path, or a sequence of image paths and PIL images."""


@dataclass
class SourceItem:
    """One input: a display name, its bytes or PIL image, and its sidecar caption.

    ``problem`` says why an input was skipped without being read (it is reported as dropped).
    """

    name: str
    data: bytes | None
    image: Image.Image | None
    caption: str | None
    problem: str | None = None


def count_hint(images: ImagesLike) -> int | None:
    """How many inputs there will be, when cheap to know (for the early refusal)."""
    if isinstance(images, (str, os.PathLike)):
        path = Path(images)
        if path.is_dir():
            return sum(1 for p in path.iterdir() if _is_image_file(p))
        return None
    return len(images)


def iter_sources(
    images: ImagesLike,
    captions: Mapping[str, str] | Sequence[str] | None,
    limits: ArchiveLimits | None = None,
) -> Iterator[SourceItem]:
    """Yield inputs one at a time, captions attached (explicit ``captions`` win over sidecars)."""
    if isinstance(images, (str, os.PathLike)):
        path = Path(images).expanduser()
        if path.is_dir():
            yield from _from_folder(path, captions)
        elif path.suffix.lower() == ".zip" and path.is_file():
            yield from _from_zip(path, captions, limits)
        elif path.is_file():
            yield from _from_list([path], captions)
        else:
            raise InvalidRequestError(
                "images",
                str(images),
                "a folder, a .zip, image paths or PIL images",
                reason="no such file or folder",
            )
        return
    if isinstance(images, (bytes, bytearray)):
        raise InvalidRequestError(
            "images", "<bytes>", "a folder, a .zip, image paths or PIL images"
        )
    if captions is not None and not isinstance(captions, Mapping) and len(captions) != len(images):
        raise InvalidRequestError(
            "captions", f"{len(captions)} captions", f"one caption per image ({len(images)})"
        )
    yield from _from_list(images, captions)


def _is_image_file(path: Path) -> bool:
    return (
        path.is_file() and not path.name.startswith(".") and path.suffix.lower() in IMAGE_SUFFIXES
    )


def _explicit(
    captions: Mapping[str, str] | Sequence[str] | None, index: int, name: str
) -> str | None:
    if captions is None:
        return None
    if isinstance(captions, Mapping):
        stem = PurePosixPath(name).stem
        base = PurePosixPath(name).name
        for key in (name, base, stem):
            if key in captions:
                return captions[key]
        return None
    return captions[index]


def _inside(path: Path, root: Path) -> bool:
    """Whether ``path``, links followed, stays inside ``root`` (already resolved)."""
    try:
        return path.resolve().is_relative_to(root)
    except (OSError, RuntimeError):  # a symlink loop
        return False


def _sidecar(path: Path, root: Path | None = None) -> str | None:
    caption = path.with_suffix(".txt")
    if root is not None and caption.is_symlink() and not _inside(caption, root):
        # A link out of the photo folder could put any readable file (a key, a password
        # store) into the captions of an archive that is then uploaded.
        return None
    if caption.is_file() and caption.stat().st_size <= _MAX_CAPTION_BYTES:
        return caption.read_text(encoding="utf-8-sig", errors="replace")
    return None


def _from_folder(
    folder: Path, captions: Mapping[str, str] | Sequence[str] | None
) -> Iterator[SourceItem]:
    files = sorted(p for p in folder.iterdir() if _is_image_file(p))
    if captions is not None and not isinstance(captions, Mapping):
        raise InvalidRequestError(
            "captions", "a list", "a mapping of file name to caption when images is a folder"
        )
    root = folder.resolve()
    for index, path in enumerate(files):
        if not _inside(path, root):
            yield SourceItem(
                path.name, None, None, None, problem="symbolic link out of the folder: not read"
            )
            continue
        caption = _explicit(captions, index, path.name)
        yield SourceItem(
            path.name,
            path.read_bytes(),
            None,
            caption if caption is not None else _sidecar(path, root),
        )


def _from_list(
    items: Sequence[str | os.PathLike[str] | Image.Image],
    captions: Mapping[str, str] | Sequence[str] | None,
) -> Iterator[SourceItem]:
    for index, item in enumerate(items):
        if isinstance(item, (str, os.PathLike)):
            path = Path(item).expanduser()
            if not path.is_file():
                raise InvalidRequestError(f"images[{index}]", str(item), "an existing image file")
            caption = _explicit(captions, index, path.name)
            yield SourceItem(
                path.name,
                path.read_bytes(),
                None,
                caption if caption is not None else _sidecar(path),
            )
        elif hasattr(item, "getexif") and hasattr(item, "size"):
            name = f"image[{index}]"
            yield SourceItem(name, None, item, _explicit(captions, index, name))
        else:
            raise InvalidRequestError(
                f"images[{index}]", type(item).__name__, "a path or a PIL image"
            )


def _from_zip(
    path: Path, captions: Mapping[str, str] | Sequence[str] | None, limits: ArchiveLimits | None
) -> Iterator[SourceItem]:
    sidecars: dict[str, str] = {}
    for name, data in iter_archive(path, limits):
        if name.lower().endswith(".txt") and len(data) <= _MAX_CAPTION_BYTES:
            sidecars[str(PurePosixPath(name).with_suffix(""))] = data.decode("utf-8-sig", "replace")
    index = 0
    for name, data in iter_archive(path, limits):
        if PurePosixPath(name).suffix.lower() not in IMAGE_SUFFIXES:
            continue
        explicit = _explicit(captions, index, name) if isinstance(captions, Mapping) else None
        sidecar = sidecars.get(str(PurePosixPath(name).with_suffix("")))
        yield SourceItem(name, data, None, explicit if explicit is not None else sidecar)
        index += 1
