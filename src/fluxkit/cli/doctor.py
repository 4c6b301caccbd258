"""``fluxkit doctor``: which backends are installed and configured, which credentials are missing.

``--check`` also verifies every configured key with the cheapest authenticated call its provider
offers (none of them starts paid work): a key the provider refuses shows as ``key rejected``,
never as ``ready``.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["KEY_CHECKS", "backend_report", "check_key", "register"]

# backend -> the free, authenticated request that proves its key (method, URL from the backend).
KEY_CHECKS: dict[str, tuple[str, Callable[[Any], str], str]] = {
    # The status of a request id nobody has: fal authenticates before looking it up (401/403
    # for a bad key, 404 for a good one); nothing is queued or billed.
    "fal": (
        "GET",
        lambda b: f"{b.base_url}/fal-ai/flux/requests/00000000-0000-4000-8000-000000000000/status",
        "queue status of an unknown request",
    ),
    "replicate": ("GET", lambda b: f"{b.base_url}/v1/account", "GET /v1/account"),
    "together": ("GET", lambda b: f"{b.base_url}/v1/models", "GET /v1/models"),
    # The token the router bills: whoami on the Hub (the router has no free call of its own).
    "huggingface": ("GET", lambda b: f"{b.hub_url}/api/whoami-v2", "GET /api/whoami-v2"),
    # The endpoint's health: authenticated, free, and it proves the endpoint id too.
    "runpod": ("GET", lambda b: f"{b.base_url}/{b.endpoint_id}/health", "GET /{endpoint}/health"),
}
_HF_WHOAMI = "https://huggingface.co/api/whoami-v2"

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
        elif name not in KEY_CHECKS and env_vars:
            source = next(var for var in env_vars if os.environ.get(var))
            rows.append((name, "ready", f"key from {source} (no free call checks it)"))
        else:
            found = next((var for var in env_vars if os.environ.get(var)), None)
            rows.append((name, "ready", f"key from {found}" if found else ""))
    return rows


def _verdict(status: int, *, missing_is_ok: bool) -> tuple[str, str]:
    if status in (401, 403):
        return "key rejected", f"the provider refused the key (HTTP {status})"
    if 200 <= status < 300 or (missing_is_ok and status == 404):
        return "ready", "key verified"
    return "unverified", f"unexpected answer HTTP {status}; try again later"


def _probe(
    name: str,
    method: str,
    url: str,
    headers: Mapping[str, Any],
    what: str,
    transport: Any,
    timeout: float,
) -> tuple[str, str]:
    """One authenticated request through the drivers (no retries): the verdict on the key.

    Headers may hold ``Secret`` values; only the driver reveals them, on the wire.
    """
    import httpx

    from fluxkit._core import HttpRequest, RetryPolicy, send
    from fluxkit._drivers import FlowContext, run_flow
    from fluxkit._exceptions import ProviderError

    request = HttpRequest(
        method, url, headers=headers, retry="never", raise_for_status=False, timeout=timeout
    )
    try:
        with httpx.Client(transport=transport) as client:
            answer = run_flow(send(request), client, FlowContext(name, RetryPolicy(max_retries=0)))
    except ProviderError as exc:  # the connection failed: not a verdict on the key
        return "unreachable", f"{what} failed: {exc.__cause__.__class__.__name__}"
    return _verdict(answer.value.status_code, missing_is_ok=name == "fal")


def check_key(name: str, *, transport: Any = None, timeout: float = 10.0) -> tuple[str, str] | None:
    """(state, hint) after asking ``name``'s provider whether its configured key is good.

    None when ``name`` has no key check (local backends). ``transport`` is an httpx transport
    (an emulator's in tests); the key is never printed.
    """
    from fluxkit._exceptions import FluxkitError, MissingCredentialsError
    from fluxkit.backends import get_backend_class

    check = KEY_CHECKS.get(name)
    if check is None:
        return None
    method, url_for, what = check
    try:
        backend: Any = get_backend_class(name)()
    except (MissingCredentialsError, AssertionError):
        return "no credentials", "no key to check"
    except FluxkitError as exc:  # set-up beyond the key, e.g. runpod without RUNPOD_ENDPOINT_ID
        return "not configured", str(exc)
    make_headers = getattr(backend, "_headers", None)
    headers = (
        make_headers()
        if callable(make_headers)
        else {"authorization": backend.api_key.prefixed("Bearer ")}
    )
    return _probe(name, method, url_for(backend), headers, what, transport, timeout)


def _check_hub_token(transport: Any, timeout: float = 10.0) -> tuple[str, str] | None:
    from fluxkit._config import Secret

    token = os.environ.get("HF_TOKEN")
    if not token:
        return None
    headers = {"authorization": Secret(token).prefixed("Bearer ")}
    return _probe("hub", "GET", _HF_WHOAMI, headers, "whoami", transport, timeout)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "doctor",
        help="check installed backends and credentials",
        description="List backends and helpers, what is installed and which keys are set. "
        "Exit status 1 when --check finds a key the provider refuses or cannot be reached.",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="verify each configured key with the provider's cheapest authenticated call "
        "(free: nothing is generated)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, transports: Mapping[str, Any] | None = None) -> int:
    """Print the report; ``transports`` maps a backend (or ``"hub"``) to an httpx transport."""
    from fluxkit._version import __version__

    transports = transports or {}
    failed = False
    print(f"fluxkit {__version__}")
    print("backends:")
    for name, state, hint in backend_report():
        if getattr(args, "check", False) and state == "ready":
            # the router's token is a Hub token: in tests the Hub emulator answers for both
            transport = transports.get(name) or (
                transports.get("hub") if name == "huggingface" else None
            )
            checked = check_key(name, transport=transport)
            if checked is not None:
                state, detail = checked
                hint = f"{hint}; {detail}" if hint else detail
                failed = failed or state != "ready"
        print(f"  {name:<10} {state:<15} {hint}")
    print("helpers:")
    for helper, (extra, packages) in _HELPERS.items():
        missing = _missing(packages)
        state = "ready" if not missing else f'pip install "fluxkit[{extra}]"'
        if getattr(args, "check", False) and helper == "hub upload" and not missing:
            checked = _check_hub_token(transports.get("hub"))
            if checked is not None:
                state = f"{checked[0]} ({checked[1]})"
                failed = failed or checked[0] != "ready"
        print(f"  {helper:<28} {state}")
    return 1 if failed else 0
