from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

import fluxkit
from fluxkit._capabilities import Capabilities, check_request, coerce_size

FIXED = Capabilities(steps=False, guidance=False, default_guidance=None)


def test_fixed_step_models_drop_steps_and_guidance_with_warnings_in_coerce_mode() -> None:
    request = fluxkit.GenerationRequest(prompt="x", steps=30, guidance=4.0)
    resolved, warnings = check_request(request, FIXED, backend="b", model="pro", mode="coerce")
    assert (resolved.steps, resolved.guidance) == (None, None)
    assert {w.field for w in warnings} == {"steps", "guidance"}


@pytest.mark.parametrize("field", ["steps", "guidance"])
def test_strict_mode_refuses_a_parameter_the_model_would_drop(field: str) -> None:
    request = fluxkit.GenerationRequest(prompt="x", **{field: 4})
    with pytest.raises(fluxkit.UnsupportedFeatureError) as info:
        check_request(request, FIXED, backend="b", model="pro", mode="strict")
    assert info.value.field == field and info.value.value == 4


def test_defaults_fill_only_what_the_model_uses() -> None:
    resolved, warnings = check_request(
        fluxkit.GenerationRequest(prompt="x"), FIXED, backend="b", model="pro", mode="strict"
    )
    assert (resolved.steps, resolved.guidance, warnings) == (None, None, [])


@pytest.mark.parametrize(
    ("size", "expected"),
    [((1000, 1000), (1008, 1008)), ((100, 5000), (256, 2048)), ((1024, 768), (1024, 768))],
)
def test_coerce_size_rounds_to_the_grid_and_clamps(
    size: tuple[int, int], expected: tuple[int, int]
) -> None:
    assert coerce_size(*size, Capabilities()) == expected


def test_unsupported_feature_names_where_it_would_work() -> None:
    caps = Capabilities(max_loras=0)
    request = fluxkit.GenerationRequest(prompt="x", loras=["hf://a/b/c.safetensors"])
    with pytest.raises(fluxkit.UnsupportedFeatureError) as info:
        check_request(request, caps, backend="together", model="m", mode="strict")
    supported = info.value.supported_by
    assert supported and all(not name.startswith("fake") for name in supported)
    assert any(name.startswith("fal") for name in supported)


def test_local_backends_refuse_api_key_and_base_url() -> None:
    pytest.importorskip("diffusers")
    with pytest.raises(fluxkit.InvalidRequestError, match="base_url"):
        fluxkit.Generator("diffusers", base_url="http://x")


def test_lora_scale_range_is_checked_per_backend_before_the_call() -> None:
    from fluxkit._planning import plan_generation
    from fluxkit.backends.fal import FalBackend
    from fluxkit.backends.replicate import ReplicateBackend

    loras = [fluxkit.LoRA("hf://me/tok/lora.safetensors", scale=3.5)]
    replicate = ReplicateBackend(api_key="k")
    with pytest.raises(fluxkit.InvalidRequestError) as caught:
        plan_generation(replicate, "x", {"loras": loras}, "strict")
    assert caught.value.field == "loras[0].scale" and "-1 to 3" in caught.value.allowed

    plan = plan_generation(replicate, "x", {"loras": loras}, "coerce")
    assert plan.request.loras[0].scale == 3.0
    assert [w.field for w in plan.warnings] == ["loras[0].scale"]

    negative = [fluxkit.LoRA("hf://me/tok/lora.safetensors", scale=-0.5)]
    with pytest.raises(fluxkit.InvalidRequestError, match="0 to 4"):
        plan_generation(FalBackend(api_key="k"), "x", {"loras": negative}, "strict")


def test_missing_local_lora_file_fails_before_the_call(tmp_path: Path) -> None:
    request = fluxkit.GenerationRequest(prompt="x", loras=["./missing.safetensors"])
    caps = Capabilities(max_loras=2, local_loras=True)
    with pytest.raises(fluxkit.InvalidRequestError, match="no such file") as caught:
        check_request(request, caps, backend="diffusers", model="m", mode="coerce")
    assert caught.value.field == "loras[0].source"

    present = tmp_path / "tok.safetensors"
    present.write_bytes(b"{}")
    ok = fluxkit.GenerationRequest(prompt="x", loras=[present])
    check_request(ok, caps, backend="diffusers", model="m", mode="strict")


@pytest.mark.parametrize("field", ["strength", "reference_strength"])
def test_unhonoured_strengths_are_refused_or_dropped(field: str) -> None:
    png = io.BytesIO()
    Image.new("RGB", (8, 8)).save(png, format="PNG")
    image_field = "image" if field == "strength" else "reference_image"
    request = fluxkit.GenerationRequest(prompt="x", **{image_field: png.getvalue(), field: 0.5})
    caps = Capabilities(img2img=True, reference_image=True, **{field: False})
    with pytest.raises(fluxkit.UnsupportedFeatureError):
        check_request(request, caps, backend="b", model="m", mode="strict")
    resolved, warnings = check_request(request, caps, backend="b", model="m", mode="coerce")
    assert getattr(resolved, field) is None and [w.field for w in warnings] == [field]


def test_coerce_params_leaves_non_finite_sizes_to_validation() -> None:
    from fluxkit._capabilities import coerce_params

    params, warnings = coerce_params({"size": (float("inf"), float("nan"))})
    assert warnings == [] and params["width"] == float("inf")
