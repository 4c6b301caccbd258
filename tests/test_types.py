from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

import fluxkit
from fluxkit import GenerationRequest, InvalidRequestError, LoRA


def png_bytes(size: tuple[int, int] = (32, 32)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (10, 200, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("preset", "size"),
    [
        ("square_hd", (1024, 1024)),
        ("square", (512, 512)),
        ("portrait_4_3", (768, 1024)),
        ("portrait_16_9", (576, 1024)),
        ("landscape_4_3", (1024, 768)),
        ("landscape_16_9", (1024, 576)),
    ],
)
def test_size_presets_resolve_to_pixels(preset: str, size: tuple[int, int]) -> None:
    assert GenerationRequest(prompt="x", size=preset).size == size


def test_explicit_size_tuple_and_width_height_agree() -> None:
    assert GenerationRequest(prompt="x", size=(768, 512)).size == (768, 512)
    assert GenerationRequest(prompt="x", width=768, height=512).size == (768, 512)


def test_diffusers_aliases_are_accepted() -> None:
    request = GenerationRequest(prompt="x", num_inference_steps=12, guidance_scale=2.5)
    assert (request.steps, request.guidance) == (12, 2.5)


def test_request_is_immutable() -> None:
    request = GenerationRequest(prompt="x")
    with pytest.raises(Exception):  # noqa: B017 - pydantic's frozen error type is internal
        request.steps = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("field", "value", "allowed"),
    [
        ("steps", 0, "1 to 100"),
        ("steps", 101, "1 to 100"),
        ("guidance", 25.0, "0 to 20"),
        ("seed", 2**32, "4294967295"),
        ("seed", -1, "0 to"),
        ("n", 17, "1 to 16"),
        ("width", 1000, "multiple of 16"),
        ("height", 128, "256 to 2048"),
        ("output_format", "gif", "png"),
        ("prompt", "   ", "non-empty"),
    ],
)
def test_invalid_fields_name_field_value_and_range(field: str, value: object, allowed: str) -> None:
    params = {"prompt": "x", field: value}
    with pytest.raises(InvalidRequestError) as info:
        GenerationRequest(**params)
    error = info.value
    assert isinstance(error, ValueError)
    assert error.field == field
    assert error.value == value
    assert allowed in str(error)


def test_unknown_argument_points_to_extra() -> None:
    with pytest.raises(InvalidRequestError, match="extra="):
        GenerationRequest(prompt="x", sampler="euler")


def test_strength_without_image_is_refused() -> None:
    with pytest.raises(InvalidRequestError, match="needs image"):
        GenerationRequest(prompt="x", strength=0.5)


def test_size_and_width_together_are_refused() -> None:
    with pytest.raises(InvalidRequestError, match="both given"):
        GenerationRequest(prompt="x", size="square", width=512)


request_fields = st.fixed_dictionaries(
    {},
    optional={
        "steps": st.one_of(st.integers(), st.floats(), st.booleans(), st.text(max_size=3)),
        "guidance": st.one_of(st.floats(allow_nan=True), st.integers(-100, 100)),
        "seed": st.one_of(st.integers(), st.none()),
        "n": st.integers(-5, 40),
        "width": st.integers(-10, 5000),
        "height": st.integers(-10, 5000),
        "strength": st.floats(-2, 2),
        "output_format": st.text(max_size=5),
        "size": st.one_of(
            st.text(max_size=12), st.tuples(st.integers(0, 4096), st.integers(0, 4096))
        ),
    },
)


@settings(max_examples=300, deadline=None)
@given(fields=request_fields)
def test_any_invalid_input_raises_a_typed_value_error(fields: dict[str, object]) -> None:
    try:
        request = GenerationRequest(prompt="a fox", **fields)
    except InvalidRequestError as error:
        assert isinstance(error, ValueError)
        assert error.field
        assert "allowed" in str(error)
    else:
        assert 256 <= request.width <= 2048 and request.width % 16 == 0
        assert 1 <= request.n <= 16


@settings(max_examples=100, deadline=None)
@given(fields=request_fields)
def test_invalid_input_never_reaches_the_network(fields: dict[str, object]) -> None:
    from fluxkit.testing import FakeProviderEmulator

    emulator = FakeProviderEmulator()
    generator = emulator.generator()
    try:
        generator.generate("a fox", size="square", steps=1, **fields)  # type: ignore[arg-type]
    except InvalidRequestError:
        assert emulator.log == []
    except TypeError:
        pass  # duplicate keyword (size given twice): refused by Python itself, before any call
    finally:
        generator.close()


