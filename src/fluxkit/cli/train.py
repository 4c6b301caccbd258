"""``fluxkit train``: photos -> a FLUX LoRA on fal, Replicate or this machine, resumable."""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["register", "run_train"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``train`` command."""
    parser = subparsers.add_parser(
        "train",
        help="train a FLUX LoRA (fal, replicate, local); resumable",
        description="Pack the photos, estimate the price, train, download the LoRA into the "
        "local library (and push it to the Hub). A handle beside the dataset lets "
        "`fluxkit train --resume HANDLE` (or the same command again) pick the training up "
        "without paying twice. Ctrl-C or --timeout cancels the training at the provider.",
    )
    parser.add_argument("photos", nargs="?", metavar="PHOTOS", help="photo folder or .zip")
    parser.add_argument("--resume", metavar="HANDLE", help="follow the training a handle names")
    parser.add_argument(
        "--backend",
        choices=("fal", "replicate", "local"),
        default="fal",
        help="where to train (default fal)",
    )
    parser.add_argument("--trigger", metavar="WORD", help="trigger word, e.g. tok")
    parser.add_argument("--steps", type=int, default=1000, help="training steps (default 1000)")
    parser.add_argument("--rank", type=int, help="LoRA rank (replicate, local)")
    parser.add_argument("--lr", type=float, dest="learning_rate", help="learning rate")
    parser.add_argument("--model", help="fal: fast|portrait; local: a FLUX.1 diffusers folder")
    parser.add_argument("--destination", metavar="OWNER/NAME", help="replicate model for versions")
    parser.add_argument("--push", metavar="OWNER/NAME", help="push the LoRA to this Hub repo")
    parser.add_argument("--max-cost", type=float, metavar="USD", help="refuse above this price")
    parser.add_argument("--timeout", type=float, metavar="S", help="cancel after this long")
    parser.add_argument("--no-wait", action="store_true", help="submit, print the handle, exit")
    parser.add_argument("--estimate", action="store_true", help="print the price and exit")
    parser.add_argument("--base-url", help="provider root (a proxy or an emulator)")
    parser.add_argument("--library", metavar="DIR", help="LoRA library folder")
    parser.add_argument("--device", default="cpu", help="local: cpu, cuda, ...")
    parser.add_argument("--resolution", type=int, help="local: bucket resolution")
    parser.add_argument(
        "--poll-interval", type=float, metavar="S", help="seconds between status reads (default 5)"
    )
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="draw a progress bar (default: only when stderr is a terminal)",
    )
    parser.set_defaults(handler=run_train)


def run_train(args: argparse.Namespace) -> int:
    from fluxkit._progress import tqdm_class, wanted
    from fluxkit.training import Trainer, TrainingHandle, TrainingStep

    if args.resume:
        backend = TrainingHandle.load(args.resume).backend
    elif not args.estimate and (not args.photos or not args.trigger):
        print(
            "fluxkit train: PHOTOS and --trigger are needed (or --resume HANDLE)", file=sys.stderr
        )
        return 2
    else:
        backend = args.backend
    config: dict[str, Any] = {"device": args.device}
    for name in ("model", "destination", "base_url", "library", "poll_interval"):
        if getattr(args, name) is not None:
            config[name] = getattr(args, name)
    trainer = Trainer(backend, **config)  # type: ignore[arg-type]
    if args.estimate:
        print(trainer.estimate(args.steps))
        return 0
    if args.resume:
        job = trainer.resume(args.resume)
    else:
        options: dict[str, Any] = {}
        if args.resolution is not None:
            options["resolution"] = args.resolution
        print(f"estimated cost: {trainer.estimate(args.steps)}")
        job = trainer.train(
            args.photos,
            trigger_word=args.trigger,
            steps=args.steps,
            rank=args.rank,
            learning_rate=args.learning_rate,
            max_cost=args.max_cost,
            push=args.push,
            **options,
        )
    print(f"training {job.id} on {backend}; handle: {job.handle_path}")
    if args.no_wait:
        return 0
    bar = None
    if wanted(args.progress):
        bar = tqdm_class()(
            total=job.handle.steps, desc=f"train {backend}", unit="step", file=sys.stderr
        )

    def draw(event: Any) -> None:
        if bar is not None and isinstance(event, TrainingStep):
            bar.total = event.total
            bar.n = event.step
            bar.set_postfix_str(f"loss {event.loss:.4f}" if event.loss is not None else "")
            bar.refresh()

    try:
        lora = job.wait(timeout=args.timeout, on_event=draw)
    finally:
        if bar is not None:
            bar.close()
    print(f"LoRA: {lora.source}")
    return 0
