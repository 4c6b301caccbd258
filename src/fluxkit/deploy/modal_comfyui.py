"""ComfyUI + FLUX.1-dev + the XLabs IP-Adapter on Modal, behind proxy auth.

Deploy (needs ``pip install "fluxkit[modal]"``, ``modal token new`` and a Hugging Face token
with access to FLUX.1-dev stored as a Modal secret)::

    modal secret create fluxkit-hf HF_TOKEN=hf_...
    modal deploy -m fluxkit.deploy.modal_comfyui

Then create a proxy-auth token (workspace settings → Proxy Auth Tokens) and talk to it::

    export MODAL_KEY=wk-... MODAL_SECRET=ws-...
    fluxkit generate "portrait of a woman, oil painting" --backend comfyui \\
        --base-url https://<workspace>--fluxkit-comfyui-comfyui-api.modal.run \\
        --reference-image face.jpg

What it builds:

* an image with ComfyUI 0.8.0 (git tag, its pinned requirements), x-flux-comfyui at a fixed
  commit with its requirements installed at build time (its ``__init__`` otherwise runs pip on
  import), and fluxkit's XLabs compatibility node — without it ComfyUI >= 0.3.8 fails to sample
  with the IP-Adapter (``DoubleStreamBlock.forward() got an unexpected keyword argument
  'attn_mask'``); the test suite runs the same node against a real ComfyUI 0.8.0;
* weights downloaded at build time into the ``fluxkit-comfyui-models`` Volume (token from the
  ``fluxkit-hf`` secret): FLUX.1-dev, T5-XXL + CLIP-L, XLabs flux-ip-adapter-v2, CLIP-L vision;
* one container (``max_containers=1``: ``/history`` and ``/view`` must reach the container that
  ran the prompt) serving the native API with ``requires_proxy_auth=True``.

Importing this module needs ``modal`` but no account: the app, image chain, class and web
endpoint are built lazily (the offline tests do exactly that).
"""

from __future__ import annotations

import os
import subprocess
import time
import urllib.request
from typing import Any

import modal

from fluxkit.deploy._comfy_launch import (
    COMFYUI_VERSION,
    COMPAT_NODES,
    PORT,
    XFLUX_COMMIT,
    launch_command,
)

__all__ = [
    "GPU",
    "MODELS",
    "WEB_SERVER_OPTIONS",
    "ComfyUI",
    "app",
    "download_models",
    "hf_secret",
    "image",
    "volume",
]

APP_NAME = "fluxkit-comfyui"
GPU = os.environ.get("FLUXKIT_MODAL_GPU", "L40S")
COMFY_ROOT = "/root/comfy"
COMFY_DIR = f"{COMFY_ROOT}/ComfyUI"
MODELS_DIR = "/models"
XFLUX_DIR = f"{COMFY_DIR}/custom_nodes/x-flux-comfyui"

MODELS: tuple[tuple[str, str, str], ...] = (
    # (Hub repo, file in the repo, ComfyUI models folder)
    ("black-forest-labs/FLUX.1-dev", "flux1-dev.safetensors", "diffusion_models"),
    ("black-forest-labs/FLUX.1-dev", "ae.safetensors", "vae"),
    ("comfyanonymous/flux_text_encoders", "t5xxl_fp16.safetensors", "text_encoders"),
    ("comfyanonymous/flux_text_encoders", "clip_l.safetensors", "text_encoders"),
    ("XLabs-AI/flux-ip-adapter-v2", "ip_adapter.safetensors", "xlabs/ipadapters"),
    ("openai/clip-vit-large-patch14", "model.safetensors", "clip_vision"),
)
"""Files the server gets; their names are :class:`fluxkit.comfy.FluxModels`' defaults."""

volume = modal.Volume.from_name("fluxkit-comfyui-models", create_if_missing=True)
hf_secret = modal.Secret.from_name("fluxkit-hf")


def download_models() -> None:
    """Build step: fetch :data:`MODELS` into the Volume (skips files already there)."""
    import shutil

    from huggingface_hub import hf_hub_download

    token = os.environ.get("HF_TOKEN")
    for repo, filename, folder in MODELS:
        target = os.path.join(MODELS_DIR, folder, filename)
        if os.path.exists(target):
            continue
        os.makedirs(os.path.dirname(target), exist_ok=True)
        path = hf_hub_download(repo, filename, token=token, cache_dir=f"{MODELS_DIR}/.hf")
        shutil.copyfile(path, target + ".part")
        os.replace(target + ".part", target)
    volume.commit()


image = (
    modal.Image.debian_slim(python_version="3.11")
    .apt_install("git", "libgl1", "libglib2.0-0")
    .run_commands(
        f"git clone --depth 1 --branch v{COMFYUI_VERSION} "
        f"https://github.com/comfyanonymous/ComfyUI.git {COMFY_DIR}",
        f"pip install -r {COMFY_DIR}/requirements.txt",
        f"git clone https://github.com/XLabs-AI/x-flux-comfyui.git {XFLUX_DIR}",
        f"git -C {XFLUX_DIR} checkout {XFLUX_COMMIT}",
        # x-flux-comfyui's requirements, installed now (its __init__ runs pip on every import):
        # the headless OpenCV build instead of opencv-python (which needs libGL), einops pinned.
        "pip install GitPython einops==0.8.0 transformers diffusers sentencepiece "
        "opencv-python-headless huggingface_hub",
    )
    .add_local_dir(
        str(COMPAT_NODES / "fluxkit_xflux_compat"),
        f"{COMFY_DIR}/custom_nodes/zz_fluxkit_xflux_compat",  # loads after x-flux-comfyui
        copy=True,
    )
    .env({"HF_HUB_ENABLE_HF_TRANSFER": "0"})
    .run_function(download_models, volumes={MODELS_DIR: volume}, secrets=[hf_secret])
)

app = modal.App(APP_NAME, image=image)

WEB_SERVER_OPTIONS: dict[str, Any] = {"startup_timeout": 300, "requires_proxy_auth": True}


def _models_yaml() -> str:
    folders = sorted({folder for _repo, _file, folder in MODELS})
    lines = "".join(f"  {folder}: {MODELS_DIR}/{folder}\n" for folder in folders)
    return f"fluxkit_models:\n  base_path: /\n{lines}"


@app.cls(
    gpu=GPU,
    volumes={MODELS_DIR: volume},
    max_containers=1,  # history and outputs live in one container
    scaledown_window=300,
    timeout=3600,
)
@modal.concurrent(max_inputs=32)
class ComfyUI:
    """The ComfyUI server: launched at container start, served as a proxy-auth web server."""

    @modal.enter()
    def launch(self) -> None:
        config = f"{COMFY_ROOT}/extra_model_paths.yaml"
        with open(config, "w") as handle:
            handle.write(_models_yaml())
        self.process = subprocess.Popen(launch_command(COMFY_DIR, extra_paths_config=config))
        deadline = time.monotonic() + 280
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{PORT}/system_stats", timeout=2):
                    return
            except OSError:
                time.sleep(0.5)
        raise RuntimeError("ComfyUI did not start within 280 s")

    @modal.web_server(PORT, **WEB_SERVER_OPTIONS)
    def api(self) -> None:
        """The native ComfyUI API (``/prompt``, ``/ws``, ``/history``, ``/view``, ...)."""
