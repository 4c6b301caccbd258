"""``fluxkit generate``: one prompt to image files, with a progress line."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from fluxkit._exceptions import InvalidRequestError

__all__ = ["parse_lora", "parse_size", "register"]


def parse_size(text: str) -> Any:
    """``square_hd`` or ``768x1024``."""
    if "x" in text and text.replace("x", "").isdigit():
        width, height = text.split("x", 1)
        return (int(width), int(height))
    return text


def parse_lora(text: str) -> Any:
    """``SRC[:SCALE]`` — the last ``:`` splits off a scale only when it parses as a number."""
    from fluxkit._types import LoRA

    source, sep, scale = text.rpartition(":")
    if sep and source and not source.endswith(("https", "hf")):
        try:
            return LoRA(source, scale=float(scale))
        except ValueError:
            pass
    return LoRA(text)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("generate", help="generate images from a prompt")
    parser.add_argument("prompt")
    parser.add_argument(
        "--backend",
        default=os.environ.get("FLUXKIT_BACKEND", "fal"),
        help="fal, together, replicate, diffusers, fake (default: $FLUXKIT_BACKEND or fal)",
    )
    parser.add_argument("--model", help="flux-dev, flux-schnell, flux-pro or a provider model id")
    parser.add_argument(
        "--size", type=parse_size, help="preset (square_hd, portrait_4_3, ...) or WxH"
    )
    parser.add_argument("--steps", type=int)
    parser.add_argument("--guidance", type=float)
    parser.add_argument("--seed", type=int)
    parser.add_argument("-n", type=int, default=1, dest="n")
    parser.add_argument(
        "--lora",
        action="append",
        default=[],
        metavar="SRC[:SCALE]",
        help="hf://owner/repo/file.safetensors, https://... or a path; repeatable",
    )
    parser.add_argument("--image", help="init image for img2img")
    parser.add_argument("--strength", type=float)
    parser.add_argument("--format", dest="output_format", choices=("png", "jpeg", "webp"))
    parser.add_argument("--timeout", type=float, help="whole-call deadline in seconds")
    parser.add_argument("-o", "--output", default=".", help="output directory")
    parser.add_argument("--quiet", action="store_true", help="no progress line")
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


def run(args: argparse.Namespace) -> int:
    from fluxkit._events import Step
    from fluxkit._generator import Generator

    try:
        loras = [parse_lora(item) for item in args.lora]
    except ValueError as exc:
        raise InvalidRequestError("--lora", args.lora, "SRC[:SCALE]", reason=str(exc)) from None
    params: dict[str, Any] = {"n": args.n, "loras": loras}
    for name in ("size", "steps", "guidance", "seed", "image", "strength", "output_format"):
        value = getattr(args, name)
        if value is not None:
            params[name] = value

    def show(event: Any) -> None:
        text = None if args.quiet else describe(event)
        if text is None:
            return
        if sys.stderr.isatty():
            print(f"\r\033[K{text}", end="", file=sys.stderr, flush=True)
        elif not isinstance(event, Step):  # logs and CI: one line per state, not per step
            print(text, file=sys.stderr)

    kwargs: dict[str, Any] = {} if args.timeout is None else {"timeout": args.timeout}
    with Generator(args.backend, model=args.model) as generator:
        result = generator.generate(args.prompt, on_event=show, **kwargs, **params)
    if not args.quiet and sys.stderr.isatty():
        print(file=sys.stderr)
    for path in result.save(Path(args.output)):
        print(path)
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0
