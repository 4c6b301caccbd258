from __future__ import annotations

import subprocess
import sys

import fluxkit
import fluxkit.testing


def test_all_is_sorted_and_every_name_resolves() -> None:
    names = [name for name in fluxkit.__all__ if name != "SIZE_PRESETS"]
    assert names == sorted(names, key=str.casefold) or names == sorted(names)
    for name in fluxkit.__all__:
        assert getattr(fluxkit, name) is not None, name


def test_every_public_attribute_is_exported() -> None:
    public = {name for name in dir(fluxkit) if not name.startswith("_")}
    modules = {
        "backends",
        "testing",
        "cli",
        "faces",
        "datasets",
        "lora",
        "hub",
        "worker",
        "comfy",
        "batch",
        "deploy",
        "training",
    }
    assert public - modules - set(fluxkit.__all__) == set()


def test_unknown_attribute_raises_attribute_error() -> None:
    try:
        fluxkit.no_such_thing  # noqa: B018
    except AttributeError as error:
        assert "no_such_thing" in str(error)
    else:  # pragma: no cover
        raise AssertionError


def test_import_is_light() -> None:
    code = (
        "import sys, fluxkit; "
        "print(sorted(m for m in ('httpx', 'pydantic', 'numpy', 'PIL', 'anyio', 'torch') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_testing_exports_resolve() -> None:
    for name in fluxkit.testing.__all__:
        assert getattr(fluxkit.testing, name) is not None


def test_package_ships_py_typed() -> None:
    from importlib.resources import files

    assert files("fluxkit").joinpath("py.typed").is_file()
