"""What `pip install fluxkit` pulls, and what a public release needs in its metadata."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]

# Packages that must never come with the core install: GPU stacks, model libraries, big SDKs.
HEAVY = {
    "torch",
    "torchvision",
    "diffusers",
    "transformers",
    "accelerate",
    "peft",
    "safetensors",
    "tensorflow",
    "jax",
    "opencv-python",
    "opencv-python-headless",
    "scipy",
    "scikit-image",
    "matplotlib",
    "pandas",
    "huggingface-hub",
    "sentencepiece",
    "protobuf",
    "modal",
    "runpod",
    "boto3",
    "fal-client",
    "replicate",
    "together",
    "ipykernel",
    "ipywidgets",
    "nbclient",
}


def _name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
    assert match is not None, requirement
    return match[0].lower().replace("_", "-")


def test_core_dependencies_are_light() -> None:
    core = {_name(item) for item in PROJECT["dependencies"]}
    assert not core & HEAVY, core & HEAVY
    assert "tqdm" in core  # progress bars are part of the core experience
    assert len(core) <= 10, sorted(core)


def test_heavy_packages_live_in_extras() -> None:
    extras = PROJECT["optional-dependencies"]
    assert {"torch", "diffusers", "transformers"} <= {_name(item) for item in extras["local"]}
    assert "opencv-python-headless" in {_name(item) for item in extras["faces"]}


def test_release_metadata_is_complete() -> None:
    assert PROJECT["readme"] == "README.md" and (ROOT / "README.md").is_file()
    assert PROJECT["license"] == "Apache-2.0"
    assert PROJECT["license-files"] == ["LICENSE"]
    assert "Apache License" in (ROOT / "LICENSE").read_text("utf-8")
    assert (ROOT / "CHANGELOG.md").is_file()
    urls = PROJECT["urls"]
    assert {"Homepage", "Documentation", "Repository", "Issues", "Changelog"} <= set(urls)
    classifiers = PROJECT["classifiers"]
    assert any(c.startswith("Development Status ::") for c in classifiers)
    assert "Typing :: Typed" in classifiers
    assert (ROOT / "src" / "fluxkit" / "py.typed").is_file()
    sdist = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["tool"]["hatch"]["build"][
        "targets"
    ]["sdist"]["include"]
    assert {"CHANGELOG.md", "LICENSE", "README.md", "tests", "docs"} <= set(sdist)
