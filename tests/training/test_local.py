"""The local diffusers + peft loop on the tiny random-weight FLUX pipeline (CPU, one thread)."""

from __future__ import annotations

import statistics
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("peft")
pytest.importorskip("diffusers")

from fluxkit._exceptions import DeadlineExceeded, JobCancelledError
from fluxkit.lora import inspect_lora
from fluxkit.training import (
    LocalTrainingConfig,
    LoRALibrary,
    Trainer,
    TrainingHandle,
    TrainingStep,
    train_local,
)
from tests.datasets.conftest import photo_array


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread() -> Iterator[None]:
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from fluxkit.testing.tiny_flux import save_tiny_flux

    return save_tiny_flux(tmp_path_factory.mktemp("tiny-flux"))


@pytest.fixture(scope="module")
def small_photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("small-photos")
    for seed, size in enumerate([(64, 64), (64, 64), (80, 64), (80, 64)]):
        photo_array(seed, size).save(folder / f"{seed}.png")
        (folder / f"{seed}.txt").write_text(f"a photo of tok, number {seed}")
    return folder


def config(model_dir: Path, out: Path, **overrides: Any) -> LocalTrainingConfig:
    values: dict[str, Any] = dict(  # noqa: C408 - LocalTrainingConfig keywords
        model=str(model_dir),
        output_dir=str(out),
        trigger_word="tok",
        steps=40,
        rank=4,
        alpha=8,
        learning_rate=1e-2,
        resolution=64,
        checkpoint_every=20,
        seed=3,
    )
    values.update(overrides)
    return LocalTrainingConfig(**values)


def test_loss_goes_down_and_the_lora_reloads_and_changes_images(
    model_dir: Path, small_photos: Path, tmp_path: Path
) -> None:
    import fluxkit

    events: list[Any] = []
    result = train_local(config(model_dir, tmp_path / "run"), small_photos, emit=events.append)
    assert len(result.losses) == 40
    assert statistics.mean(result.losses[-10:]) < statistics.mean(result.losses[:10])
    assert [e.step for e in events if isinstance(e, TrainingStep)] == list(range(1, 41))

    info = inspect_lora(result.lora_path)
    assert info.layout == "diffusers" and info.rank == 4 and info.alphas == (8.0,)
    assert info.base_model == "flux-dev" and info.trigger_words == ("tok",)
    with fluxkit.Generator("diffusers", model=str(model_dir), device="cpu") as gen:
        plain = gen.generate("a photo of tok", size=(256, 256), steps=2, seed=0)
        styled = gen.generate(
            "a photo of tok", size=(256, 256), steps=2, seed=0, loras=[(str(result.lora_path), 1.0)]
        )
    assert plain.images[0].to_pil().tobytes() != styled.images[0].to_pil().tobytes()


def test_resume_from_checkpoint_equals_an_uninterrupted_run(
    model_dir: Path, small_photos: Path, tmp_path: Path
) -> None:
    from safetensors.torch import load_file

    whole = train_local(
        config(model_dir, tmp_path / "whole", steps=12, checkpoint_every=100), small_photos
    )
    cancel = threading.Event()

    def stop_at_7(event: Any) -> None:
        if isinstance(event, TrainingStep) and event.step == 7:
            cancel.set()

    interrupted = config(model_dir, tmp_path / "cut", steps=12, checkpoint_every=100)
    with pytest.raises(JobCancelledError):
        train_local(interrupted, small_photos, emit=stop_at_7, cancel=cancel)
    assert (tmp_path / "cut" / "checkpoint" / "state.json").exists()
    resumed = train_local(interrupted, small_photos)
    assert resumed.resumed_from == 7
    assert resumed.losses == whole.losses  # same batches, noise and optimiser state
    a, b = load_file(str(whole.lora_path)), load_file(str(resumed.lora_path))
    assert a.keys() == b.keys() and all(bool((a[k] == b[k]).all()) for k in a)


def test_trainer_local_end_to_end_with_handle(
    model_dir: Path, small_photos: Path, tmp_path: Path
) -> None:
    library = LoRALibrary(tmp_path / "library")
    handle = tmp_path / "tok.json"
    trainer = Trainer("local", model=str(model_dir), library=library)
    job = trainer.train(
        small_photos,
        trigger_word="tok",
        steps=6,
        rank=4,
        learning_rate=1e-3,
        resolution=64,
        handle=handle,
    )
    kinds = [type(e).__name__ for e in job.stream()]
    assert kinds.count("TrainingStep") == 6 and job.status == "succeeded"
    assert job.lora is not None and Path(job.lora.source).is_relative_to(library.root)
    assert TrainingHandle.load(handle).status == "succeeded"
    # the same dataset again: the finished LoRA, not a second training
    again = trainer.train(
        small_photos,
        trigger_word="tok",
        steps=6,
        rank=4,
        learning_rate=1e-3,
        resolution=64,
        handle=handle,
    )
    assert again.wait().source == job.lora.source
    assert again.refresh() == "succeeded"


def test_local_timeout_cancels_and_keeps_a_checkpoint(
    model_dir: Path, small_photos: Path, tmp_path: Path
) -> None:
    trainer = Trainer("local", model=str(model_dir), library=LoRALibrary(tmp_path / "lib"))
    job = trainer.train(
        small_photos, trigger_word="tok", steps=100000, resolution=64, handle=tmp_path / "h.json"
    )
    with pytest.raises(DeadlineExceeded):
        job.wait(timeout=1.5)
    assert job.status == "canceled"
    assert (Path(str(job.id)) / "checkpoint" / "state.json").exists()


def test_bad_local_settings_are_refused(model_dir: Path) -> None:
    with pytest.raises(ValueError, match="resolution"):
        LocalTrainingConfig(model=str(model_dir), output_dir="x", trigger_word="t", resolution=70)
    with pytest.raises(ValueError, match="rank"):
        LocalTrainingConfig(model=str(model_dir), output_dir="x", trigger_word="t", rank=0)


def test_unknown_local_option_is_refused(model_dir: Path, small_photos: Path) -> None:
    trainer = Trainer("local", model=str(model_dir))
    with pytest.raises(ValueError, match="not a local training option"):
        trainer.train(small_photos, trigger_word="tok", steps=2, is_style=True)


def test_captions_from_txt_files_and_metadata_jsonl(tmp_path: Path) -> None:
    from fluxkit.training._local import load_images

    folder = tmp_path / "ds" / "train"
    folder.mkdir(parents=True)
    for index in range(3):
        photo_array(index, (64, 64)).save(folder / f"{index}.jpg")
    (folder / "0.txt").write_text("from a txt file")
    (folder / "metadata.jsonl").write_text('{"file_name": "1.jpg", "text": "from jsonl"}\nbad\n5\n')
    captions = [caption for _, caption in load_images(tmp_path / "ds", "tok")]
    assert captions == ["from a txt file", "from jsonl", "tok"]
