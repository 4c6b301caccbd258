"""Argument checks for ``pack_dataset``, all done before the first image is read."""

from __future__ import annotations

import re
from pathlib import Path

from fluxkit._exceptions import InvalidRequestError
from fluxkit.datasets._captions import DEFAULT_TEMPLATE
from fluxkit.datasets._targets import TARGETS, TargetSpec

__all__ = ["check_args", "check_target", "output_path"]


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
    if spec.archive:
        if out.suffix.lower() == ".zip":
            if out.is_dir():
                raise InvalidRequestError("out", str(out), "a .zip file path", reason="is a folder")
            return out
        if out.exists() and not out.is_dir():
            raise InvalidRequestError("out", str(out), "a .zip path or a folder")
        slug = re.sub(r"[^\w.-]+", "_", trigger).strip("_") or "dataset"
        return out / f"{slug}-{spec.name}.zip"
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
