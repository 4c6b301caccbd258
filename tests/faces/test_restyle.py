"""overlay_then_restyle through the fake backend, and the overlay-only fallback."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import fluxkit
from fluxkit import InvalidRequestError, JobFailedError
from fluxkit.faces import (
    STYLE_PRESETS,
    RestyleFailed,
    aoverlay_then_restyle,
    overlay_then_restyle,
)


def _correlation(a: Any, b: Any) -> float:
    x = np.asarray(a, np.float32).ravel()
    y = np.asarray(b, np.float32).ravel()
    return float(np.corrcoef(x, y)[0, 1])


def test_restyle_through_the_fake_backend(astronaut, grace) -> None:
    with fluxkit.Generator("fake") as gen:
        result = overlay_then_restyle(
            gen, astronaut, grace, "oil portrait", style="van-gogh", seed=7, detector="haar"
        )
    assert result.restyled and result.warnings == ()
    assert result.prompt == "oil portrait, " + STYLE_PRESETS["van-gogh"].prompt
    request = result.generation.request
    assert (request.strength, request.seed, request.size) == (0.35, 7, (512, 512))
    assert request.image.to_pil().tobytes() == result.composite.image.tobytes()
    assert result.image.size == astronaut.size
    # img2img at 0.35 keeps the composite recognisable but changes it.
    assert not np.array_equal(np.asarray(result.image), np.asarray(result.composite.image))
    assert _correlation(result.image, result.composite.image) > 0.8


def test_restyle_returns_the_target_size_when_the_backend_rounds(grace, astronaut) -> None:
    target = astronaut.resize((500, 490))
    with fluxkit.Generator("fake") as gen:
        result = overlay_then_restyle(gen, target, grace, style="neon", detector="haar")
    assert result.generation.request.size == (496, 496)
    assert result.image.size == (500, 490)


def test_fallback_when_the_backend_fails(astronaut, grace, broken_backend) -> None:
    with fluxkit.Generator(broken_backend()) as gen:
        result = overlay_then_restyle(gen, astronaut, grace, style="baroque", detector="haar")
    assert not result.restyled
    assert result.image is result.composite.image
    (warning,) = result.warnings
    assert isinstance(warning, RestyleFailed) and isinstance(warning, fluxkit.FluxkitWarning)
    assert isinstance(warning.error, JobFailedError) and warning.backend == "broken"
    assert "GPU fell over" in str(warning) and "overlay only" in str(warning)


def test_fallback_when_the_model_has_no_img2img(astronaut, grace) -> None:
    with fluxkit.Generator("fake", model="flux-pro") as gen:
        result = overlay_then_restyle(gen, astronaut, grace, "a painting", detector="haar")
    assert not result.restyled
    assert isinstance(result.warnings[0].error, fluxkit.UnsupportedFeatureError)


def test_no_fallback_raises(astronaut, grace, broken_backend) -> None:
    with fluxkit.Generator(broken_backend()) as gen, pytest.raises(JobFailedError):
        overlay_then_restyle(gen, astronaut, grace, "x", fallback=False, detector="haar")


def test_skip_restyle_never_calls_the_generator(astronaut, grace, broken_backend) -> None:
    with fluxkit.Generator(broken_backend()) as gen:
        result = overlay_then_restyle(gen, astronaut, grace, skip_restyle=True, detector="haar")
    assert not result.restyled and result.warnings == () and result.prompt is None


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({}, "prompt"), ({"style": "cubism"}, "style"), ({"prompt": "x", "strength": 0}, "strength")],
)
def test_bad_restyle_arguments_fail_before_compositing(kwargs, field, blank) -> None:
    # A blank target would raise FaceNotFoundError if compositing ran first.
    with fluxkit.Generator("fake") as gen, pytest.raises(InvalidRequestError, match=field):
        overlay_then_restyle(gen, blank, blank, **kwargs)


def test_sync_function_refuses_an_async_generator(astronaut, grace) -> None:
    gen = fluxkit.AsyncGenerator("fake")
    with pytest.raises(InvalidRequestError, match="aoverlay_then_restyle"):
        overlay_then_restyle(gen, astronaut, grace, "x")  # type: ignore[arg-type]


async def test_async_restyle_through_the_fake_backend(astronaut, grace, tmp_path) -> None:
    async with fluxkit.AsyncGenerator("fake") as gen:
        result = await aoverlay_then_restyle(
            gen, astronaut, grace, style="watercolour", seed=3, detector="haar"
        )
    assert result.restyled and result.generation.request.seed == 3
    assert result.image.size == astronaut.size
    assert result.save(tmp_path / "out.png").is_file()


async def test_async_fallback(astronaut, grace, broken_backend) -> None:
    async with fluxkit.AsyncGenerator(broken_backend()) as gen:
        result = await aoverlay_then_restyle(gen, astronaut, grace, "x", detector="haar")
    assert isinstance(result.warnings[0], RestyleFailed)


async def test_async_function_refuses_a_sync_generator(astronaut, grace) -> None:
    with fluxkit.Generator("fake") as gen, pytest.raises(InvalidRequestError, match="generator"):
        await aoverlay_then_restyle(gen, astronaut, grace, "x")  # type: ignore[arg-type]
