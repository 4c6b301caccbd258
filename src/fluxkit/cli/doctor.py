"""``fluxkit doctor``: which backends are installed and configured, which credentials are missing."""

from __future__ import annotations

import argparse
import importlib.util
import os

__all__ = ["backend_report", "register"]

_PACKAGES: dict[str, tuple[str, ...]] = {
    "diffusers": ("torch", "diffusers", "transformers", "peft", "safetensors"),
    "fal": (),
    "together": (),
    "replicate": (),
    "fake": (),
}
_HELPERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "hub upload": ("hub", ("huggingface_hub",)),
    "face compositing": ("faces", ("cv2",)),
}


def _missing(packages: tuple[str, ...]) -> list[str]:
    return [name for name in packages if importlib.util.find_spec(name) is None]


def backend_report() -> list[tuple[str, str, str]]:
    """(backend, state, hint) for every registered backend; never prints a secret."""
    from fluxkit.backends import BACKEND_EXTRAS, get_backend_class

    rows = []
    for name, extra in BACKEND_EXTRAS.items():
        missing = _missing(_PACKAGES.get(name, ()))
        if missing:
            rows.append(
                (name, "not installed", f'pip install "fluxkit[{extra}]" ({", ".join(missing)})')
            )
            continue
        try:
            cls = get_backend_class(name)
        except ImportError as exc:
            rows.append((name, "not installed", str(exc)))
            continue
        env_vars: tuple[str, ...] = getattr(cls, "env_vars", ())
        if env_vars and not any(os.environ.get(var) for var in env_vars):
            rows.append((name, "no credentials", f"set {' or '.join(env_vars)}"))
        else:
            found = next((var for var in env_vars if os.environ.get(var)), None)
            rows.append((name, "ready", f"key from {found}" if found else ""))
    return rows


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("doctor", help="check installed backends and credentials")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from fluxkit._version import __version__

    print(f"fluxkit {__version__}")
    print("backends:")
    for name, state, hint in backend_report():
        print(f"  {name:<10} {state:<15} {hint}")
    print("helpers:")
    for helper, (extra, packages) in _HELPERS.items():
        missing = _missing(packages)
        state = "ready" if not missing else f'pip install "fluxkit[{extra}]"'
        print(f"  {helper:<28} {state}")
    return 0
