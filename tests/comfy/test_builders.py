"""Builders and the validator against the REAL ComfyUI server: same verdicts, every graph accepted."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from fluxkit.comfy import (
    FluxModels,
    Graph,
    ModelFileMissingError,
    ObjectInfo,
    WorkflowMapping,
    WorkflowValidationError,
    bind_workflow,
    check_graph,
    flux_img2img,
    flux_ipadapter,
    flux_txt2img,
    validate_graph,
)

# One worker runs every test of the real ComfyUI server (it starts once per process).
pytestmark = pytest.mark.xdist_group("comfyui")


@pytest.fixture(scope="module")
def info(comfy: Any) -> ObjectInfo:
    return ObjectInfo(comfy.get("/object_info")[1])


def _submit(comfy: Any, graph: Graph) -> tuple[int, Any]:
    prompt_id = str(uuid.uuid4())
    status, body = comfy.post("/prompt", {"prompt": graph.to_api(), "prompt_id": prompt_id})
    if status == 200:  # accepted: take it off the queue (or stop it) before it costs time
        comfy.post("/queue", {"delete": [prompt_id]})
        comfy.post("/interrupt", {"prompt_id": prompt_id})
    return status, body


def _builders() -> dict[str, Graph]:
    tiny = FluxModels.tiny()
    small = {"width": 64, "height": 64, "steps": 1, "models": tiny}
    return {
        "txt2img": flux_txt2img("a fox", **small).graph,
        "loras": flux_txt2img(
            "a fox",
            loras=[("tiny-lora-kohya.safetensors", 0.8), ("tiny-lora-diffusers.safetensors", 0.4)],
            **small,
        ).graph,
        "negative": flux_txt2img("a fox", negative_prompt="blurry", cfg=2.0, **small).graph,
        "img2img": flux_img2img("a fox", "example.png", strength=0.6, **small).graph,
        "ipadapter": flux_ipadapter("a face", "example.png", scale=0.7, **small).graph,
    }


def test_every_builder_graph_is_accepted_by_the_server(comfy: Any, info: ObjectInfo) -> None:
    comfy.upload_image((comfy_kit_example()), "example.png")
    for name, graph in _builders().items():
        assert validate_graph(graph, info, uploaded={"example.png"}) == [], name
        status, body = _submit(comfy, graph)
        assert status == 200, (name, body)
    comfy.wait_idle()


def comfy_kit_example() -> bytes:
    from tests.comfy.kit import KIT

    return (KIT / "workflows" / "example.png").read_bytes()


def _breakages() -> dict[str, Graph]:
    base = _builders()["txt2img"]
    cases: dict[str, Graph] = {}
    g = base.copy()
    g.set_input("8", "steps", 0)  # KSampler
    cases["min"] = g
    g = base.copy()
    del g.node("8")["inputs"]["cfg"]
    cases["missing"] = g
    g = base.copy()
    g.set_input("8", "model", ["3", 0])  # a VAE where a MODEL goes
    cases["type"] = g
    g = base.copy()
    g.set_input("8", "sampler_name", "no-such-sampler")
    cases["combo"] = g
    g = base.copy()
    g.set_input("1", "unet_name", "absent.safetensors")
    cases["file"] = g
    g = base.copy()
    g.add("NoSuchNode")
    cases["class"] = g
    g = base.copy()
    g.set_input("9", "samples", ["8", 5])  # an output slot KSampler does not have
    cases["slot"] = g
    return cases


@pytest.mark.parametrize("case", ["min", "missing", "type", "combo", "file", "class", "slot"])
def test_validator_gives_the_servers_verdict(comfy: Any, info: ObjectInfo, case: str) -> None:
    graph = _breakages()[case]
    ours = validate_graph(graph, info)
    status, body = _submit(comfy, graph)
    assert status == 400 and ours, (case, body)
    node_errors = body.get("node_errors") or {}
    if node_errors:
        theirs = {
            (node, e.get("extra_info", {}).get("input_name"), e["type"])
            for node, entry in node_errors.items()
            for e in entry["errors"]
        }
        mine = {(p.node, p.input, p.type) for p in ours}
        if case == "slot":  # the server blames the linked node; we name the consumer's input
            assert {p.type for p in ours} == {t for _n, _i, t in theirs}
        else:
            assert mine == theirs, case
    else:
        assert ours[0].type == body["error"]["type"]


def test_check_graph_names_the_missing_file_and_folder(info: ObjectInfo) -> None:
    graph = _breakages()["file"]
    with pytest.raises(ModelFileMissingError) as caught:
        check_graph(graph, info)
    assert caught.value.folder == "diffusion_models"
    assert "models/diffusion_models/" in str(caught.value)
    with pytest.raises(WorkflowValidationError) as other:
        check_graph(_breakages()["min"], info)
    assert other.value.problems[0].input == "steps"


def test_real_flux_graph_validates_with_placeholders(comfy: Any, comfykit: Any) -> None:
    graph = flux_txt2img("a fox", loras=[("my_lora.safetensors", 1.0)]).graph
    comfykit.write_placeholders(graph.to_api(), comfy.models_dir)
    fresh = ObjectInfo(comfy.get("/object_info")[1])
    assert validate_graph(graph, fresh) == []
    assert graph.node("2")["class_type"] == "DualCLIPLoader"
    assert graph.node("2")["inputs"]["type"] == "flux"


def test_detected_mapping_binds_the_kit_workflows(comfy: Any, info: ObjectInfo) -> None:
    from tests.comfy.kit import KIT

    masked = Graph.from_api(KIT / "workflows" / "tiny_flux_img2img_masked.json")
    mapping = WorkflowMapping.detect(masked)
    bound = bind_workflow(
        masked,
        mapping,
        {"prompt": "a cat", "seed": 5, "steps": 1, "loras": [("tiny-lora-kohya.safetensors", 1.0)]},
    )
    assert bound.node("4")["inputs"]["text"] == "a cat"
    assert validate_graph(bound, info, uploaded={"example.png"}) == []
    status, body = _submit(comfy, bound)
    assert status == 200, body
    comfy.wait_idle()