class TestLoRA:
    def test_hub_file_reference_resolves_to_download_url(self) -> None:
        lora = LoRA("hf://me/tok-lora/lora.safetensors@v2", scale=0.8)
        assert (lora.kind, lora.repo_id, lora.filename, lora.revision) == (
            "hf",
            "me/tok-lora",
            "lora.safetensors",
            "v2",
        )
        assert lora.url == "https://huggingface.co/me/tok-lora/resolve/v2/lora.safetensors"

    def test_bare_repo_has_no_file_url(self) -> None:
        lora = LoRA("hf://me/tok-lora")
        assert lora.filename is None and lora.url is None

    def test_owner_slash_repo_is_read_as_hub_reference(self) -> None:
        assert LoRA("me/tok-lora").source == "hf://me/tok-lora"

    def test_local_path_is_expanded(self, tmp_path: Path) -> None:
        path = tmp_path / "style.safetensors"
        path.write_bytes(b"x")
        lora = LoRA(path)
        assert lora.kind == "path" and lora.filename == "style.safetensors"

    @pytest.mark.parametrize(
        "source", ["a.bin", "https://x.org/model.ckpt", "hf://a/b/c.pt", "w.pth"]
    )
    def test_pickle_formats_are_refused(self, source: str) -> None:
        with pytest.raises(InvalidRequestError, match="pickle"):
            LoRA(source)

    @pytest.mark.parametrize(
        "source", ["http://insecure.org/a.safetensors", "s3://b/k", "hf://only", ""]
    )
    def test_bad_sources_are_refused(self, source: str) -> None:
        with pytest.raises(InvalidRequestError) as info:
            LoRA(source)
        assert info.value.field == "lora.source"

    def test_scale_range(self) -> None:
        with pytest.raises(InvalidRequestError, match="scale"):
            LoRA("hf://a/b", scale=9)

    def test_request_accepts_strings_tuples_and_dicts(self) -> None:
        request = GenerationRequest(
            prompt="x", loras=["hf://a/b", ("hf://c/d", 0.5), {"source": "hf://e/f", "scale": 0.2}]
        )
        assert [lora.scale for lora in request.loras] == [1.0, 0.5, 0.2]


class TestInputImages:
    def test_path_bytes_pil_numpy_and_url_are_accepted(self, tmp_path: Path) -> None:
        data = png_bytes()
        path = tmp_path / "init.png"
        path.write_bytes(data)
        sources = [
            path,
            str(path),
            data,
            Image.open(io.BytesIO(data)),
            np.zeros((32, 32, 3), np.uint8),
        ]
        for source in sources:
            request = GenerationRequest(prompt="x", image=source, strength=0.5)
            assert request.image is not None and request.image.data is not None
            assert request.image.to_pil().size == (32, 32)
        remote = GenerationRequest(prompt="x", image="https://example.org/a.png")
        assert remote.image is not None and remote.image.url == "https://example.org/a.png"

    def test_same_bytes_have_same_hash(self) -> None:
        a = fluxkit.InputImage.from_any(png_bytes())
        b = fluxkit.InputImage.from_any(png_bytes())
        assert a.sha256 == b.sha256 and a == b

    def test_missing_file_and_garbage_are_refused(self, tmp_path: Path) -> None:
        with pytest.raises(InvalidRequestError, match="no such file"):
            GenerationRequest(prompt="x", image=tmp_path / "missing.png")
        with pytest.raises(InvalidRequestError, match="not a readable image"):
            GenerationRequest(prompt="x", reference_image=b"garbage")

    def test_repr_never_dumps_bytes(self) -> None:
        assert "bytes" in repr(fluxkit.InputImage.from_any(png_bytes()))
        assert len(repr(fluxkit.InputImage.from_any(png_bytes((512, 512))))) < 120


class TestHostileLoRAInput:
    @pytest.mark.parametrize("source", ["./missing.safetensors", "loras/tok.safetensors"])
    def test_relative_paths_stay_paths_rather_than_becoming_hub_references(
        self, source: str
    ) -> None:
        lora = fluxkit.LoRA(source)
        assert lora.kind == "path" and not lora.source.startswith("hf://")

    def test_unknown_user_home_is_a_typed_error(self) -> None:
        with pytest.raises(fluxkit.InvalidRequestError) as caught:
            fluxkit.LoRA("~nosuchuser/x.safetensors")
        assert caught.value.field == "lora.source"

    @pytest.mark.parametrize(
        "weight_name", ["../../etc/passwd.safetensors", "/a.safetensors", "x.bin"]
    )
    def test_weight_name_stays_inside_the_repo(self, weight_name: str) -> None:
        with pytest.raises(fluxkit.InvalidRequestError, match="weight_name"):
            fluxkit.LoRA("hf://me/tok", weight_name=weight_name)

    @pytest.mark.parametrize("scale", [float("inf"), float("nan"), True])
    def test_scale_must_be_a_finite_number(self, scale: float) -> None:
        with pytest.raises(fluxkit.InvalidRequestError, match="scale"):
            fluxkit.LoRA("hf://me/tok", scale=scale)

    def test_a_single_trigger_word_is_not_split_into_letters(self) -> None:
        assert fluxkit.LoRA("hf://me/tok", trigger_words="tok").trigger_words == ("tok",)

    @pytest.mark.parametrize("loras", [5, 1.5, b"hf://me/tok", [{"source": "hf://a/b", "x": 1}]])
    def test_loras_of_the_wrong_shape_are_typed_errors(self, loras: object) -> None:
        with pytest.raises(fluxkit.InvalidRequestError) as caught:
            fluxkit.GenerationRequest(prompt="x", loras=loras)
        assert caught.value.field.startswith("loras")


@pytest.mark.parametrize(
    "extra", [{"callback": object()}, {"x": float("nan")}, {"x": b"bytes"}, {"x": {1, 2}}]
)
def test_extra_must_be_json_when_the_request_is_built(extra: dict[str, object]) -> None:
    with pytest.raises(fluxkit.InvalidRequestError) as caught:
        fluxkit.GenerationRequest(prompt="x", extra=extra)
    assert caught.value.field == "extra"


def _png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, format="PNG")
    return buffer.getvalue()


_PNG_BYTES = _png_bytes()


@pytest.mark.parametrize("field", ["guidance", "strength", "reference_strength"])
def test_infinite_floats_are_refused(field: str) -> None:
    extra = {"image": _PNG_BYTES, "reference_image": _PNG_BYTES}
    with pytest.raises(fluxkit.InvalidRequestError) as caught:
        fluxkit.GenerationRequest(prompt="x", **{field: float("inf")}, **extra)
    assert caught.value.field == field
