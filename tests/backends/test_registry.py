"""The registry, the backend modules and the docs pages agree; lazy imports name their extra."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import fluxkit
from fluxkit.backends import BACKEND_EXTRAS, BACKEND_NAMES, get_backend_class

ROOT = Path(__file__).parents[2]


def test_every_registered_backend_has_a_module_and_a_docs_page() -> None:
    modules = {
        p.stem for p in (ROOT / "src/fluxkit/backends").glob("*.py") if not p.stem.startswith("_")
    }
    pages = {p.stem for p in (ROOT / "docs/backends").glob("*.md")} - {"new_backend"}
    assert set(BACKEND_NAMES) == modules == pages


@pytest.mark.parametrize("name", BACKEND_NAMES)
def test_backend_modules_declare_their_tables(name: str) -> None:
    module = importlib.import_module(f"fluxkit.backends.{name}")
    assert module.backend_class.name == name
    assert module.CAPABILITIES, name
    for alias, model in module.MODEL_ALIASES.items():
        assert model in module.CAPABILITIES or "*" in module.CAPABILITIES, (name, alias)


def test_backend_modules_import_no_heavy_packages() -> None:
    code = (
        "import sys, fluxkit.backends as b, importlib\n"
        "for name in b.BACKEND_NAMES: importlib.import_module('fluxkit.backends.' + name)\n"
        "print(sorted(m for m in ('torch', 'diffusers', 'fal_client', 'huggingface_hub', 'cv2') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_missing_optional_package_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_import(name: str, package: str | None = None) -> object:
        raise ModuleNotFoundError("No module named 'fal_client'", name="fal_client")

    monkeypatch.setattr(importlib, "import_module", broken_import)
    with pytest.raises(fluxkit.MissingDependencyError) as info:
        get_backend_class("fal")
    assert 'pip install "fluxkit[fal]"' in str(info.value) and "fal_client" in str(info.value)
    assert isinstance(info.value, ImportError)


def test_extras_named_in_the_registry_exist_in_pyproject() -> None:
    import tomllib

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    for extra in filter(None, BACKEND_EXTRAS.values()):
        assert extra in extras
    for extra in ("fal", "local", "worker", "hub", "faces", "modal", "all", "dev"):
        assert extra in extras
