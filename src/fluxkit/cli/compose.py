"""``fluxkit compose``: paste a headshot's face onto a target picture, optionally restyled.

```
fluxkit compose painting.png me.jpg -o out.png
fluxkit compose painting.png me.jpg --style van-gogh --backend fal --seed 7 -o out.png
```

Exit codes: 0 done (also when the restyle failed and the overlay was saved instead, with a
warning on stderr), 2 bad input (no face, unreadable image, bad option), 1 provider failure with
``--no-fallback``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

__all__ = ["register", "run"]

_STYLES = ("van-gogh", "renaissance", "watercolour", "neon", "baroque", "impressionist")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``compose`` subcommand to the ``fluxkit`` parser."""
    parser = subparsers.add_parser(
        "compose",
        help="paste a headshot's face onto a target image, optionally restyled with FLUX",
        description=(
            "Detect the face in TARGET and in HEADSHOT, align and blend the headshot's face over "
            "the target's, and optionally restyle the result with a FLUX img2img pass."
        ),
    )
    parser.add_argument("target", help="image whose face is replaced")
    parser.add_argument("headshot", help="image the face comes from")
    parser.add_argument(
        "-o",
        "--output",
        required=True,
        help="where to write the result (.png, .jpg, .jpeg, .webp, .bmp, .tif, .tiff)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output")
    parser.add_argument(
        "--fit",
        choices=("width", "height"),
        default="width",
        help="match the pasted face to the target face's width or height (default: width)",
    )
    parser.add_argument("--scale", type=float, default=1.0, help="pasted face size multiplier")
    parser.add_argument(
        "--blend",
        choices=("alpha", "poisson", "laplacian"),
        default="alpha",
        help="how the face is blended in: alpha (feathered mask), poisson (seamless clone) or "
        "laplacian (pyramid) (default: alpha)",
    )
    parser.add_argument(
        "--detector", default="auto", help="auto, haar, yuface or yunet (default: auto)"
    )
    parser.add_argument("--face-index", type=int, help="which target face, when several")
    parser.add_argument("--headshot-face-index", type=int, help="which headshot face")
    restyle = parser.add_mutually_exclusive_group()
    restyle.add_argument("--restyle", metavar="PROMPT", help="restyle with this prompt")
    restyle.add_argument("--style", choices=_STYLES, help="restyle with a preset")
    parser.add_argument("--backend", help="restyle backend (default: $FLUXKIT_BACKEND, else fal)")
    parser.add_argument("--strength", type=float, default=0.35, help="img2img strength")
    parser.add_argument("--seed", type=int, help="restyle seed")
    parser.add_argument(
        "--no-fallback",
        dest="fallback",
        action="store_false",
        help="fail (exit 1) when the restyle fails instead of saving the overlay",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run ``fluxkit compose`` with parsed ``args``; returns the exit code."""
    from fluxkit._exceptions import (
        ConfigurationError,
        FluxkitError,
        InvalidRequestError,
        OutputExistsError,
    )

    try:
        return _compose(args)
    except (InvalidRequestError, ConfigurationError, OutputExistsError) as exc:
        print(f"fluxkit compose: error: {exc}", file=sys.stderr)
        return 2
    except FluxkitError as exc:
        print(f"fluxkit compose: error: {exc}", file=sys.stderr)
        return 1


def _compose(args: argparse.Namespace) -> int:
    from fluxkit.cli._output import check_new_file
    from fluxkit.faces import overlay_face, overlay_then_restyle
    from fluxkit.faces._io import output_format

    # Before any detection or paid restyle: a bad name or an existing file fails now (exit 2).
    output_format(args.output)
    check_new_file(args.output, overwrite=args.overwrite)

    overlay = {
        "fit": args.fit,
        "scale": args.scale,
        "blend": args.blend,
        "detector": args.detector,
        "face_index": args.face_index,
        "headshot_face_index": args.headshot_face_index,
    }
    if args.restyle is None and args.style is None:
        composite = overlay_face(args.target, args.headshot, **overlay)
        composite.save(args.output, overwrite=args.overwrite)
        print(f"{args.output}: {'; '.join(composite.steps)}")
        return 0

    import fluxkit

    backend = args.backend or os.environ.get("FLUXKIT_BACKEND") or "fal"
    with fluxkit.Generator(backend) as generator:
        result = overlay_then_restyle(
            generator,
            args.target,
            args.headshot,
            args.restyle,
            style=args.style,
            strength=args.strength,
            seed=args.seed,
            fallback=args.fallback,
            **overlay,
        )
    saved = _save_paid(result, args.output, args.overwrite)
    for warning in result.warnings:
        print(f"fluxkit compose: warning: {warning}", file=sys.stderr)
    how = f"restyled on {backend}" if result.restyled else "overlay only"
    print(f"{saved}: {'; '.join(result.composite.steps)}; {how}")
    return 0


def _save_paid(result: Any, output: str, overwrite: bool) -> Path:
    """Save a restyle that was paid for; a file that appeared meanwhile gets a free name."""
    from fluxkit._exceptions import OutputExistsError
    from fluxkit._files import atomic_write_free_name
    from fluxkit.faces._io import output_format

    try:
        return Path(result.save(output, overwrite=overwrite))
    except OutputExistsError:
        import io

        path = Path(output)
        buffer = io.BytesIO()
        image = result.image
        fmt = output_format(path)
        (image.convert("RGB") if fmt == "JPEG" else image).save(buffer, format=fmt)
        saved = atomic_write_free_name(path.parent, path.stem, path.suffix, buffer.getvalue())
        print(
            f"fluxkit compose: warning: {path} appeared meanwhile; saved as {saved}",
            file=sys.stderr,
        )
        return saved
