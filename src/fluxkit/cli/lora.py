"""``fluxkit lora inspect|push|status``: look inside LoRA files and publish them on the Hub."""

from __future__ import annotations

import argparse
import json

__all__ = ["register", "run_inspect", "run_push", "run_status"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``lora`` command group."""
    group = subparsers.add_parser("lora", help="inspect LoRA files, publish them on the Hub")
    commands = group.add_subparsers(dest="lora_command", required=True, metavar="COMMAND")

    inspect = commands.add_parser(
        "inspect", help="layout, base model, rank, alpha and targets (reads the header only)"
    )
    inspect.add_argument("source", metavar="PATH|hf://...", help="a .safetensors file or hf:// ref")
    inspect.add_argument("--json", action="store_true", help="print JSON")
    inspect.set_defaults(handler=run_inspect)

    push = commands.add_parser(
        "push", help="upload a FLUX LoRA to the Hugging Face Hub with a model card (private)"
    )
    push.add_argument("path", metavar="PATH", help="the .safetensors LoRA")
    push.add_argument("repo_id", metavar="REPO_ID", help="owner/name")
    push.add_argument("--trigger", required=True, metavar="WORD", help="trigger word")
    push.add_argument("--public", action="store_true", help="create a public repo")
    push.add_argument(
        "--sample",
        action="append",
        default=[],
        metavar="IMG",
        help="sample image for the card (repeatable)",
    )
    push.add_argument(
        "--base-model",
        default=None,
        metavar="MODEL",
        help="flux-dev or flux-schnell (default: from the file, else flux-dev)",
    )
    push.add_argument(
        "--replace", action="store_true", help="delete other .safetensors files in the repo"
    )
    push.set_defaults(handler=run_push)

    status = commands.add_parser("status", help="is a Hub repo a LoRA ready to use?")
    status.add_argument("repo_id", metavar="REPO_ID", help="owner/name")
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(handler=run_status)


def run_inspect(args: argparse.Namespace) -> int:
    """Print what the header says; exit 0."""
    from fluxkit.lora import inspect_lora

    info = inspect_lora(args.source)
    print(json.dumps(info.to_dict(), indent=2) if args.json else info.summary())
    return 0


def run_push(args: argparse.Namespace) -> int:
    """Push and print the reference to use."""
    from fluxkit.hub import push_lora

    lora = push_lora(
        args.path,
        args.repo_id,
        trigger_word=args.trigger,
        base_model=args.base_model,
        samples=list(args.sample),
        private=not args.public,
        replace=args.replace,
    )
    visibility = "public" if args.public else "private"
    print(f"pushed {lora.source} ({visibility})")
    print(f"use: fluxkit.LoRA({lora.source!r})")
    return 0


def run_status(args: argparse.Namespace) -> int:
    """Print the repo's status; exit 0 when ready, 2 when not (or not found)."""
    from fluxkit.hub import lora_status

    status = lora_status(args.repo_id)
    if args.json:
        print(
            json.dumps(
                {
                    "repo_id": status.repo_id,
                    "exists": status.exists,
                    "private": status.private,
                    "safetensors": list(status.safetensors),
                    "primary": status.primary,
                    "ready": status.ready,
                    "problems": list(status.problems),
                    "notes": list(status.notes),
                    "base_model": status.base_model,
                },
                indent=2,
            )
        )
    else:
        print(status.summary())
    return 0 if status.ready else 2
