"""The real ComfyUI 0.8.0 server kit from ``../shared/comfyui``: one per test process.

Both ``tests/comfy`` and ``tests/backends/test_comfyui.py`` use :func:`server`, so the server
(≈10 s to start, 2.4 GB RSS) starts once per session. Tests skip, printing why, only where the
kit is absent.
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

KIT = Path(__file__).resolve().parents[2].parent / "shared" / "comfyui"
REASON = f"the ComfyUI test kit is absent ({KIT} not found)"
_servers: dict[str, Any] = {}
_kit: Any = None


def kit() -> Any:
    global _kit
    if _kit is None:
        if not (KIT / "server.py").is_file():
            pytest.skip(REASON)
        spec = importlib.util.spec_from_file_location("comfykit", KIT / "server.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        old, sys.dont_write_bytecode = sys.dont_write_bytecode, True  # read-only kit
        try:
            spec.loader.exec_module(module)
        finally:
            sys.dont_write_bytecode = old
        _kit = module
    return _kit


def server(compat: bool = False) -> Any:
    """The session's server; ``compat=True``: one with fluxkit's XLabs compatibility node
    (the copy the Modal deployment ships, not the kit's) and the deployment's flags."""
    key = "compat" if compat else "stock"
    if key not in _servers:
        comfykit = kit()
        from fluxkit.deploy._comfy_launch import (
            COMPAT_NODES,
            SERVER_FLAGS,
            extra_model_paths_yaml,
        )

        extra = list(SERVER_FLAGS)
        if compat:
            handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - lives for the session
                "w", suffix=".yaml", delete=False
            )
            handle.write(extra_model_paths_yaml([str(COMPAT_NODES)]))
            handle.close()
            atexit.register(os.unlink, handle.name)
            extra += ["--extra-model-paths-config", handle.name]
        srv = comfykit.ComfyServer(tiny_models=True, extra_args=extra, quiet=True)
        srv.start()
        atexit.register(srv.stop)
        _servers[key] = srv
    return _servers[key]
