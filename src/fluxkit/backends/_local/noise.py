"""Third-party log noise of the local backend, folded into fluxkit's own logging.

diffusers, transformers and peft log through their own handlers on stderr, so a user sees lines
they can do nothing about — diffusers' ``No LoRA keys associated to CLIPTextModel found ...``
on every FLUX LoRA load (FLUX LoRAs train the transformer only), or a ``set_adapters`` notice.
`fold_library_logs` re-emits every record of those libraries on ``fluxkit.local.<library>``
instead: known noise at DEBUG, the rest at its own level, so it shows where fluxkit's logging
is configured (``fluxkit --debug``) and nowhere else. The libraries' own progress bars are
turned off per pipeline (``set_progress_bar_config``); fluxkit reports steps as events and draws
its own bars.
"""

from __future__ import annotations

import importlib
import logging
import re
import sys

__all__ = ["LIBRARIES", "NOISE", "fold_library_logs"]

LIBRARIES = ("diffusers", "transformers", "peft")
NOISE = re.compile(
    r"No LoRA keys associated to \w+"  # FLUX LoRAs only touch the transformer
    r"|Loading adapter weights from state_dict led to (?:unexpected|missing) keys"
    r"|The module '\w+' has been loaded in `bitsandbytes`"
    r"|Keyword arguments \{.*\} are not expected by \w+ and will be ignored"
)
_LOG = logging.getLogger("fluxkit.local")


class _Fold(logging.Filter):
    """Drops a library's record from its own handlers after re-emitting it on fluxkit's logger."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "fluxkit_folded", False):
            return False  # already re-emitted (the library's logger, or another of its handlers)
        record.fluxkit_folded = True
        message = record.getMessage()
        level = logging.DEBUG if NOISE.search(message) else record.levelno
        library = record.name.partition(".")[0]
        _LOG.getChild(library).log(level, "%s", message, extra={"fluxkit_folded": True})
        return False


_FOLD = _Fold()


def _library_root(name: str) -> logging.Logger:
    # diffusers and transformers configure their root logger (a stderr handler, no propagation)
    # lazily; configure it now so the filter lands on the handler they will use.
    if name in ("diffusers", "transformers") and name in sys.modules:
        try:
            utils = importlib.import_module(f"{name}.utils.logging")
            root: logging.Logger = utils._get_library_root_logger()
            return root
        except (ImportError, AttributeError):
            pass
    return logging.getLogger(name)


def fold_library_logs() -> None:
    """Fold the libraries' log records into ``fluxkit.local`` (idempotent, cheap)."""
    for name in LIBRARIES:
        if name not in sys.modules:
            continue  # not imported: nothing of it can log yet; the next call catches it
        logger = _library_root(name)
        if _FOLD not in logger.filters:
            logger.addFilter(_FOLD)  # records logged on the library's root logger itself
        for handler in logger.handlers:
            if _FOLD not in handler.filters:
                handler.addFilter(_FOLD)  # records of its child loggers, which propagate here
