"""Argument checks for ``pack_dataset``, all done before the first image is read."""

from __future__ import annotations

import os
import re
from pathlib import Path

from fluxkit._exceptions import InvalidRequestError, OutputExistsError
from fluxkit.datasets._captions import DEFAULT_TEMPLATE
from fluxkit.datasets._targets import TARGETS, TargetSpec

__all__ = ["check_args", "check_not_inside_input", "check_target", "output_path"]


def check_target(target: str) -> TargetSpec:
    """The target's spec, or an error listing the targets."""
    spec = TARGETS.get(target) if isinstance(target, str) else None
    if spec is None:
        raise InvalidRequestError("target", target, ", ".join(TARGETS))
    return spec


def check_args(size: int, caption: str, policy: str, distance: int, min_side: int) -> None:
    """Raise ``InvalidRequestError`` naming the first bad argument."""
    if not isinstance(size, int) or isinstance(size, bool) or not 256 <= size <= 4096:
        raise InvalidRequestError("size", size, "an integer from 256 to 4096")
    if not isinstance(caption, str) or not caption.strip():
        raise InvalidRequestError(
            "caption", caption, f"a non-empty template, e.g. {DEFAULT_TEMPLATE!r}"
        )
    if policy not in ("insert", "error", "ignore"):
        raise InvalidRequestError("trigger_policy", policy, "'insert', 'error' or 'ignore'")
    if not isinstance(distance, int) or not -1 <= distance <= 32:
        raise InvalidRequestError("near_duplicate_distance", distance, "an integer from -1 to 32")
    if not isinstance(min_side, int) or not 64 <= min_side <= 4096:
        raise InvalidRequestError("min_side", min_side, "an integer from 64 to 4096")


def output_path(spec: TargetSpec, out: Path, trigger: str, overwrite: bool) -> Path:
    """The final output path; refuses, before any work, to replace an output without overwrite."""
    if spec.archive:
        if out.suffix.lower() == ".zip":
            if out.is_dir():
                raise InvalidRequestError("out", str(out), "a .zip file path", reason="is a folder")
            final = out
        else:
            if out.exists() and not out.is_dir():
                raise InvalidRequestError("out", str(out), "a .zip path or a folder")
            slug = re.sub(r"[^\w.-]+", "_", trigger).strip("_") or "dataset"
            final = out / f"{slug}-{spec.name}.zip"
        if final.is_dir():
            raise InvalidRequestError("out", str(final), "a .zip file path", reason="is a folder")
        if not overwrite and os.path.lexists(final):
            # Checked again, atomically, when the archive takes its name.
            raise OutputExistsError(final, hint="pass overwrite=True (--overwrite) to replace it")
        return final
    if out.exists():
        if not out.is_dir():
            raise InvalidRequestError("out", str(out), "a folder path", reason="is a file")
        if any(out.iterdir()) and not overwrite:
            raise InvalidRequestError(
                "out",
                str(out),
                "a new or empty folder, or overwrite=True",
                reason="folder is not empty",
            )
    return out.resolve()


def check_not_inside_input(images: object, final: Path, *, folder_output: bool) -> None:
    """Refuse an output that is an input, lies inside the input folder, or contains an input.

    Packing ``photos.zip`` into ``photos.zip`` would replace the originals with the result, and
    an output folder that contains the photos would be deleted by ``overwrite=True``.
    """
    target = final.expanduser().resolve()
    sources: list[Path] = []
    if isinstance(images, str | os.PathLike):
        sources.append(Path(images).expanduser().resolve())
    elif isinstance(images, list | tuple):
        sources.extend(
            Path(item).expanduser().resolve()
            for item in images
            if isinstance(item, str | os.PathLike)
        )
    for source in sources:
        if target == source:
            reason = "is the input"
        elif source.is_dir() and target.is_relative_to(source):
            reason = "is inside the input folder"
        elif folder_output and source.is_relative_to(target):
            reason = "contains the input"
        else:
            continue
        raise InvalidRequestError("out", str(final), "a path outside the input", reason=reason)
