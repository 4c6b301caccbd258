"""The Modal deployment builds offline (no account): app, image chain, class, web endpoint."""

from __future__ import annotations

import pytest

modal = pytest.importorskip("modal", reason="the modal extra is not installed")

from fluxkit.deploy import _comfy_launch  # noqa: E402
from fluxkit.deploy import modal_comfyui as deployment  # noqa: E402


def test_app_image_class_and_endpoint_build_offline() -> None:
    assert isinstance(deployment.app, modal.App)
    assert deployment.app.name == "fluxkit-comfyui"
    assert isinstance(deployment.image, modal.Image)
    assert isinstance(deployment.ComfyUI, modal.Cls)
    assert isinstance(deployment.volume, modal.Volume)
    assert isinstance(deployment.hf_secret, modal.Secret)
    assert deployment.WEB_SERVER_OPTIONS["requires_proxy_auth"] is True


def test_the_container_runs_the_flags_the_tests_run() -> None:
    command = deployment.launch_command(deployment.COMFY_DIR)
    assert command[1].endswith("ComfyUI/main.py")
    assert command[command.index("--port") + 1] == str(_comfy_launch.PORT)
    assert tuple(command[6:10]) == _comfy_launch.SERVER_FLAGS
    assert command[command.index("--listen") + 1] == "0.0.0.0"


def test_model_files_match_the_backend_defaults() -> None:
    from fluxkit.comfy import DualClip, FluxModels

    files = {(folder, name) for _repo, name, folder in deployment.MODELS}
    models = FluxModels()
    assert isinstance(models.text_encoder, DualClip)
    for folder, name in [
        ("diffusion_models", models.unet),
        ("vae", models.vae),
        ("text_encoders", models.text_encoder.t5),
        ("text_encoders", models.text_encoder.clip_l),
        ("xlabs/ipadapters", models.ipadapter),
        ("clip_vision", models.clip_vision),
    ]:
        assert (folder, name) in files


def test_the_shipped_compat_node_is_the_one_tested() -> None:
    node = _comfy_launch.COMPAT_NODES / "fluxkit_xflux_compat" / "__init__.py"
    text = node.read_text()
    assert "attn_mask" in text and "IPProcessor" in text
