from __future__ import annotations

import pytest

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
