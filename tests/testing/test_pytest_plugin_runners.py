"""The pytest plugin's fixtures under each async runner an app may use, in a fresh pytest.

Each case runs a small test file in a subprocess with its own ini (no fluxkit suite settings),
so the plugin is loaded exactly as an app's test suite loads it: through the entry point.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

_TESTS = """
import pytest
{marker_import}

{marker}
async def test_async_fixture(async_fake_generator):
    result = await async_fake_generator.generate("a fox", seed=5, n=2)
    assert [image.seed for image in result.images] == [5, 6]
    events = [type(e).__name__ async for e in async_fake_generator.stream("a fox", seed=1)]
    assert events[-1] == "Completed"


def test_sync_fixture(fake_generator, fake_emulator):
    fake_generator.generate("a fox", seed=1)
    assert fake_emulator.log
"""


def _run(tmp_path: Path, ini: str, marker: str, marker_import: str, *options: str) -> str:
    (tmp_path / "pytest.ini").write_text(f"[pytest]\n{ini}\n", encoding="utf-8")
    test_file = tmp_path / "test_app.py"
    test_file.write_text(_TESTS.format(marker=marker, marker_import=marker_import), "utf-8")
    completed = subprocess.run(
        [sys.executable, "-m", "pytest", str(test_file), "-q", "-p", "no:cacheprovider", *options],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output
    return output


def test_pytest_asyncio_strict_mode(tmp_path: Path) -> None:
    output = _run(
        tmp_path,
        "asyncio_mode = strict\nasyncio_default_fixture_loop_scope = function\nfilterwarnings = error",
        "@pytest.mark.asyncio",
        "",
    )
    assert "2 passed" in output


def test_pytest_asyncio_auto_mode(tmp_path: Path) -> None:
    output = _run(
        tmp_path,
        "asyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\nfilterwarnings = error",
        "",
        "",
    )
    assert "2 passed" in output


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_anyio_plugin_without_pytest_asyncio(tmp_path: Path, backend: str) -> None:
    pytest.importorskip("trio")
    output = _run(
        tmp_path,
        "filterwarnings = error",
        f"@pytest.mark.anyio\n@pytest.mark.parametrize('anyio_backend', ['{backend}'])",
        "",
        "-p",
        "no:asyncio",
    )
    assert "2 passed" in output
