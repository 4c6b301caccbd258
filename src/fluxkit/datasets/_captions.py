"""Captions: one line each, the trigger word in place of ``{trigger}``/``[trigger]``.

fal's fast trainer ignores ``trigger_word`` as soon as an archive has captions, so for fal a
caption without the trigger would train a LoRA that never answers to it: fluxkit inserts the
trigger (or refuses, with ``trigger_policy="error"``) and says so in the report.
"""

from __future__ import annotations

import re
from typing import Literal

from fluxkit._exceptions import InvalidRequestError

__all__ = [
    "DEFAULT_TEMPLATE",
    "TriggerPolicy",
    "check_trigger",
    "clean_caption",
    "has_trigger",
    "render_caption",
]

DEFAULT_TEMPLATE = "photo of {trigger} person"
TriggerPolicy = Literal["insert", "error", "ignore"]

_PLACEHOLDERS = ("{trigger}", "[trigger]")
_TRIGGER = re.compile(r"^[^\s{}\[\]\n][^{}\[\]\n]{0,62}[^\s{}\[\]\n]?$")


def check_trigger(trigger: str) -> str:
    """Validate a trigger word (rare token such as ``tok`` or ``ohwx``).

    Raises:
        InvalidRequestError: empty, multi-line, longer than 64 characters or with brackets.
    """
    value = trigger.strip() if isinstance(trigger, str) else trigger
    if not isinstance(value, str) or not _TRIGGER.match(value):
        raise InvalidRequestError(
            "trigger", trigger, "1-64 characters on one line, no brackets or braces (e.g. 'tok')"
        )
    return value


def clean_caption(text: str) -> str:
    """One line, no BOM, single spaces."""
    return " ".join(text.replace("\ufeff", "").split())


def has_trigger(caption: str, trigger: str) -> bool:
    """Whether ``trigger`` appears as a whole word (case-insensitive)."""
    return re.search(rf"(?<!\w){re.escape(trigger)}(?!\w)", caption, re.IGNORECASE) is not None


def render_caption(
    text: str, trigger: str, *, require: bool, policy: TriggerPolicy, source: str
) -> tuple[str, bool]:
    """``(caption, inserted)``: placeholders filled, trigger inserted when required and missing.

    Example:
        ```python
        render_caption("a photo of [trigger] at the beach", "tok", require=True,
                       policy="insert", source="a.jpg")
        # ("a photo of tok at the beach", False)
        ```

    Raises:
        InvalidRequestError: the trigger is required, missing, and ``policy="error"``.
    """
    caption = text
    for placeholder in _PLACEHOLDERS:
        caption = caption.replace(placeholder, trigger)
    caption = clean_caption(caption)
    if not require or policy == "ignore" or has_trigger(caption, trigger):
        return caption, False
    if policy == "error":
        raise InvalidRequestError(
            f"captions[{source!r}]",
            caption,
            f"a caption containing the trigger {trigger!r}",
            reason="fal ignores trigger_word when captions are present",
        )
    return (f"{trigger}, {caption}" if caption else trigger), True
