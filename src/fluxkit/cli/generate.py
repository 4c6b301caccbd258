"""``fluxkit generate``: one prompt to image files, with a progress line."""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
from pathlib import Path
from typing import Any

from fluxkit._exceptions import InvalidRequestError

__all__ = ["DEFAULT_CLI_BACKEND", "parse_lora", "parse_size", "register"]

DEFAULT_CLI_BACKEND = "fal"
"""``fluxkit generate``'s backend without ``--backend`` or ``$FLUXKIT_BACKEND``. The library's
``Generator()`` defaults to ``"fake"`` instead (offline, free), so code never spends by accident."""


_SIZE = re.compile(r"^\s*(\d{1,6})\s*[xX]\s*(\d{1,6})\s*$")
_PRESET = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_SCALE_RANGE = (-4.0, 4.0)
_LORA_ALLOWED = "SRC or SRC:SCALE, SCALE a number from -4 to 4"


def parse_size(text: str) -> Any:
    """``square_hd`` or ``768x1024``; anything else is a usage error (exit 2).

    Example:
        ```python
        from fluxkit.cli.generate import parse_size

        parse_size("768x1024")  # (768, 1024)
        ```
    """
    match = _SIZE.match(text)
    if match:
        return (int(match.group(1)), int(match.group(2)))
    if _PRESET.match(text):
        return text  # the generator checks the preset name against the model's
    raise argparse.ArgumentTypeError(f"{text!r} is not a preset name or WIDTHxHEIGHT")


def parse_lora(text: str) -> Any:
    """``SRC[:SCALE]``, strictly.

    Only a trailing ``:<number>`` is a scale, and it must be within -4..4. A ``:`` followed by
    something containing ``/`` or ``\\`` belongs to the source (``https://host:8080/x``,
    ``hf://...``, ``C:\\loras\\x.safetensors``). A trailing ``:<not a number>`` is an error
    unless the whole text names an existing file.

    Raises:
        InvalidRequestError: an empty source, a non-numeric or out-of-range scale.

    Example:
        ```python
        from fluxkit.cli.generate import parse_lora

        parse_lora("hf://me/style/s.safetensors:0.7").scale  # 0.7
        parse_lora("https://host:8080/s.safetensors").scale  # 1.0
        ```
    """
    from fluxkit._types import LoRA

    source, sep, tail = text.rpartition(":")
    if not text.strip():
        raise InvalidRequestError("--lora", text, _LORA_ALLOWED, reason="empty")
    scale = 1.0
    if not sep or "/" in tail or "\\" in tail:
        source = text
    elif _NUMBER.match(tail.strip()):
        scale = float(tail)
        if not source.strip():
            raise InvalidRequestError("--lora", text, _LORA_ALLOWED, reason="no source")
        low, high = _SCALE_RANGE
        if not (math.isfinite(scale) and low <= scale <= high):
            raise InvalidRequestError(
                "--lora", text, _LORA_ALLOWED, reason=f"scale {tail} out of range"
            )
    elif Path(text).expanduser().is_file():
        source = text  # a local file whose name contains ':'
    else:
        what = "empty scale" if not tail else f"scale {tail!r} is not a number"
        raise InvalidRequestError("--lora", text, _LORA_ALLOWED, reason=what)
    try:
        return LoRA(source, scale=scale)
    except InvalidRequestError as exc:
        raise InvalidRequestError("--lora", text, exc.allowed, reason=str(exc)) from None


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("generate", help="generate images from a prompt")
    parser.add_argument("prompt", help="what to draw")
    parser.add_argument(
        "--backend",
        default=os.environ.get("FLUXKIT_BACKEND", DEFAULT_CLI_BACKEND),
        help="fal, together, replicate, diffusers, comfyui, fake (default: $FLUXKIT_BACKEND, else fal; "
        'note: the library\'s Generator() defaults to "fake" and never reads $FLUXKIT_BACKEND)',
    )
    parser.add_argument("--model", help="flux-dev, flux-schnell, flux-pro or a provider model id")
    parser.add_argument(
        "--base-url", help="the server to talk to (comfyui: default $COMFYUI_URL or :8188)"
    )
    parser.add_argument(
        "--size", type=parse_size, help="preset (square_hd, portrait_4_3, ...) or WxH"
    )
    parser.add_argument("--steps", type=int, help="denoising steps (default: the model's)")
    parser.add_argument(
        "--guidance", type=float, help="guidance scale (default: the model's; ignored by schnell)"
    )
    parser.add_argument(
        "--seed", type=int, help="seed of the first image; image i gets SEED+i (default: random)"
    )
    parser.add_argument("-n", type=int, default=1, dest="n", help="number of images (default 1)")
    parser.add_argument(
        "--lora",
        action="append",
        default=[],
        metavar="SRC[:SCALE]",
        help="hf://owner/repo/file.safetensors, https://... or a path; repeatable",
    )
    parser.add_argument("--image", help="init image for img2img (a path or an https URL)")
    parser.add_argument(
        "--strength",
        type=float,
        help="img2img strength, 0-1: how far the result may move away from --image",
    )
    parser.add_argument(
        "--reference-image",
        dest="reference_image",
        metavar="IMAGE",
        help="reference image (path or https URL) for models that take one, e.g. Kontext/Redux",
    )
    parser.add_argument(
        "--reference-strength",
        dest="reference_strength",
        type=float,
        help="how strongly the reference image steers the result, 0-1 (where supported)",
    )
    parser.add_argument(
        "--format",
        dest="output_format",
        choices=("png", "jpeg", "webp"),
        help="image format asked of the provider (default: the backend's)",
    )
    parser.add_argument("--timeout", type=float, help="whole-call deadline in seconds")
    parser.add_argument(
        "-o",
        "--output",
        default=".",
        help="output folder (default: .), or a file name ending in .png/.jpg/.jpeg/.webp "
        "with -n 1. In a folder, images are named PREFIX-INDEX-SEED.EXT, with -1, -2, ... "
        "added when the name is taken",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace existing files instead of choosing a free name / refusing",
    )
    parser.add_argument(
        "--dry-run",
        dest="dry_run",
        action="store_true",
        help="check the request and print its estimated cost; send nothing",
    )
    parser.add_argument(
        "--max-cost",
        dest="max_cost",
        type=float,
        metavar="USD",
        help="refuse (exit 2, nothing sent) if the estimated cost passes USD",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress output at all")
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="draw progress bars (default: only when stderr is a terminal; otherwise one "
        "line per state)",
    )
    parser.set_defaults(handler=run)


