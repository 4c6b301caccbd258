"""mkdocs hook: capability tables and the cross-backend matrix, generated from the code.

``<!-- capabilities:NAME -->`` expands into the backend's tables and ``<!-- capability-matrix -->``
into every backend side by side, both built from the backend modules' own ``CAPABILITIES`` and
``MODEL_ALIASES``, so the docs cannot drift from the code. This folder is excluded from the
published site (``exclude_docs`` in mkdocs.yml).
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any

_MARKER = re.compile(r"<!--\s*capabilities:(?P<name>\w+)\s*-->")


def _flag(value: bool) -> str:
    return "yes" if value else "—"


def capability_table(backend: str) -> str:
    """Two narrow tables (what each model takes; its ranges) instead of one nine columns wide,
    so they read at 1280 px without wrapping model ids mid-word."""
    from fluxkit._capabilities import UNLIMITED

    module = importlib.import_module(f"fluxkit.backends.{backend}")
    aliases: dict[str, list[str]] = {}
    for alias, model in getattr(module, "MODEL_ALIASES", {}).items():
        aliases.setdefault(model, []).append(f"`{alias}`")
    inputs = [
        "| model | aliases | LoRAs | img2img | reference image | images per call |",
        "|---|---|---|---|---|---|",
    ]
    ranges = [
        "| model | sizes (px) | steps: max (default) | guidance (default) |",
        "|---|---|---|---|",
    ]
    for model, caps in module.CAPABILITIES.items():
        loras = "any" if caps.max_loras >= UNLIMITED else (caps.max_loras or "—")
        per_call = f"{caps.max_images_per_call}" + (
            "" if caps.seeds_per_image else " (1 when seeds matter)"
        )
        inputs.append(
            f"| `{model}` | {', '.join(aliases.get(model, [])) or '—'} | {loras} "
            f"| {_flag(caps.img2img)} | {_flag(caps.reference_image)} | {per_call} |"
        )
        guidance = (
            f"{caps.default_guidance:g}"
            if caps.guidance and caps.default_guidance is not None
            else "ignored"
        )
        steps = f"{caps.max_steps} ({caps.default_steps})" if caps.steps else "fixed"
        ranges.append(
            f"| `{model}` | {caps.min_side}–{caps.max_side}, multiple of {caps.size_multiple} "
            f"| {steps} | {guidance} |"
        )
    return "\n".join(inputs) + "\n\n" + "\n".join(ranges)


def capability_matrix() -> str:
    """Every registered backend side by side, from the same ``CAPABILITIES`` as its own page."""
    from fluxkit._capabilities import UNLIMITED
    from fluxkit.backends import BACKEND_EXTRAS

    rows = [
        "| backend | models | LoRAs | img2img | reference image | images per call "
        "| largest side | step control | install |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name in sorted(BACKEND_EXTRAS):
        module = importlib.import_module(f"fluxkit.backends.{name}")
        models = list(getattr(module, "CAPABILITIES", {}).values())
        if not models:
            continue
        most_loras = max(caps.max_loras for caps in models)
        loras = "any" if most_loras >= UNLIMITED else (most_loras or "—")
        extra = BACKEND_EXTRAS[name]
        install = f"`fluxkit[{extra}]`" if extra else "core"
        link = (
            f"[{name}](backends/{name}.md)"
            if (_DOCS / "backends" / f"{name}.md").exists()
            else name
        )
        rows.append(
            f"| {link} | {len(models)} | {loras} "
            f"| {_some(models, 'img2img')} | {_some(models, 'reference_image')} "
            f"| up to {max(caps.max_images_per_call for caps in models)} "
            f"| {max(caps.max_side for caps in models)} px "
            f"| {_some(models, 'steps')} | {install} |"
        )
    return "\n".join(rows)


def _some(models: list[Any], attribute: str) -> str:
    having = sum(1 for caps in models if getattr(caps, attribute))
    if having == len(models):
        return "yes"
    return f"{having} of {len(models)} models" if having else "—"


_DOCS = Path(__file__).resolve().parents[1]
_ROLE = re.compile(r":(?:class|func|meth|attr|mod|exc|data|obj):(?=<code>)")


def on_page_content(html: str, **kwargs: Any) -> str:
    """A reST role left in a docstring (``:class:`X```) would show as text: drop the role."""
    return _ROLE.sub("", html)


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
    markdown = markdown.replace("<!-- capability-matrix -->", capability_matrix())
    markdown = _INCLUDE.sub(lambda match: _include(match["path"]), markdown)
    return _MARKER.sub(lambda match: capability_table(match["name"]), markdown)
