"""How the deployed ComfyUI is launched (no ``modal`` import: the tests run the same flags).

The Modal container runs :func:`launch_command`; the test suite starts the real ComfyUI 0.8.0
kit with :data:`SERVER_FLAGS` and fluxkit's XLabs compatibility node (:data:`COMPAT_NODES`), so
the flags and the patch the deployment ships are the ones proven against a real server.
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "COMFYUI_VERSION",
    "COMPAT_NODES",
    "PORT",
    "SERVER_FLAGS",
    "XFLUX_COMMIT",
    "extra_model_paths_yaml",
    "launch_command",
]

COMFYUI_VERSION = "0.8.0"
XFLUX_COMMIT = "00328556efc9472410d903639dc9e68a8471f7ac"
"""x-flux-comfyui at its 2024-10-30 head (the IP-Adapter nodes; needs the compat node on 0.8.0)."""
PORT = 8000
COMPAT_NODES = Path(__file__).parent / "comfyui_nodes"
"""A custom_nodes folder holding ``fluxkit_xflux_compat`` (loaded after x-flux-comfyui)."""

SERVER_FLAGS: tuple[str, ...] = (
    "--disable-auto-launch",
    "--disable-api-nodes",  # no paid API nodes on a server behind your token
    "--preview-method",
    "none",
)


def extra_model_paths_yaml(custom_nodes: list[str]) -> str:
    """An ``--extra-model-paths-config`` file adding ``custom_nodes`` folders."""
    lines = "".join(f"    {path}\n" for path in custom_nodes)
    return f"fluxkit:\n  custom_nodes: |\n{lines}"


def launch_command(
    comfy_dir: str = "/root/comfy/ComfyUI",
    *,
    port: int = PORT,
    listen: str = "0.0.0.0",
    extra_paths_config: str | None = None,
    python: str = "python",
) -> list[str]:
    """The command the container runs (also what the tests check against the kit)."""
    command = [python, f"{comfy_dir}/main.py", "--listen", listen, "--port", str(port)]
    command += list(SERVER_FLAGS)
    if extra_paths_config:
        command += ["--extra-model-paths-config", extra_paths_config]
    return command
