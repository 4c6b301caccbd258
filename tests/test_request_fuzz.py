"""Every invalid request fails typed, before any network call.

Hypothesis builds requests through the public API (``GenerationRequest(...)``) and through
planning (``plan_generation``: build, resolve the model, check capabilities, split calls) for
every hosted backend in both validation modes, then builds each call's provider payload, which
is the last step before bytes are sent. Values span every field and include garbage types,
non-finite numbers, hostile paths and broken images. The only acceptable outcomes are success
or an :class:`InvalidRequestError` (``UnsupportedFeatureError`` is one); anything else
(``TypeError``, ``OSError``, ``OverflowError``, ...) is a crash a user would meet.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import fluxkit
from fluxkit._capabilities import ValidateMode
from fluxkit._planning import plan_generation
from fluxkit.backends._base import HttpBackend
from fluxkit.backends._fal._payload import fal_input
from fluxkit.backends._replicate._inputs import build_input
from fluxkit.backends.fake import FakeBackend
from fluxkit.backends.fal import FalBackend
from fluxkit.backends.replicate import ReplicateBackend
from fluxkit.backends.together import TogetherBackend

EXAMPLES_TOTAL = 6_400
"""Examples over the whole module (the issue asks for at least 6000)."""
_PLAN_CASES = 8  # 4 backends x 2 modes
_CONSTRUCTION_EXAMPLES = 1_600
_PLAN_EXAMPLES = (EXAMPLES_TOTAL - _CONSTRUCTION_EXAMPLES) // _PLAN_CASES


def _encoded(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


_PNG = _encoded(Image.new("RGB", (16, 16), "red"), "PNG")
_JPEG = _encoded(Image.new("RGB", (64, 64), "blue"), "JPEG")
_BROKEN_IMAGES = [
    _JPEG[: len(_JPEG) // 2],  # truncated
    b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 2,  # garbage after the signature
    b"\xff\xd8\xff" + b"\0" * 64,  # a "JPEG" that is only magic bytes
    b"RIFF\0\0\0\0WEBPVP8 ",
    b"",
    b"not an image at all",
]
_ODD_MODES = ["CMYK", "F", "I", "I;16", "LA", "P", "1", "YCbCr", "RGBX", "La", "PA", "LAB"]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Paths a user might pass: a real image, a sparse 512 MB "JPEG", a directory, a LoRA."""
    root = tmp_path_factory.mktemp("fuzz")
    (root / "ok.png").write_bytes(_PNG)
    with (root / "huge.jpg").open("wb") as handle:
        handle.write(b"\xff\xd8\xff")
        handle.truncate(512 * 1024 * 1024)  # sparse: costs no disk, must cost no memory
    (root / "truncated.jpg").write_bytes(_BROKEN_IMAGES[0])
    (root / "lora.safetensors").write_bytes(b"\x08\0\0\0\0\0\0\0{}      ")
    return {
        "image": str(root / "ok.png"),
        "huge": str(root / "huge.jpg"),
        "truncated": str(root / "truncated.jpg"),
        "dir": str(root),
        "lora": str(root / "lora.safetensors"),
    }


_HOSTILE_PATHS = [
    "~nosuchuser/image.png",
    "~nosuchuser/",
    "a" * 256 + ".png",
    "dir/" + "b" * 300 + "/x.png",
    "./missing.png",
    "x\0y.png",
    "",
    " ",
    "/",
    "/dev/null",
]

garbage: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.binary(max_size=12),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
    st.tuples(st.integers(), st.integers(), st.integers()),
    st.builds(object),
    st.just(b"x" * 3),
    st.just(object),
)
numbers = st.one_of(
    st.integers(min_value=-5, max_value=200),
    st.floats(min_value=-5, max_value=200),
    st.sampled_from([math.inf, -math.inf, math.nan, 2**64, -(2**64), 1e308]),
)
sides = st.one_of(
    st.integers(min_value=-16, max_value=4200),
    st.sampled_from([256, 512, 1000, 1024, 1920, 2048, 1440]),
    st.floats(allow_nan=True, allow_infinity=True),
)