def describe(event: object) -> str | None:
    """A short progress line for ``event``."""
    from fluxkit._events import Completed, Log, Queued, Retrying, Started, Step

    if isinstance(event, Queued):
        return "queued" if event.position is None else f"queued (position {event.position})"
    if isinstance(event, Started):
        return "running"
    if isinstance(event, Step):
        return f"step {event.i}/{event.total}"
    if isinstance(event, Retrying):
        return f"retrying in {event.delay:.1f}s ({event.reason})"
    if isinstance(event, Log):
        return event.message[:70]
    if isinstance(event, Completed):
        return "done"
    return None


def _plan_output(args: argparse.Namespace) -> tuple[Path, bool]:
    """Where the images go, and whether it is a single file; checked before anything is sent."""
    from fluxkit.cli._output import IMAGE_SUFFIXES, check_folder, check_new_file

    output = str(args.output)
    path = Path(output).expanduser()
    if path.suffix.lower() in IMAGE_SUFFIXES and not path.is_dir():
        if args.n != 1:
            raise InvalidRequestError(
                "--output", output, "a folder when -n is more than 1", reason=f"-n {args.n}"
            )
        return check_new_file(output, overwrite=args.overwrite), True
    return check_folder(output), False


def _save(result: Any, path: Path, is_file: bool, overwrite: bool) -> list[Path]:
    """Save the paid images; a file that appeared meanwhile gets a free name, not an error."""
    if not is_file:
        return list(result.save(path, overwrite=overwrite))
    from fluxkit._exceptions import OutputExistsError
    from fluxkit._record import write_image_free_name

    image = result.images[0]
    try:
        return [image.save(path, overwrite=overwrite)]
    except OutputExistsError:
        saved = write_image_free_name(image, path.parent, path.stem, path.suffix)
        print(f"warning: {path} appeared while generating; saved as {saved}", file=sys.stderr)
        return [saved]


def run(args: argparse.Namespace) -> int:
    """Generate and save; every input, the output path included, is checked first."""
    from fluxkit._events import Step
    from fluxkit._generator import Generator
    from fluxkit._progress import wanted

    loras = [parse_lora(item) for item in args.lora]
    output, is_file = _plan_output(args)
    params: dict[str, Any] = {"n": args.n, "loras": loras}
    for name in (
        "size",
        "steps",
        "guidance",
        "seed",
        "image",
        "strength",
        "reference_image",
        "reference_strength",
        "output_format",
    ):
        value = getattr(args, name)
        if value is not None:
            params[name] = value

    bars = not args.quiet and wanted(args.progress)

    def show(event: Any) -> None:
        text = None if args.quiet or bars else describe(event)
        if text is not None and not isinstance(event, Step):
            print(text, file=sys.stderr)  # logs and CI: one line per state, not per step

    kwargs: dict[str, Any] = {} if args.timeout is None else {"timeout": args.timeout}
    if args.max_cost is not None:
        kwargs["max_cost"] = args.max_cost
    where = {"base_url": args.base_url} if args.base_url else {}
    with Generator(args.backend, model=args.model, **where) as generator:
        if args.dry_run:
            estimate = generator.estimate_cost(args.prompt, **params)
            print(f"{generator.backend}: the request is valid; estimated cost {estimate}")
            return 0
        result = generator.generate(args.prompt, on_event=show, progress=bars, **kwargs, **params)
    for path in _save(result, output, is_file, args.overwrite):
        print(path)
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if result.cost is not None and result.cost.usd:
        print(f"cost: {result.cost}", file=sys.stderr)
    return 0
