"""mkdocs hook: expand ``<!-- capabilities:NAME -->`` into the backend's capability table.

The table is built from the backend module's own ``CAPABILITIES`` and ``MODEL_ALIASES``, so the
docs cannot drift from the code.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any

_MARKER = re.compile(r"<!--\s*capabilities:(?P<name>\w+)\s*-->")


def capability_table(backend: str) -> str:
    module = importlib.import_module(f"fluxkit.backends.{backend}")
    aliases: dict[str, list[str]] = {}
    for alias, model in getattr(module, "MODEL_ALIASES", {}).items():
        aliases.setdefault(model, []).append(f"`{alias}`")
    rows = [
        "| model | aliases | LoRAs | img2img | reference image | images/call | sizes | steps (default) | guidance |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    from fluxkit._capabilities import UNLIMITED

    for model, caps in module.CAPABILITIES.items():
        loras = "any" if caps.max_loras >= UNLIMITED else (caps.max_loras or "—")
        guidance = (
            f"{caps.default_guidance:g}"
            if caps.guidance and caps.default_guidance is not None
            else "ignored"
        )
        rows.append(
            f"| `{model}` | {', '.join(aliases.get(model, [])) or '—'} | {loras} "
            f"| {'yes' if caps.img2img else '—'} | {'yes' if caps.reference_image else '—'} "
            f"| {caps.max_images_per_call}{'' if caps.seeds_per_image else ' (1 per call for seeds)'} "
            f"| {caps.min_side}–{caps.max_side}, ×{caps.size_multiple} "
            f"| {f'≤{caps.max_steps} ({caps.default_steps})' if caps.steps else 'fixed'} | {guidance} |"
        )
    return "\n".join(rows)


_INCLUDE = re.compile(r"<!--\s*include:(?P<path>[\w./-]+)\s*-->")


def _include(path: str) -> str:
    # Documents that live beside the code (backends/new_backend.md) are shown in the site too.
    return Path(path).read_text(encoding="utf-8")


def error_tree() -> str:
    """The error tree as drawn in ``fluxkit._exceptions``' docstring."""
    import textwrap

    from fluxkit import _exceptions

    doc = _exceptions.__doc__ or ""
    start = doc.index("    FluxkitError")
    end = doc.index("\n\n", start)
    return "```text\n" + textwrap.dedent(doc[start:end]) + "\n```"


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    markdown = markdown.replace("<!-- error-tree -->", error_tree())
    markdown = _INCLUDE.sub(lambda match: _include(match["path"]), markdown)
    return _MARKER.sub(lambda match: capability_table(match["name"]), markdown)
