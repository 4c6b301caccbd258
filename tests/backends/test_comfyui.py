"""The comfyui backend against the REAL ComfyUI 0.8.0 server (tiny FLUX models, CPU)."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

import fluxkit
from fluxkit.comfy import (
    ComfyExecutionError,
    FluxModels,
    ModelFileMissingError,
    WorkflowMapping,
    WorkflowRejectedError,
    XLabsIPAdapterIncompatibleError,
    flux_txt2img,
)
from tests.comfy import kit

# One worker runs every test of the real ComfyUI server (it starts once per process).
pytestmark = pytest.mark.xdist_group("comfyui")

EXAMPLE = kit.KIT / "workflows" / "example.png"


@pytest.fixture(scope="module")
def comfy() -> Any:
    return kit.server()


def generator(comfy: Any, **options: Any) -> fluxkit.Generator:
    options.setdefault("models", FluxModels.tiny())
    return fluxkit.Generator("comfyui", base_url=comfy.url, **options)


def lora_path(comfy: Any, name: str) -> str:
    return str(Path(comfy.models_dir) / "loras" / name)


def test_txt2img_with_two_loras_runs_with_steps(comfy: Any) -> None:
    events: list[Any] = []
    loras = [
        fluxkit.LoRA(lora_path(comfy, "tiny-lora-kohya.safetensors"), scale=0.8),
        fluxkit.LoRA(lora_path(comfy, "tiny-lora-diffusers.safetensors"), scale=0.5),
    ]
    with generator(comfy) as gen:
        result = gen.generate(
            "a red fox", size=(256, 256), steps=2, seed=11, loras=loras, on_event=events.append
        )
    image = result.images[0]
    assert (image.width, image.height, image.seed) == (256, 256, 11)
    steps = [e for e in events if isinstance(e, fluxkit.Step)]
    assert [(s.i, s.total) for s in steps] == [(1, 2), (2, 2)]
    assert any(isinstance(e, fluxkit.Started) for e in events)
    log = comfy.log_text()
    assert "lora key not loaded" not in log
    prompt_id = result.request_ids[0]
    nodes = comfy.get(f"/history/{prompt_id}")[1][prompt_id]["prompt"][2]
    chain = [n["inputs"] for n in nodes.values() if n["class_type"] == "LoraLoaderModelOnly"]
    assert [(c["lora_name"], c["strength_model"]) for c in chain] == [
        ("tiny-lora-kohya.safetensors", 0.8),
        ("tiny-lora-diffusers.safetensors", 0.5),
    ]


def test_img2img_uploads_once_and_runs(comfy: Any) -> None:
    with generator(comfy, websocket=False) as gen:
        first = gen.generate(
            "oil painting", size=(256, 256), steps=1, seed=3, image=EXAMPLE, strength=0.5
        )
        backend = gen._backend
        uploads = backend.upload_cache.uploads
        second = gen.generate(
            "oil painting", size=(256, 256), steps=1, seed=4, image=EXAMPLE, strength=0.5
        )
    assert first.images[0].width == 256 and second.images[0].seed == 4
    assert backend.upload_cache.uploads == uploads  # the second call reused the upload
    assert [p.name for p in Path(comfy.input_dir).iterdir() if p.name.startswith("fluxkit-")]


def test_missing_lora_is_caught_before_submit(comfy: Any) -> None:
    before = len(comfy.get("/history")[1])
    with generator(comfy) as gen:
        with pytest.raises(ModelFileMissingError) as caught:
            gen.generate(
                "x",
                size=(256, 256),
                steps=1,
                extra={"comfy_loras": [("nope-lora.safetensors", 0.7)]},
            )
    assert caught.value.filename == "nope-lora.safetensors"
    assert caught.value.folder == "loras"
    assert "models/loras/" in str(caught.value)
    assert len(comfy.get("/history")[1]) == before  # nothing was queued


def test_missing_model_file_names_its_folder(comfy: Any) -> None:
    with generator(comfy, models=FluxModels()) as gen:  # FLUX.1-dev names: not on this server
        with pytest.raises(ModelFileMissingError) as caught:
            gen.generate("x", size=(256, 256), steps=1)
    assert caught.value.folder in ("diffusion_models", "text_encoders", "vae")


def test_broken_graph_gets_the_servers_verdict_typed(comfy: Any) -> None:
    graph = flux_txt2img("x", models=FluxModels.tiny(), width=64, height=64, steps=1).graph
    graph.set_input("1", "weight_dtype", "fp64-nonsense")
    with generator(comfy, workflow=graph, check_models=False) as gen:
        with pytest.raises(WorkflowRejectedError) as caught:
            gen.generate("x", size=(256, 256), steps=1)
    problem = caught.value.problems[0]
    assert (problem.node, problem.input, problem.type) == ("1", "weight_dtype", "value_not_in_list")
    assert caught.value.status_code == 400


def test_user_workflow_with_mapping(comfy: Any) -> None:
    workflow = kit.KIT / "workflows" / "tiny_flux_txt2img.json"
    mapping = WorkflowMapping(
        prompt="4.text",
        seed="8.seed",
        steps="8.steps",
        width="6.width",
        height="6.height",
        output="9",
    )
    with generator(comfy, workflow=workflow, mapping=mapping) as gen:
        result = gen.generate("a blue bird", size=(256, 256), steps=1, seed=5)
    assert result.images[0].width == 256 and result.images[0].seed == 5


def _blocker(comfy: Any, steps: int = 60) -> str:
    wf = kit.kit().tiny_flux_workflow(steps=steps, width=256, height=256, seed=int(time.time()))
    prompt_id = str(uuid.uuid4())
    comfy.submit(wf, client_id="blocker", prompt_id=prompt_id)
    return prompt_id


def test_deadline_interrupts_the_running_prompt(comfy: Any) -> None:
    comfy.wait_idle()
    with generator(comfy, timeout=6) as gen:
        with pytest.raises(fluxkit.DeadlineExceeded) as caught:
            gen.generate("slow", size=(256, 256), steps=100, seed=99)
    assert caught.value.cancelled
    prompt_id = caught.value.request_id
    entry = comfy.wait(prompt_id, timeout=60)
    kinds = [m[0] for m in entry["status"]["messages"]]
    assert "execution_interrupted" in kinds


def test_cancel_deletes_a_queued_prompt(comfy: Any) -> None:
    comfy.wait_idle()
    blocker = _blocker(comfy)
    try:
        cancel = threading.Event()
        seen: list[str] = []

        def on_event(event: Any) -> None:
            if isinstance(event, fluxkit.Queued) and event.request_id:
                seen.append(event.request_id)
                cancel.set()

        with generator(comfy, timeout=20) as gen:
            with pytest.raises(fluxkit.DeadlineExceeded) as caught:
                gen.generate(
                    "queued", size=(256, 256), steps=1, seed=1, on_event=on_event, timeout=3
                )
        prompt_id = caught.value.request_id
        assert caught.value.cancelled and prompt_id in seen
        queue = comfy.get("/queue")[1]
        assert prompt_id not in [item[1] for item in queue["queue_pending"]]
    finally:
        comfy.interrupt(blocker)
    comfy.wait(blocker, timeout=60)
    assert comfy.get(f"/history/{prompt_id}")[1] == {}  # deleted prompts never run


def test_websocket_drop_mid_run_falls_back_to_history(comfy: Any) -> None:
    comfy.wait_idle()
    events: list[Any] = []
    with generator(comfy) as gen:
        backend = gen._backend

        def on_event(event: Any) -> None:
            events.append(event)
            if isinstance(event, fluxkit.Step) and event.i == 1:
                backend.events.kill_connection()

        result = gen.generate("drop", size=(256, 256), steps=3, seed=8, on_event=on_event)
    assert result.images[0].seed == 8
    assert backend.events.drops >= 1


def test_ipadapter_fails_on_stock_server_with_the_cause_and_fix(comfy: Any) -> None:
    with generator(comfy) as gen:
        with pytest.raises(XLabsIPAdapterIncompatibleError) as caught:
            gen.generate(
                "a face",
                size=(256, 256),
                steps=1,
                seed=2,
                reference_image=EXAMPLE,
                reference_strength=0.7,
            )
    error = caught.value
    assert isinstance(error, ComfyExecutionError) and error.node_type == "KSampler"
    assert "attn_mask" in str(error) and "compatibility patch" in str(error)
    # XLabs patched the cached model in place: drop it so later graphs load a clean one
    comfy.post("/free", {"unload_models": True, "free_memory": True})


def test_ipadapter_runs_with_the_shipped_compat_node() -> None:
    compat = kit.server(compat=True)
    with generator(compat) as gen:
        result = gen.generate(
            "a face",
            size=(256, 256),
            steps=1,
            seed=2,
            reference_image=EXAMPLE,
            reference_strength=0.7,
        )
    assert result.images[0].width == 256
    assert "fluxkit_xflux_compat: patched" in compat.log_text()
