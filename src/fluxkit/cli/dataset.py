"""``fluxkit dataset pack``: photos → a trainer-ready archive, with a printed report."""

from __future__ import annotations

import argparse

__all__ = ["register", "run_pack"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``dataset`` command group."""
    from fluxkit.datasets._captions import DEFAULT_TEMPLATE
    from fluxkit.datasets._targets import TARGETS

    group = subparsers.add_parser("dataset", help="build training datasets from photos")
    commands = group.add_subparsers(dest="dataset_command", required=True, metavar="COMMAND")
    pack = commands.add_parser(
        "pack",
        help="photos -> trainer-ready archive (fal, replicate, ai-toolkit, kohya, diffusers)",
        description="Orient, strip metadata, dedupe, resize, caption and package photos. "
        "Exit status 2 when the dataset is refused (fewer than 4 usable images).",
    )
    pack.add_argument("photos", metavar="PHOTOS", help="folder of photos (or a .zip)")
    pack.add_argument(
        "--target", required=True, choices=sorted(TARGETS), help="the trainer the dataset is for"
    )
    pack.add_argument("--trigger", required=True, metavar="WORD", help="trigger word, e.g. tok")
    pack.add_argument(
        "--caption",
        default=DEFAULT_TEMPLATE,
        metavar="TEMPLATE",
        help=f"caption template ({{trigger}} is replaced; default {DEFAULT_TEMPLATE!r})",
    )
    pack.add_argument("--size", type=int, default=1024, help="short side in pixels (default 1024)")
    pack.add_argument("--face-crop", action="store_true", help="square crops centred on the face")
    pack.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing output archive or non-empty folder",
    )
    pack.add_argument(
        "-o",
        "--out",
        required=True,
        metavar="OUT",
        help="output .zip (fal, replicate) or folder (ai-toolkit, kohya, diffusers)",
    )
    pack.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="draw a progress bar (default: only when stderr is a terminal)",
    )
    pack.set_defaults(handler=run_pack)


def run_pack(args: argparse.Namespace) -> int:
    """Pack and print the report; 2 when the dataset is refused."""
    from fluxkit._progress import wanted
    from fluxkit.datasets import DatasetRefusedError, pack_dataset

    try:
        report = pack_dataset(
            args.photos,
            target=args.target,
            trigger=args.trigger,
            out=args.out,
            caption=args.caption,
            size=args.size,
            face_crop=args.face_crop,
            overwrite=args.overwrite,
            progress=wanted(args.progress),
        )
    except DatasetRefusedError as exc:
        print(exc.report.format())
        print(f"refused: {exc}")
        return 2
    print(report.format())
    return 0
