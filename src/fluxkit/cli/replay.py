"""``fluxkit replay IMAGE``: regenerate an image from the record embedded in it."""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["register"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "replay",
        help="regenerate an image from the record fluxkit embedded in it",
        description="Read the generation record embedded in IMAGE and run it again, on the "
        "recorded backend or another one. Input images are found by their recorded path or "
        "URL and checked by content hash; pass --image/--reference-image when they moved.",
    )
    parser.add_argument("source", metavar="IMAGE", help="an image saved by fluxkit")
    parser.add_argument("--backend", help="run on this backend instead of the recorded one")
    parser.add_argument("--model", help="use this model instead of the recorded one")
    parser.add_argument("--seed", type=int, help="a different seed")
    parser.add_argument("--steps", type=int, help="a different number of steps")
    parser.add_argument("--image", help="the init image, when its recorded path is gone")
    parser.add_argument(
        "--reference-image",
        dest="reference_image",
        help="the reference image, when its recorded path is gone",
    )
    parser.add_argument("-o", "--output", default=".", help="output folder (default: .)")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace existing files (default: free names)"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from fluxkit._generator import Generator
    from fluxkit._replay import replay_request
    from fluxkit.cli._output import check_folder

    output = check_folder(args.output)
    overrides = {
        name: getattr(args, name)
        for name in ("model", "seed", "steps", "image", "reference_image")
        if getattr(args, name) is not None
    }
    backend, params = replay_request(args.source, backend=args.backend, **overrides)
    prompt = params.pop("prompt")
    with Generator(backend) as generator:
        result = generator.generate(prompt, **params)
    for path in result.save(output, prefix="replay", overwrite=args.overwrite):
        print(path)
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0