def _lora_sources(files: dict[str, str]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.sampled_from(
            [
                "hf://me/tok/lora.safetensors",
                "hf://me/tok",
                "hf://me/tok@v2",
                "hf://me/tok/a.safetensors@v2",
                "hf://bad",
                "me/tok",
                "./missing.safetensors",
                "loras/missing.safetensors",
                "~nosuchuser/x.safetensors",
                "~nosuchuser/",
                "c" * 256 + ".safetensors",
                "d/" + "e" * 300,
                "https://example.com/w.safetensors",
                "http://example.com/w.safetensors",
                "data:application/octet-stream;base64,AAAA",
                "x.ckpt",
                "model.bin",
                "ftp://x/y",
                "",
                "\n",
                "a\0b",
                files["lora"],
                files["dir"],
            ]
        ),
        st.text(max_size=20),
    )


def _plausible_loras(files: dict[str, str]) -> st.SearchStrategy[Any]:
    source = st.sampled_from(
        [
            "hf://me/tok/lora.safetensors",
            "hf://me/tok",
            "hf://me/tok/a.safetensors@v2",
            "https://example.com/w.safetensors",
            files["lora"],
        ]
    )
    item = st.one_of(source, st.tuples(source, st.floats(min_value=-2, max_value=5)))
    return st.one_of(st.none(), st.lists(item, max_size=3))


def _loras(files: dict[str, str]) -> st.SearchStrategy[Any]:
    source = _lora_sources(files)
    scale = st.one_of(numbers, garbage)
    item = st.one_of(
        source,
        st.tuples(source, scale),
        st.tuples(source),
        st.fixed_dictionaries({"source": source}, optional={"scale": scale, "bogus": garbage}),
        st.dictionaries(st.text(max_size=8), garbage, max_size=3),
        st.builds(
            lambda s, k, w, t: _lora_or_error(s, k, w, t),
            source,
            scale,
            st.one_of(st.none(), st.sampled_from(["w.safetensors", "../x.safetensors", "/a"])),
            st.one_of(st.just(()), st.lists(st.text(max_size=5), max_size=2), garbage),
        ),
        garbage,
    )
    return st.one_of(st.none(), item, st.lists(item, max_size=4), garbage)


def _lora_or_error(source: Any, scale: Any, weight_name: Any, trigger_words: Any) -> Any:
    """A LoRA when the parts are valid; otherwise the raw source (LoRA() is fuzzed too)."""
    try:
        return fluxkit.LoRA(
            source, scale=scale, weight_name=weight_name, trigger_words=trigger_words
        )
    except fluxkit.InvalidRequestError:
        return source


def _plausible_images(files: dict[str, str]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.none(),
        st.sampled_from([_PNG, _JPEG, files["image"], "https://example.com/face.png"]),
        st.sampled_from(_ODD_MODES).map(lambda mode: Image.new(mode, (8, 8))),
        st.just(np.zeros((8, 8, 3), np.uint8)),
    )


def _images(files: dict[str, str]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.sampled_from(_BROKEN_IMAGES),
        st.sampled_from(
            [
                np.zeros((8, 8), np.float32),
                np.full((4, 4), np.nan, np.float64),
                np.zeros((0, 3, 3), np.uint8),
                np.zeros((4, 4, 2), np.uint8),
                np.zeros((2, 2, 2, 2), np.uint8),
                np.array(["a", "b"]),
                np.zeros((3, 3), bool),
            ]
        ),
        st.sampled_from(
            [
                files["image"],
                files["huge"],
                files["truncated"],
                files["dir"],
                Path(files["image"]),
                "https://example.com/face.png",
                "https://",
                "http://exa mple.com/x.png",
                "data:image/png;base64,!!!",
                "data:,",
                "data:image/png;base64," + "A" * 12,
                *_HOSTILE_PATHS,
            ]
        ),
        garbage,
    )


