"""Every Python block in docs/ runs as a notebook user would paste it, against the fake backend.

Blocks of a page run in order in one namespace, inside a running event loop (as in Jupyter):
top-level ``await`` works, ``asyncio.run`` fails, sync ``Generator`` calls must work too. They
run in a temporary folder; hosted backends (fal, Replicate, Together) talk to fluxkit's
emulators of them, with placeholder keys — nothing reaches the network.

A block that needs credentials, a GPU, the network or the reader's own files is preceded by the
marker ``<!-- docs-test: skip REASON -->`` (see docs/contributing.md); every other block runs.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import os
import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"
_BLOCK = re.compile(
    r"(?P<marker><!--\s*docs-test:\s*skip\b(?P<reason>[^>]*)-->\s*\n)?"
    r"^(?P<indent>[ \t]*)```python[^\n]*\n(?P<code>.*?)^(?P=indent)```",
    re.DOTALL | re.MULTILINE,
)


def blocks(page: Path) -> list[tuple[int, str, str | None]]:
    """(line, code, skip reason or None) for each ```python block of ``page``."""
    text = page.read_text(encoding="utf-8")
    found = []
    for match in _BLOCK.finditer(text):
        indent = match["indent"]
        code = "".join(
            line[len(indent) :] if line.startswith(indent) else line
            for line in match["code"].splitlines(keepends=True)
        )
        reason = match["reason"].strip() or "marked" if match["marker"] else None
        found.append((text.count("\n", 0, match.start("indent")) + 1, code, reason))
    return found


PAGES = sorted(
    page for page in DOCS.rglob("*.md") if any(reason is None for _, _, reason in blocks(page))
)


async def _run_page(page: Path) -> None:
    import fluxkit

    # Pages assume `import fluxkit` from their first block, which may be a skipped one.
    namespace: dict[str, object] = {"__name__": "__docs__", "fluxkit": fluxkit}
    for line, code, reason in blocks(page):
        if reason is not None:
            continue
        name = f"{page.relative_to(DOCS)}:{line}"
        compiled = compile(code, name, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        outcome = eval(compiled, namespace)
        if inspect.iscoroutine(outcome):
            await outcome


def _emulated_providers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hosted backends built without ``transport=`` reach an emulator instead of the network."""
    from fluxkit.backends.fal import FalBackend
    from fluxkit.backends.replicate import ReplicateBackend
    from fluxkit.backends.together import TogetherBackend
    from fluxkit.testing.fal import FalEmulator
    from fluxkit.testing.replicate import ReplicateEmulator
    from fluxkit.testing.together import TogetherEmulator

    for backend, emulator, variable in (
        (FalBackend, FalEmulator(), "FAL_KEY"),
        (ReplicateBackend, ReplicateEmulator(), "REPLICATE_API_TOKEN"),
        (TogetherBackend, TogetherEmulator(), "TOGETHER_API_KEY"),
    ):
        transport = emulator.transport()
        monkeypatch.setattr(backend, "default_transport", lambda self, t=transport: t)
        monkeypatch.setenv(variable, "docs-test-key")


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(DOCS)) for p in PAGES])
def test_page_runs_in_a_notebook_loop(
    page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    _emulated_providers(monkeypatch)
    asyncio.run(_run_page(page))


def test_markers_are_rare_and_explained() -> None:
    skipped = [
        (page.name, line, reason)
        for page in DOCS.rglob("*.md")
        for line, _, reason in blocks(page)
        if reason is not None
    ]
    total = sum(len(blocks(page)) for page in DOCS.rglob("*.md"))
    assert all(reason and reason != "marked" for _, _, reason in skipped), skipped
    assert len(skipped) <= total // 2, (len(skipped), total, skipped)


def test_no_asyncio_run_in_pasteable_blocks() -> None:
    offenders = [
        f"{page.name}:{line}"
        for page in DOCS.rglob("*.md")
        for line, code, reason in blocks(page)
        if reason is None and re.search(r"^asyncio\.run\(", code, re.MULTILINE)
    ]
    assert offenders == []


def test_no_private_imports_in_docs_or_examples() -> None:
    root = DOCS.parent
    private = re.compile(r"^\s*(from fluxkit(\.\w+)*\._\w+ import|import fluxkit(\.\w+)*\._)", re.M)
    files = [*DOCS.rglob("*.md"), *(root / "examples").glob("*.py"), root / "README.md"]
    offenders = [
        str(path.relative_to(root)) for path in files if private.search(path.read_text("utf-8"))
    ]
    assert offenders == []


if os.environ.get("FLUXKIT_DOCS_LIST"):  # pragma: no cover - a helper for writing docs
    for page in PAGES:
        print(page, [(line, reason) for line, _, reason in blocks(page)])  # noqa: T201
