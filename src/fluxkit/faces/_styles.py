"""The six restyle presets: prompts for the img2img pass that unifies a composite's style."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from fluxkit._exceptions import InvalidRequestError

__all__ = ["STYLE_PRESETS", "StylePreset", "style_prompt"]


@dataclass(frozen=True)
class StylePreset:
    """A named restyle prompt.

    Attributes:
        name: the key to pass as ``style=`` (``"van-gogh"``).
        title: a human name (``"Van Gogh oil painting"``).
        prompt: the text sent to FLUX.
    """

    name: str
    title: str
    prompt: str


_PRESETS = (
    StylePreset(
        "van-gogh",
        "Van Gogh oil painting",
        "portrait in the style of a Van Gogh oil painting, thick impasto brushstrokes, swirling "
        "textured background, vivid complementary colours",
    ),
    StylePreset(
        "renaissance",
        "Renaissance masterpiece with dramatic lighting",
        "Renaissance masterpiece portrait, dramatic chiaroscuro lighting, oil glazes on wood "
        "panel, fine detail, museum quality",
    ),
    StylePreset(
        "watercolour",
        "Soft watercolour",
        "soft watercolour portrait, delicate translucent washes, gentle colour bleeding, "
        "visible paper texture",
    ),
    StylePreset(
        "neon",
        "Modern neon digital art",
        "modern neon digital art portrait, glowing cyan and magenta rim light, sleek digital "
        "painting, dark background",
    ),
    StylePreset(
        "baroque",
        "Classical baroque portrait",
        "classical baroque portrait, oil on canvas, rich deep shadows, ornate costume detail, "
        "warm candlelit palette",
    ),
    StylePreset(
        "impressionist",
        "Impressionist brushstrokes",
        "impressionist portrait painting, loose visible brushstrokes, dappled natural light, "
        "soft broken colour",
    ),
)

STYLE_PRESETS: Mapping[str, StylePreset] = MappingProxyType({p.name: p for p in _PRESETS})
"""The presets by name: ``van-gogh``, ``renaissance``, ``watercolour``, ``neon``, ``baroque``,
``impressionist``."""

_ALIASES = {"vangogh": "van-gogh", "watercolor": "watercolour", "impressionism": "impressionist"}


def style_prompt(name: str) -> str:
    """The prompt of the preset called ``name`` (case, spaces and underscores are ignored).

    Raises:
        InvalidRequestError: no preset has that name (the message lists them).

    Example:
        ```python
        from fluxkit.faces import style_prompt

        style_prompt("Van Gogh")      # "portrait in the style of a Van Gogh oil painting, ..."
        style_prompt("watercolor")    # American spelling works too
        ```
    """
    key = "-".join(name.strip().lower().replace("_", " ").split())
    key = _ALIASES.get(key.replace("-", ""), key)
    preset = STYLE_PRESETS.get(key)
    if preset is None:
        raise InvalidRequestError("style", name, ", ".join(STYLE_PRESETS))
    return preset.prompt