def _extra() -> st.SearchStrategy[Any]:
    json_value = st.recursive(
        st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=5)),
        lambda children: (
            st.lists(children, max_size=3)
            | st.dictionaries(st.text(max_size=4), children, max_size=3)
        ),
        max_leaves=6,
    )
    return st.one_of(
        st.dictionaries(st.text(max_size=8), json_value, max_size=3),
        st.dictionaries(st.text(max_size=8), garbage, max_size=2),
        st.dictionaries(st.integers(), st.integers(), max_size=2),
        garbage,
    )


_MODELS = [
    None,
    "flux-dev",
    "flux-schnell",
    "flux-pro",
    "flux-lora",
    "flux-pro-ultra",
    "flux-dev-lora",
    "flux-2-dev",
    "flux-2-pro",
    "flux-kontext-pro",
    "fal-ai/flux/dev/image-to-image",
    "black-forest-labs/flux-dev-lora",
    "owner/model:" + "0" * 64,
    "",
]


def _params(files: dict[str, str]) -> st.SearchStrategy[dict[str, Any]]:
    """Keyword arguments of generate(): mostly plausible fields, plus at most one hostile one.

    A request with garbage in several fields stops at the first; keeping the others plausible
    lets most examples reach the capability checks and the payload builders.
    """
    plausible: dict[str, st.SearchStrategy[Any]] = {
        "size": st.one_of(
            st.sampled_from(["square_hd", "portrait_4_3", "landscape_16_9"]),
            st.tuples(sides, sides),
        ),
        "steps": numbers,
        "guidance": numbers,
        "seed": st.one_of(st.none(), st.integers(min_value=-1, max_value=2**33)),
        "n": st.integers(min_value=0, max_value=6),
        "loras": _plausible_loras(files),
        "image": _plausible_images(files),
        "strength": numbers,
        "reference_image": _plausible_images(files),
        "reference_strength": numbers,
        "output_format": st.sampled_from(["png", "jpeg", "webp"]),
        "model": st.sampled_from(_MODELS),
        "extra": _extra(),
    }
    hostile: dict[str, st.SearchStrategy[Any]] = {
        "prompt": st.one_of(st.text(max_size=3), garbage),
        "loras": _loras(files),
        "image": _images(files),
        "reference_image": _images(files),
        "size": st.one_of(st.just("nope"), st.lists(sides, max_size=3), garbage),
        "width": st.one_of(sides, garbage),
        "height": st.one_of(sides, garbage),
        "num_inference_steps": st.one_of(numbers, garbage),
        "guidance_scale": st.one_of(numbers, garbage),
        "steps": garbage,
        "guidance": garbage,
        "seed": st.one_of(numbers, garbage),
        "n": st.one_of(numbers, garbage),
        "strength": garbage,
        "reference_strength": garbage,
        "output_format": st.one_of(st.just("gif"), garbage),
        "model": st.one_of(st.text(max_size=10), garbage),
        "bogus_field": garbage,
    }
    one_hostile = st.sampled_from(sorted(hostile)).flatmap(
        lambda name: hostile[name].map(lambda value: {name: value})
    )
    return st.builds(
        lambda base, extra: {**base, **extra},
        st.fixed_dictionaries({}, optional=plausible),
        st.one_of(st.just({}), one_hostile),
    )


prompts = st.one_of(st.just("a fox"), st.text(min_size=1, max_size=30).filter(str.strip))


def _backends() -> Iterator[HttpBackend]:
    yield FakeBackend()
    yield FalBackend(api_key="dummy")
    yield TogetherBackend(api_key="dummy")
    yield ReplicateBackend(api_key="dummy")


