"""``fluxkit batch``: a prompt file to a folder of images, crash-safe and within budget."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from fluxkit._exceptions import InvalidRequestError

__all__ = ["register"]


def register(subparsers: Any) -> None:
    from fluxkit.cli.generate import DEFAULT_CLI_BACKEND, parse_lora, parse_size

    parser = subparsers.add_parser(
        "batch",
        help="generate every line of a JSONL/CSV prompt file; resumable after a crash",
        description="Each line is a prompt or a JSON object of request fields; flags give "
        "defaults. Every job is journalled in DIR/journal.sqlite: rerun with --resume DIR "
        "after a crash, Ctrl-C or kill -9, and saved jobs are skipped, accepted jobs are "
        "collected by id (never paid twice), only the rest are submitted.",
    )
    parser.add_argument(
        "requests", nargs="?", metavar="PROMPTS", help="prompts.jsonl or prompts.csv"
    )
    parser.add_argument("-o", "--output", metavar="DIR", help="output folder (required)")
    parser.add_argument(
        "--resume",
        metavar="DIR",
        help="continue the batch in DIR (its prompt file is remembered in the journal)",
    )
    parser.add_argument(
        "--backend",
        default=os.environ.get("FLUXKIT_BACKEND", DEFAULT_CLI_BACKEND),
        help="fal, together, replicate, diffusers, fake, ... (default: $FLUXKIT_BACKEND, else fal)",
    )
    parser.add_argument("--model", help="default model for lines without one")
    parser.add_argument("--size", type=parse_size, help="default size: a preset or WxH")
    parser.add_argument("--steps", type=int, help="default denoising steps")
    parser.add_argument("--guidance", type=float, help="default guidance")
    parser.add_argument(
        "--lora", action="append", default=[], metavar="SRC[:SCALE]", help="default LoRAs"
    )
    parser.add_argument(
        "--concurrency", type=int, default=8, help="jobs in flight at most (default 8)"
    )
    parser.add_argument(
        "--max-cost",
        dest="max_cost",
        type=float,
        metavar="USD",
        help="refuse to start (exit 2) if the jobs left are estimated above USD",
    )
    parser.add_argument(
        "--no-dedupe",
        dest="dedupe",
        action="store_false",
        help="run identical lines separately (default: identical lines are one job)",
    )
    parser.add_argument(
        "--retry-failed",
        dest="retry_failed",
        action="store_true",
        help="retry failed jobs (accepted ones are collected, not resubmitted)",
    )
    parser.add_argument(
        "--resubmit-uncertain",
        dest="resubmit_uncertain",
        action="store_true",
        help="resend jobs whose submission may have reached the provider (may pay twice)",
    )
    parser.add_argument(
        "--dry-run",
        dest="dry_run",
        action="store_true",
        help="check every line and print the estimated cost; send nothing",
    )
    parser.add_argument(
        "--outage-timeout",
        dest="outage_timeout",
        type=float,
        default=600.0,
        help="seconds a provider outage may pause the batch before jobs fail (default 600)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    parser.set_defaults(handler=run)
    parser.set_defaults(_lora_parser=parse_lora)


def run(args: argparse.Namespace) -> int:
    from fluxkit._generator import Generator
    from fluxkit.batch import expand, load_requests, run_batch
    from fluxkit.batch._journal import JOURNAL_NAME, Journal

    out_text = args.resume or args.output
    if not out_text and not args.dry_run:
        raise InvalidRequestError("--output", None, "-o DIR (or --resume DIR)")
    out = Path(out_text or ".").expanduser()
    if out.exists() and not out.is_dir():
        raise InvalidRequestError("--output", str(out), "a folder")
    source = args.requests
    if args.resume:
        journal = out / JOURNAL_NAME
        if not journal.is_file():
            raise InvalidRequestError("--resume", str(out), "a folder with a batch journal")
        if source is None:
            with Journal.open(journal) as book:
                source = book.meta("requests_file")
    if source is None:
        raise InvalidRequestError("PROMPTS", None, "a .jsonl or .csv prompt file")
    requests = load_requests(source)
    defaults: dict[str, Any] = {}
    for name in ("model", "size", "steps", "guidance"):
        if getattr(args, name) is not None:
            defaults[name] = getattr(args, name)
    if args.lora:
        defaults["loras"] = [_lora_json(args._lora_parser(item)) for item in args.lora]
    with Generator(args.backend) as generator:
        if args.dry_run:
            jobs = expand(requests, defaults, dedupe=args.dedupe)
            total, unknown = 0.0, 0
            for _, _, request in jobs:
                params = dict(request)
                estimate = generator.estimate_cost(params.pop("prompt"), **params)
                if estimate.usd is None:
                    unknown += 1
                else:
                    total += estimate.usd
            note = f" ({unknown} job(s) without a price)" if unknown else ""
            print(f"{len(jobs)} job(s) valid on {generator.backend}; estimated ${total:.4f}{note}")
            return 0
        out.mkdir(parents=True, exist_ok=True)
        with Journal.open(out / JOURNAL_NAME) as book:
            book.set_meta("requests_file", str(Path(source).resolve()))

        def progress(job: Any, state: str) -> None:
            if not args.quiet:
                print(f"line {job.line} seed {job.request.get('seed')}: {state}", file=sys.stderr)

        summary = run_batch(
            requests,
            generator,
            out,
            defaults=defaults,
            concurrency=args.concurrency,
            max_cost=args.max_cost,
            dedupe=args.dedupe,
            retry_failed=args.retry_failed,
            resubmit_uncertain=args.resubmit_uncertain,
            outage_timeout=args.outage_timeout,
            on_progress=progress,
        )
    print(summary)
    return 0 if summary.ok else 1


def _lora_json(lora: Any) -> dict[str, Any]:
    return {"source": lora.source, "scale": lora.scale}
