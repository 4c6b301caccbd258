"""The six restyle presets."""

from __future__ import annotations

import pytest

from fluxkit import InvalidRequestError
from fluxkit.cli.compose import _STYLES
from fluxkit.faces import STYLE_PRESETS, style_prompt


def test_the_six_presets() -> None:
    titles = [p.title for p in STYLE_PRESETS.values()]
    assert titles == [
        "Van Gogh oil painting",
        "Renaissance masterpiece with dramatic lighting",
        "Soft watercolour",
        "Modern neon digital art",
        "Classical baroque portrait",
        "Impressionist brushstrokes",
    ]
    assert tuple(STYLE_PRESETS) == _STYLES  # the CLI's choices stay in step


@pytest.mark.parametrize("name", ["van-gogh", "Van Gogh", "VAN_GOGH", "vangogh"])
def test_names_are_forgiving(name) -> None:
    assert style_prompt(name) == STYLE_PRESETS["van-gogh"].prompt


def test_watercolor_spelling() -> None:
    assert style_prompt("watercolor") == STYLE_PRESETS["watercolour"].prompt


def test_unknown_style_lists_the_presets() -> None:
    with pytest.raises(InvalidRequestError, match="impressionist"):
        style_prompt("cubist")