_BACKENDS = {backend.name: backend for backend in _backends()}


def _build_payloads(backend: HttpBackend, plan: Any) -> None:
    """What each backend sends for each call: the last step before the network."""
    for call in plan.calls:
        image = "https://example.com/i.png" if call.request.image is not None else None
        reference = "https://example.com/r.png" if call.request.reference_image else None
        if isinstance(backend, FalBackend):
            fal_input(call, image_url=image, reference_url=reference)
        elif isinstance(backend, TogetherBackend):
            backend.payload(call, image_url=image, reference_url=reference)
        elif isinstance(backend, ReplicateBackend):
            build_input(call, call.model, image)


def _typed_or_success(action: Any) -> None:
    try:
        action()
    except fluxkit.InvalidRequestError as exc:
        assert isinstance(exc, ValueError)
        assert exc.field, "the error must name the field"
        assert len(str(exc)) < 2_000, "the error must show a short value, never the bytes"


_SETTINGS = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    "database": None,
}


def test_request_construction_fails_only_typed(files: dict[str, str]) -> None:
    @settings(max_examples=_CONSTRUCTION_EXAMPLES, **_SETTINGS)
    @given(prompt=prompts, params=_params(files))
    def run(prompt: Any, params: dict[str, Any]) -> None:
        params = dict(params)
        prompt = params.pop("prompt", prompt)
        _typed_or_success(lambda: fluxkit.GenerationRequest(prompt=prompt, **params))

    run()


@pytest.mark.parametrize("mode", ["strict", "coerce"])
@pytest.mark.parametrize("backend_name", sorted(_BACKENDS))
def test_planning_fails_only_typed(
    files: dict[str, str], backend_name: str, mode: ValidateMode
) -> None:
    backend = _BACKENDS[backend_name]

    @settings(max_examples=_PLAN_EXAMPLES, **_SETTINGS)
    @given(prompt=prompts, params=_params(files))
    def run(prompt: Any, params: dict[str, Any]) -> None:
        def plan_and_build() -> None:
            kwargs = dict(params)
            plan = plan_generation(backend, kwargs.pop("prompt", prompt), kwargs, mode)
            _build_payloads(backend, plan)

        _typed_or_success(plan_and_build)

    run()


def test_the_budget_is_at_least_6000_examples() -> None:
    assert _CONSTRUCTION_EXAMPLES + _PLAN_EXAMPLES * _PLAN_CASES >= 6_000
    assert len(_BACKENDS) * 2 == _PLAN_CASES


def test_known_crashes_are_now_typed(files: dict[str, str]) -> None:
    """The crashes the issue lists, one by one, each naming its field."""
    cases: list[tuple[str, dict[str, Any], ValidateMode]] = [
        ("loras", {"loras": 5}, "strict"),
        ("lora.source", {"loras": ["~nosuchuser/x.safetensors"]}, "strict"),
        ("image", {"image": "~nosuchuser/"}, "strict"),
        ("image", {"image": "f" * 256 + ".png"}, "strict"),
        ("loras[0].source", {"loras": ["./missing.safetensors"], "model": "flux-dev"}, "strict"),
        ("width", {"size": (math.inf, 512)}, "coerce"),
        ("height", {"size": (512, math.nan)}, "coerce"),
        ("extra", {"extra": {"when": object()}}, "strict"),
        ("extra", {"extra": {"x": math.nan}}, "strict"),
        ("image", {"image": files["huge"]}, "strict"),
    ]
    for field, params, mode in cases:
        with pytest.raises(fluxkit.InvalidRequestError) as caught:
            plan_generation(_BACKENDS["fake"], "x", params, mode)
        assert caught.value.field == field, (params, caught.value)
    for mode_name in ("CMYK", "F"):
        request = fluxkit.GenerationRequest(prompt="x", image=Image.new(mode_name, (8, 8)))
        assert request.image is not None and request.image.mime == "image/png"
