"""Replay: regenerate an image from the record embedded in the file alone."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import fluxkit
from fluxkit._replay import replay_request
from fluxkit.cli import main


def init_png(path: Path, colour: int = 90) -> Path:
    pixels = np.full((256, 256, 3), colour, dtype=np.uint8)
    pixels[64:128, 64:128] = 255 - colour
    Image.fromarray(pixels).save(path)
    return path


def pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def test_the_record_holds_everything_replay_needs(tmp_path: Path) -> None:
    init = init_png(tmp_path / "init.png")
    with fluxkit.Generator("fake") as gen:
        result = gen.generate(
            "a red fox",
            size=(512, 384),
            steps=7,
            guidance=4.0,
            seed=11,
            image=init,
            strength=0.6,
            reference_image=init,
            reference_strength=0.4,
            output_format="webp",
            loras=[fluxkit.LoRA("hf://me/fox/fox.safetensors", scale=0.7)],
            extra={"note": "kept"},
        )
    saved = result.image.save(tmp_path / "fox.webp")
    record = fluxkit.read_record(saved)
    assert record is not None
    assert record["model"] == "fake-flux-dev" and record["output_format"] == "webp"
    assert record["reference_strength"] == 0.4 and record["extra"] == {"note": "kept"}
    assert record["image"]["path"] == str(init.resolve())
    assert len(record["image"]["sha256"]) == 64 and "data" not in record["image"]
    assert record["loras"] == [{"source": "hf://me/fox/fox.safetensors", "scale": 0.7}]


def test_replaying_a_fake_generation_reproduces_the_pixels(tmp_path: Path) -> None:
    init = init_png(tmp_path / "init.png")
    with fluxkit.Generator("fake") as gen:
        first = gen.generate("a lighthouse", seed=5, size=(256, 256), image=init, strength=0.5)
    saved = first.image.save(tmp_path / "one.png")
    again = fluxkit.replay(saved)
    assert again.image.seed == 5
    assert np.array_equal(pixels(again.image.data), pixels(first.image.data))
    changed = fluxkit.replay(saved, seed=6)
    assert not np.array_equal(pixels(changed.image.data), pixels(first.image.data))


def test_a_missing_input_image_is_named_by_hash_and_can_be_passed(tmp_path: Path) -> None:
    init = init_png(tmp_path / "init.png")
    with fluxkit.Generator("fake") as gen:
        first = gen.generate("an owl", seed=2, size=(256, 256), image=init)
    saved = first.image.save(tmp_path / "owl.png")
    digest = fluxkit.read_record(saved)["image"]["sha256"]  # type: ignore[index]
    moved = tmp_path / "elsewhere.png"
    init.rename(moved)
    with pytest.raises(fluxkit.InvalidRequestError, match=digest[:16]) as caught:
        fluxkit.replay(saved)
    assert caught.value.field == "image" and "--image" in str(caught.value)
    again = fluxkit.replay(saved, images={digest: moved})
    assert np.array_equal(pixels(again.image.data), pixels(first.image.data))
    # a different file at the recorded path is not taken for the original
    init_png(init, colour=10)
    with pytest.raises(fluxkit.InvalidRequestError, match="changed"):
        fluxkit.replay(saved)


def test_another_backend_gets_the_alias_not_the_provider_id(tmp_path: Path) -> None:
    with fluxkit.Generator("fake") as gen:
        saved = gen.generate("a fox", model="flux-schnell", seed=1).image.save(tmp_path / "s.png")
    backend, params = replay_request(saved, backend="fal")
    assert backend == "fal" and params["model"] == "flux-schnell" and params["seed"] == 1
    assert replay_request(saved)[1]["model"] == "fake-flux-schnell"


def test_files_without_a_record_are_refused(tmp_path: Path) -> None:
    plain = init_png(tmp_path / "plain.png")
    with pytest.raises(fluxkit.InvalidRequestError, match="saved by fluxkit"):
        fluxkit.replay(plain)


def test_the_cli_replays_into_a_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with fluxkit.Generator("fake") as gen:
        first = gen.generate("a fox", seed=9, size=(256, 256))
    saved = first.image.save(tmp_path / "fox.png")
    assert main(["replay", str(saved), "-o", str(tmp_path / "out")]) == 0
    (written,) = capsys.readouterr().out.split()
    assert np.array_equal(pixels(Path(written).read_bytes()), pixels(first.image.data))
    assert main(["replay", str(tmp_path / "nope.png")]) == 2
