"""The ComfyUI emulator: HTTP + websocket, the same validator, and the faults it scripts."""

from __future__ import annotations

from typing import Any

import pytest

import fluxkit
from fluxkit.comfy import (
    FLUX_IPADAPTER_FACEID,
    FluxModels,
    ModelFileMissingError,
    XLabsIPAdapterIncompatibleError,
)
from fluxkit.testing import ComfyUIEmulator
from fluxkit.testing._emulator import EmuResponse, route
from tests.comfy.kit import KIT

FACE = (KIT / "workflows" / "example.png").read_bytes() if (KIT / "workflows").is_dir() else None


def _face() -> bytes:
    if FACE is not None:
        return FACE
    import io

    from fluxkit.testing import render_fake_image

    buffer = io.BytesIO()
    render_fake_image("face", 1, 64, 64).save(buffer, format="PNG")
    return buffer.getvalue()


def test_in_process_generate_and_upload_cache_hits() -> None:
    emu = ComfyUIEmulator()
    with emu.generator() as gen:
        for seed in range(3):
            result = gen.generate("a fox", size=(256, 256), steps=2, seed=seed, image=_face())
            assert result.images[0].seed == seed
    assert emu.uploads == 1


def test_websocket_steps_over_loopback_and_drop_mid_run() -> None:
    emu = ComfyUIEmulator()
    emu.script.run_seconds = 0.6
    emu.script.steps = 4
    emu.ws_drop_at_step = 2
    events: list[Any] = []
    with emu.serve() as url:
        with fluxkit.Generator("comfyui", base_url=url, models=FluxModels.tiny()) as gen:
            result = gen.generate("x", size=(256, 256), steps=4, seed=3, on_event=events.append)
            backend = gen._backend
    assert result.images[0].seed == 3
    assert [e.i for e in events if isinstance(e, fluxkit.Step)][:2] == [1, 2]
    assert backend.events.drops == 1  # the socket died; /history polling finished the job
    assert emu.requests("/ws")


def test_modal_headers_reach_http_and_websocket() -> None:
    emu = ComfyUIEmulator()
    env = {"MODAL_KEY": "wk-1", "MODAL_SECRET": "ws-2"}
    with emu.serve() as url:
        with fluxkit.Generator(
            "comfyui", base_url=url, models=FluxModels.tiny(), environ=env
        ) as gen:
            gen.generate("x", size=(256, 256), steps=1)
            assert "wk-1" not in repr(gen._backend)
    for request in emu.requests("/prompt|/ws|/history"):
        assert request.header("modal-key") == "wk-1" and request.header("modal-secret") == "ws-2"


def test_slow_queue_5xx_and_missing_model() -> None:
    emu = ComfyUIEmulator()
    emu.script.queue_seconds = 0.3
    emu.script.fail_next(503, path="/prompt")  # refused before acceptance: resent
    events: list[Any] = []
    with emu.generator() as gen:
        gen.generate("x", size=(256, 256), steps=1, on_event=events.append)
        assert any(isinstance(e, fluxkit.Retrying) for e in events)
        assert len(emu.requests("/prompt", "POST")) == 2
        with pytest.raises(ModelFileMissingError):
            gen.generate(
                "x", size=(256, 256), steps=1, extra={"comfy_loras": ["absent.safetensors"]}
            )
        emu.add_model("loras", "absent.safetensors")
        gen.generate("x", size=(256, 256), steps=1, extra={"comfy_loras": ["absent.safetensors"]})


def test_stock_xlabs_error_is_typed() -> None:
    emu = ComfyUIEmulator(stock_xlabs=True)
    with emu.generator() as gen:
        with pytest.raises(XLabsIPAdapterIncompatibleError, match="compatibility patch"):
            gen.generate("x", size=(256, 256), steps=1, reference_image=_face())


def test_deadline_deletes_a_queued_prompt() -> None:
    emu = ComfyUIEmulator()
    emu.script.queue_seconds = 30
    with emu.generator(timeout=0.5) as gen:
        with pytest.raises(fluxkit.DeadlineExceeded) as caught:
            gen.generate("x", size=(256, 256), steps=1)
    deletes = emu.requests("/queue", "POST")
    assert caught.value.cancelled and deletes
    assert deletes[-1].json() == {"delete": [caught.value.request_id]}
    assert caught.value.request_id not in emu.jobs


def test_deadline_interrupts_a_running_prompt() -> None:
    emu = ComfyUIEmulator()
    emu.script.run_seconds = 30
    with emu.serve() as url:
        with fluxkit.Generator("comfyui", base_url=url, models=FluxModels.tiny(), timeout=1) as gen:
            with pytest.raises(fluxkit.DeadlineExceeded) as caught:
                gen.generate("x", size=(256, 256), steps=3)
    interrupts = emu.requests("/interrupt", "POST")
    assert interrupts and interrupts[-1].json() == {"prompt_id": caught.value.request_id}
    assert "execution_interrupted" in str(emu.history[caught.value.request_id]["status"])


def test_oneshot_faceid_endpoint_through_the_mapping() -> None:
    import base64

    emu = ComfyUIEmulator()
    png = _face()

    @route("POST", r"/flux-ipadapter-faceid")
    def faceid(request: Any) -> EmuResponse:
        body = request.json()
        assert body["reference_image"].startswith("data:image/png;base64,")
        assert body["ipadapter_strength"] == 0.6 and body["cfg"] == 3.5 and body["seed"] == 9
        return EmuResponse(json={"image": base64.b64encode(png).decode()})

    emu._routes.append(("POST", faceid._emulator_route[1], faceid))  # type: ignore[attr-defined]
    with emu.generator(endpoint=FLUX_IPADAPTER_FACEID) as gen:
        result = gen.generate(
            "x",
            size=(256, 256),
            steps=20,
            guidance=3.5,
            seed=9,
            reference_image=png,
            reference_strength=0.6,
        )
    assert result.images[0].seed == 9
