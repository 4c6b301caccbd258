"""The ``fluxkit`` command line.

Each command group lives in its own module exposing ``register(subparsers)``; handlers take the
parsed arguments and return the exit code: 0 ok, 2 bad input (nothing was sent), 1 provider
failure, 130 interrupted. Errors print on one line, never as a traceback; ``--debug`` shows the
traceback. Output paths are checked before anything is sent, and no command replaces an
existing file without ``--overwrite``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import sys
import traceback
from collections.abc import Iterator, Sequence
from typing import Any

from fluxkit._exceptions import (
    BudgetExceeded,
    ConfigurationError,
    FluxkitError,
    InvalidRequestError,
    OutputExistsError,
)
from fluxkit._version import __version__

__all__ = ["main"]

_COMMAND_MODULES = ("generate", "batch", "replay", "doctor", "dataset", "lora", "compose", "train")

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130

# Local-file errors the user fixes by changing the command (a path), unlike a full disk.
_BAD_INPUT_OS_ERRORS = (
    FileNotFoundError,
    FileExistsError,
    IsADirectoryError,
    NotADirectoryError,
    PermissionError,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fluxkit", description="FLUX image generation with LoRAs, on any backend."
    )
    parser.add_argument("--version", action="version", version=f"fluxkit {__version__}")
    parser.add_argument(
        "--debug",
        action="store_true",
        help="show tracebacks and fluxkit's debug log (accepted anywhere on the line)",
    )
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
    """2 for what the user can fix on the command line (nothing was sent), 1 for failures."""
    if isinstance(
        error, InvalidRequestError | ConfigurationError | OutputExistsError | BudgetExceeded
    ):
        return EXIT_BAD_INPUT
    if isinstance(error, _BAD_INPUT_OS_ERRORS):
        return EXIT_BAD_INPUT
    return EXIT_FAILURE


def _system_exit_code(exc: SystemExit) -> int:
    # argparse exits 2 on a usage error and 0 after --help/--version; a string is a message.
    if exc.code is None:
        return EXIT_OK
    if isinstance(exc.code, int):
        return exc.code
    print(f"error: {exc.code}", file=sys.stderr)
    return EXIT_FAILURE


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text


def _interrupted(debug: bool) -> int:
    if debug:
        traceback.print_exc()
    # After a progress line drawn with "\r", start clean so the message stays one line.
    prefix = "\r\033[K" if sys.stderr.isatty() else ""
    print(f"{prefix}interrupted", file=sys.stderr)
    return EXIT_INTERRUPTED


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (never raises, never prints a traceback).

    Exit codes: 0 ok, 2 bad input (nothing was sent or spent), 1 failure (provider, network,
    disk), 130 interrupted (Ctrl-C). ``--debug`` adds the traceback.

    Example:
        ```python
        from fluxkit.cli import main

        main(["generate", "a fox", "--backend", "fake", "-o", "renders"])  # 0
        ```
    """
    arguments = list(sys.argv[1:] if argv is None else argv)
    # Known before parsing, so that even a failure while parsing honours it; taken out of the
    # line so that it works after the subcommand too (``fluxkit generate ... --debug``).
    arguments, debug = _take_debug(arguments)
    try:
        return _run(arguments, debug)
    except KeyboardInterrupt:
        return _interrupted(debug)


def _take_debug(arguments: list[str]) -> tuple[list[str], bool]:
    """``arguments`` without ``--debug`` (anywhere before a ``--``), and whether it was there."""
    end = arguments.index("--") if "--" in arguments else len(arguments)
    head = [item for item in arguments[:end] if item != "--debug"]
    return head + arguments[end:], len(head) != end


class _StderrHandler(logging.StreamHandler[Any]):
    """Writes to whatever ``sys.stderr`` is when a record arrives (tests swap it)."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


@contextlib.contextmanager
def _debug_logging(debug: bool) -> Iterator[None]:
    """With ``--debug``: fluxkit's log records (and the third-party ones folded into it) on
    stderr, for this command only (``main()`` may run many times in one process)."""
    if not debug:
        yield
        return
    logger = logging.getLogger("fluxkit")
    level = logger.level
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def _run(arguments: list[str], debug: bool) -> int:
    with _debug_logging(debug):
        return _run_command(arguments, debug)


def _run_command(arguments: list[str], debug: bool) -> int:
    try:
        parser = build_parser()
        try:
            args = parser.parse_args(arguments)
        except SystemExit as exc:
            return _system_exit_code(exc)
        handler = getattr(args, "handler", None)
        if handler is None:
            parser.print_help()
            return EXIT_BAD_INPUT
        return int(handler(args))
    except KeyboardInterrupt:
        raise
    except SystemExit as exc:
        return _system_exit_code(exc)
    except BrokenPipeError:
        # The reader went away (``fluxkit ... | head``): stop quietly; point stdout at devnull so
        # the interpreter's final flush does not raise again.
        with contextlib.suppress(OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILURE
    except FluxkitError as error:
        if debug:
            traceback.print_exc()
        print(f"error: {_one_line(error)}", file=sys.stderr)
        return exit_code_for(error)
    except OSError as error:
        if debug:
            traceback.print_exc()
        print(f"error: {_one_line(error)}", file=sys.stderr)
        return exit_code_for(error)
    except Exception as error:
        # A bug in fluxkit or a dependency: still one line, and the way to see more.
        if debug:
            traceback.print_exc()
        kind = type(error).__name__
        print(
            f"error: unexpected {kind}: {_one_line(error)} (run with --debug for the traceback)",
            file=sys.stderr,
        )
        return EXIT_FAILURE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
