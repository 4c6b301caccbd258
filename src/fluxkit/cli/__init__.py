"""The ``fluxkit`` command line.

Each command group lives in its own module exposing ``register(subparsers)``; handlers take the
parsed arguments and return the exit code: 0 ok, 2 bad input (nothing was sent), 1 provider
failure. Errors print on one line; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback
from collections.abc import Sequence

from fluxkit._exceptions import ConfigurationError, FluxkitError, InvalidRequestError
from fluxkit._version import __version__

__all__ = ["main"]

_COMMAND_MODULES = ("generate", "doctor", "dataset", "lora", "compose")

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fluxkit", description="FLUX image generation with LoRAs, on any backend."
    )
    parser.add_argument("--version", action="version", version=f"fluxkit {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(f"fluxkit.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"fluxkit.cli.{name}":
                raise
            continue
        module.register(subparsers)
    return parser


def exit_code_for(error: BaseException) -> int:
    if isinstance(error, InvalidRequestError | ConfigurationError):
        return EXIT_BAD_INPUT
    return EXIT_FAILURE


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return EXIT_BAD_INPUT
    try:
        return int(handler(args))
    except FluxkitError as error:
        if args.debug:
            traceback.print_exc()
        print(f"error: {error}", file=sys.stderr)
        return exit_code_for(error)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
