"""What packing did: the per-image entries, the fixes, the drops, the warnings."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fluxkit._exceptions import InvalidRequestError

__all__ = ["DatasetRefusedError", "DatasetReport", "DroppedImage", "ImageEntry"]


@dataclass(frozen=True)
class ImageEntry:
    """One image written to the dataset.

    Attributes:
        file: the name inside the dataset, e.g. ``0001.jpg``.
        source: the input's name (file name, archive member or ``image[3]``); local only — the
            manifest stores ``source_hash`` instead, so names never leave the machine.
        source_hash: first 16 hex digits of the SHA-256 of ``source``.
        caption: the caption written.
        sha256: SHA-256 of the written image file.
        size: bytes of the written image file.
        width: written width in pixels.
        height: written height in pixels.
        issues: what was fixed or is worth knowing about this image.
    """

    file: str
    source: str
    source_hash: str
    caption: str
    sha256: str
    size: int
    width: int
    height: int
    issues: tuple[str, ...] = ()

    def manifest(self) -> dict[str, Any]:
        """The manifest record (no source name: only its hash)."""
        return {
            "file": self.file,
            "source_hash": self.source_hash,
            "sha256": self.sha256,
            "size": self.size,
            "width": self.width,
            "height": self.height,
            "caption": self.caption,
            "issues": list(self.issues),
        }


@dataclass(frozen=True)
class DroppedImage:
    """An input that was not written, and why."""

    source: str
    source_hash: str
    reason: str


@dataclass
class DatasetReport:
    """The outcome of `fluxkit.datasets.pack_dataset`; ``print(report)`` shows it.

    Attributes:
        target: the trainer format (``fal``, ``replicate``, ``ai-toolkit``, ``kohya``,
            ``diffusers``).
        output: the archive or folder written (None when refused).
        trigger: the trigger word.
        images: the images written, in order.
        dropped: inputs skipped (unreadable, duplicate, too small, unsupported format).
        warnings: things the user should look at (few images, low resolution, ...).
        notes: dataset-level fixes (trigger inserted into captions, ...).
        refused: True when the dataset was refused (nothing was written).
    """

    target: str
    trigger: str
    output: Path | None = None
    images: list[ImageEntry] = field(default_factory=list)
    dropped: list[DroppedImage] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    refused: bool = False

    @property
    def fixed(self) -> dict[str, int]:
        """How many images had each kind of fix (``{"EXIF orientation applied": 3, ...}``)."""
        counts: Counter[str] = Counter()
        for entry in self.images:
            counts.update(issue.split(":")[0] for issue in entry.issues)
        return dict(counts)

    def manifest(self, size: int) -> dict[str, Any]:
        """The ``manifest.json`` document written inside the dataset."""
        from fluxkit._version import __version__

        return {
            "manifest_version": 1,
            "generator": f"fluxkit {__version__}",
            "target": self.target,
            "trigger": self.trigger,
            "size": size,
            "images": [entry.manifest() for entry in self.images],
            "dropped": [{"source_hash": d.source_hash, "reason": d.reason} for d in self.dropped],
            "warnings": list(self.warnings),
            "notes": list(self.notes),
        }

    def format(self) -> str:
        """The report as printed by ``fluxkit dataset pack``.

        Example:
            ```python
            report = pack_dataset("photos/", target="fal", trigger="tok", out="tok.zip")
            print(report.format())
            ```
        """
        head = "REFUSED" if self.refused else f"wrote {self.output}"
        lines = [f"dataset for {self.target} (trigger {self.trigger!r}): {head}"]
        lines.append(f"  images: {len(self.images)} kept, {len(self.dropped)} dropped")
        for issue, count in sorted(self.fixed.items()):
            lines.append(f"  fixed: {issue} ({count} image{'s' if count != 1 else ''})")
        lines.extend(f"  note: {note}" for note in self.notes)
        lines.extend(f"  dropped: {d.source}: {d.reason}" for d in self.dropped)
        lines.extend(f"  warning: {warning}" for warning in self.warnings)
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format()


class DatasetRefusedError(InvalidRequestError):
    """The inputs do not make a usable dataset (e.g. fewer than 4 readable, distinct images).

    Attributes:
        report: the `DatasetReport` explaining what was dropped and why.
    """

    def __init__(self, report: DatasetReport, reason: str, *, minimum: int) -> None:
        self.report = report
        super().__init__(
            "images",
            len(report.images),
            f"at least {minimum} usable, distinct images",
            reason=reason,
        )
