"""``pack_dataset``: photos in, a trainer-ready archive or folder out, one image at a time."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from fluxkit._exceptions import InvalidRequestError
from fluxkit._progress import counting
from fluxkit.datasets._archive import ArchiveLimits
from fluxkit.datasets._captions import (
    DEFAULT_TEMPLATE,
    TriggerPolicy,
    check_trigger,
    render_caption,
)
from fluxkit.datasets._dedupe import DuplicateIndex, perceptual_hash
from fluxkit.datasets._faces import FaceLocator, centre_square, default_face_locator, square_around
from fluxkit.datasets._images import (
    Decoded,
    DecodeError,
    decode,
    encode_jpeg,
    from_pil,
    resize_short_side,
)
from fluxkit.datasets._inputs import ImagesLike, SourceItem, count_hint, iter_sources
from fluxkit.datasets._options import (
    check_args,
    check_not_inside_input,
    check_target,
    output_path,
)
from fluxkit.datasets._report import DatasetRefusedError, DatasetReport, DroppedImage, ImageEntry
from fluxkit.datasets._sinks import FolderSink, Sink, ZipSink
from fluxkit.datasets._targets import TargetName, TargetSpec

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["MIN_IMAGES", "pack_dataset"]

MIN_IMAGES = 4
_FEW, _MANY = 10, 40
_LOW_RES = 1024
_MAX_IMAGES = 9999
# Pillow's own bomb threshold (MAX_IMAGE_PIXELS, ~89 MP); a 200 MP panorama is still accepted.
_MAX_PIXELS = 256_000_000


def pack_dataset(
    images: ImagesLike,
    *,
    target: TargetName,
    trigger: str,
    out: str | os.PathLike[str],
    caption: str = DEFAULT_TEMPLATE,
    captions: Mapping[str, str] | Sequence[str] | None = None,
    size: int = 1024,
    face_crop: bool = False,
    face_locator: FaceLocator | None = None,
    trigger_policy: TriggerPolicy = "insert",
    near_duplicate_distance: int = 6,
    min_side: int = 512,
    overwrite: bool = False,
    archive_limits: ArchiveLimits | None = None,
    progress: bool = False,
) -> DatasetReport:
    """Build a trainer-ready dataset from photos.

    Every image is EXIF-oriented, stripped of all metadata (GPS, camera serials), converted to
    8-bit sRGB RGB, downscaled (never upscaled) so its short side is ``size``, optionally
    square-cropped around the face, and written as ``0001.jpg``, ``0002.jpg``... with its caption
    and a ``manifest.json``. Exact and near-duplicates, unreadable and tiny images are dropped and
    reported. Images are processed and written one at a time.

    Args:
        images: a folder, a ``.zip`` (read back safely), or a sequence of paths / PIL images.
        target: ``fal`` (flat zip), ``replicate`` (zip), ``ai-toolkit`` (folder + job config),
            ``kohya`` (folder + dataset TOML) or ``diffusers`` (ImageFolder, square crops).
        trigger: the trigger word, e.g. ``"tok"``.
        out: the ``.zip`` to write (or a folder to put ``<trigger>-<target>.zip`` in) for zip
            targets; the folder to create for folder targets.
        caption: caption template for images without their own; ``{trigger}`` is replaced.
        captions: per-image captions, by file name/stem (or a list aligned with ``images``).
            Same-stem ``.txt`` files next to the photos are used otherwise.
        size: target short side in pixels (256-4096).
        face_crop: square crop centred on the face (OpenCV from ``fluxkit[faces]``; falls back to
            a centre crop with a warning).
        face_locator: a custom face finder returning ``(left, top, width, height)`` or None.
        trigger_policy: for ``fal`` captions lacking the trigger: ``insert`` it, or ``error``.
        near_duplicate_distance: perceptual-hash distance (bits of 64) at or below which an
            image is a near-duplicate; -1 disables near-duplicate removal.
        min_side: images whose short side is below this are dropped.
        overwrite: replace an existing archive or non-empty output folder. Without it an
            existing output is never touched. The output may not be the input, lie inside the
            input folder, or (for folders) contain the input.
        archive_limits: limits for reading a ``.zip`` input.
        progress: draw a tqdm bar while images are processed (stderr, or a Jupyter widget).

    Returns:
        A `DatasetReport` (``print(report)`` for the summary).

    Raises:
        InvalidRequestError: a bad argument (named), before any image is read.
        OutputExistsError: the archive exists and ``overwrite`` is False; nothing is written.
        DatasetRefusedError: fewer than 4 usable images remain; nothing is written.

    Example:
        ```python
        from fluxkit.datasets import pack_dataset

        report = pack_dataset("photos/", target="fal", trigger="tok", out="tok-fal.zip")
        print(report)
        ```
    """
    spec = check_target(target)
    trigger = check_trigger(trigger)
    check_args(size, caption, trigger_policy, near_duplicate_distance, min_side)
    final = output_path(spec, Path(out).expanduser(), trigger, overwrite)
    check_not_inside_input(images, final, folder_output=not spec.archive)
    hint = count_hint(images)
    report = DatasetReport(target=spec.name, trigger=trigger)
    if hint is not None and hint < MIN_IMAGES:
        report.refused = True
        raise DatasetRefusedError(report, f"only {hint} images given", minimum=MIN_IMAGES)
    locator = face_locator
    if face_crop and locator is None:
        locator = default_face_locator()
        if locator is None:
            report.warnings.append(
                'face crop needs OpenCV (pip install "fluxkit[faces]"): used centre crops'
            )
    sink: Sink = (
        ZipSink(final, overwrite=overwrite)
        if spec.archive
        else FolderSink(final, overwrite=overwrite)
    )
    try:
        _pack_all(
            images,
            captions,
            archive_limits,
            spec,
            report,
            sink,
            trigger,
            caption,
            size,
            face_crop,
            locator,
            trigger_policy,
            near_duplicate_distance,
            min_side,
            hint,
            progress,
        )
        _check_count(report)
        for name, data in spec.extra_files(
            report.images, trigger=trigger, size=size, final=final
        ).items():
            sink.add(name, data)
        manifest = json.dumps(report.manifest(size), indent=2, ensure_ascii=False)
        sink.add("manifest.json", manifest.encode())
        report.output = sink.commit()
    except BaseException:
        sink.discard()
        raise
    return report


def _pack_all(
    images: ImagesLike,
    captions: Mapping[str, str] | Sequence[str] | None,
    limits: ArchiveLimits | None,
    spec: TargetSpec,
    report: DatasetReport,
    sink: Sink,
    trigger: str,
    template: str,
    size: int,
    face_crop: bool,
    locator: FaceLocator | None,
    policy: TriggerPolicy,
    distance: int,
    min_side: int,
    total: int | None = None,
    progress: bool = False,
) -> None:
    index = DuplicateIndex(max_distance=distance)
    inserted = 0
    low_res = 0
    sources = iter_sources(images, captions, limits)
    for item in counting(sources, enabled=progress, total=total, desc="packing", unit="image"):
        source_hash = hashlib.sha256(item.name.encode()).hexdigest()[:16]

        def drop(reason: str, item: SourceItem = item, source_hash: str = source_hash) -> None:
            report.dropped.append(DroppedImage(item.name, source_hash, reason))

        if item.problem is not None:
            drop(item.problem)
            continue
        source_digest = hashlib.sha256(item.data).hexdigest() if item.data is not None else ""
        if source_digest and (kept := index.exact(source_digest)):
            drop(f"exact duplicate of {kept}")
            continue
        try:
            decoded = _decode(item, size)
        except DecodeError as exc:
            drop(str(exc))
            continue
        short = min(decoded.original_size)
        if short < min_side:
            drop(f"too small: short side {short} px < {min_side} px")
            continue
        issues = list(decoded.fixes)
        if short < _LOW_RES:
            low_res += 1
            issues.append(f"low resolution: short side {short} px")
        image = decoded.image
        if face_crop or spec.square:
            image, crop_issue = _square(image, locator if face_crop else None, face_crop)
            issues.append(crop_issue)
        before = image.size
        image = resize_short_side(image, size)
        if image.size != before:
            issues.append(f"resized: {image.size[0]}x{image.size[1]}")
        phash = perceptual_hash(image)
        if near := index.near(phash):
            drop(f"near-duplicate of {near[0]} ({near[1]} bits apart)")
            continue
        data = encode_jpeg(image)
        digest = hashlib.sha256(data).hexdigest()
        if kept := index.exact(digest):
            drop(f"exact duplicate of {kept}")
            continue
        number = len(report.images) + 1
        if number > _MAX_IMAGES:
            raise InvalidRequestError(
                "images", f"more than {_MAX_IMAGES}", f"at most {_MAX_IMAGES}"
            )
        text, added = render_caption(
            item.caption if item.caption is not None else template,
            trigger,
            require=spec.trigger_required,
            policy=policy,
            source=item.name,
        )
        inserted += added
        name = spec.image_name(number)
        sink.add(name, data)
        if spec.caption_files:
            sink.add(spec.caption_name(number), text.encode("utf-8"))
        index.add((source_digest, digest) if source_digest else (digest,), phash, name)
        report.images.append(
            ImageEntry(
                file=name,
                source=item.name,
                source_hash=source_hash,
                caption=text,
                sha256=digest,
                size=len(data),
                width=image.size[0],
                height=image.size[1],
                issues=tuple(issues),
            )
        )
    if inserted:
        report.notes.append(
            f"trigger {trigger!r} inserted into {inserted} caption(s): fal ignores trigger_word "
            "when captions are present"
        )
    if low_res:
        report.warnings.append(
            f"{low_res} image(s) below {_LOW_RES} px on the short side (trained only at lower "
            "resolutions)"
        )


def _decode(item: SourceItem, size: int) -> Decoded:
    if item.image is not None:
        return from_pil(item.image, max_pixels=_MAX_PIXELS)
    assert item.data is not None
    return decode(item.data, draft_side=size, max_pixels=_MAX_PIXELS)


def _square(
    image: Image.Image, locator: FaceLocator | None, face_crop: bool
) -> tuple[Image.Image, str]:
    if locator is not None:
        face = locator(image)
        if face is not None:
            return image.crop(square_around(image.size, face)), "face-centred square crop"
        return image.crop(centre_square(image.size)), "centre square crop: no face found"
    reason = "centre square crop" + (": face detector unavailable" if face_crop else "")
    return image.crop(centre_square(image.size)), reason


def _check_count(report: DatasetReport) -> None:
    count = len(report.images)
    if count < MIN_IMAGES:
        report.refused = True
        raise DatasetRefusedError(
            report,
            f"only {count} usable image(s) after dropping {len(report.dropped)}",
            minimum=MIN_IMAGES,
        )
    if count < _FEW:
        report.warnings.append(f"only {count} images: 10-30 varied photos train a better LoRA")
    elif count > _MANY:
        report.warnings.append(
            f"{count} images: more than {_MANY} rarely helps a subject LoRA and slows training"
        )
