"""The local diffusers backend, end to end on a tiny random-weight FLUX pipeline (CPU, offline).

The session fixture saves the tiny pipeline with ``save_pretrained``; every test loads it through
the public path, ``Generator("diffusers", model=<dir>)``, so the real diffusers code runs.
"""

from __future__ import annotations

import asyncio
import base64
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("torch", reason="the diffusers backend needs fluxkit[local] (torch)")
pytest.importorskip("diffusers", reason="the diffusers backend needs fluxkit[local] (diffusers)")
pytest.importorskip("peft", reason="the diffusers backend needs fluxkit[local] (peft)")

import fluxkit
from fluxkit import (
    AsyncGenerator,
    ConfigurationError,
    DeadlineExceeded,
    Generator,
    InvalidRequestError,
    JobCancelledError,
    LoRA,
    MissingDependencyError,
    Step,
    UnsupportedFeatureError,
)
from fluxkit.backends.diffusers import (
    CAPABILITIES,
    MODEL_ALIASES,
    DiffusersBackend,
    LoRALoadError,
    ModelUnavailableError,
)
from fluxkit.testing.tiny_flux import (
    make_tiny_ip_adapter,
    make_tiny_lora,
    save_tiny_flux,
)

SIZE = (256, 256)  # GenerationRequest's minimum side; the tiny model makes it cheap
STEPS = 3


# -- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """The tiny model gains nothing from threads, and on a busy 2-core CI box torch's thread
    pool is ~10x slower than one thread (measured: 1.7 s vs 0.13 s per image)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_flux(tmp_path_factory.mktemp("tiny-flux"))


@pytest.fixture(scope="session")
def loras(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("loras")
    return {
        "a": make_tiny_lora(folder / "a.safetensors", model_dir, rank=4, seed=1),
        "b": make_tiny_lora(folder / "b.safetensors", model_dir, rank=8, seed=2),
        "c": make_tiny_lora(folder / "c.safetensors", model_dir, rank=4, seed=3),
        "kohya": make_tiny_lora(folder / "kohya.safetensors", model_dir, layout="kohya"),
        "unmatched": make_tiny_lora(
            folder / "unmatched.safetensors", model_dir, layout="unmatched"
        ),
    }


@pytest.fixture
def make_gen(model_dir: Path, tmp_path: Path) -> Iterator[Callable[..., Generator]]:
    made: list[Generator] = []

    def make(**options: Any) -> Generator:
        options.setdefault("device", "cpu")
        options.setdefault("lora_cache_dir", tmp_path / "cache")
        gen = Generator("diffusers", model=str(model_dir), **options)
        made.append(gen)
        return gen

    yield make
    for gen in made:
        gen.close()


@pytest.fixture(scope="module")
def gen(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Generator]:
    """One generator shared by read-only tests: its pipeline loads once for all of them."""
    with Generator(
        "diffusers",
        model=str(model_dir),
        device="cpu",
        lora_cache_dir=tmp_path_factory.mktemp("cache"),
    ) as shared:
        yield shared


def backend_of(generator: Generator | AsyncGenerator) -> DiffusersBackend:
    backend = generator._backend
    assert isinstance(backend, DiffusersBackend)
    return backend


def pixels(result: fluxkit.GenerationResult, index: int = 0) -> np.ndarray[Any, Any]:
    return np.asarray(result.images[index].to_pil(), dtype=np.int16)


def run(generator: Generator, **params: Any) -> fluxkit.GenerationResult:
    params.setdefault("size", SIZE)
    params.setdefault("steps", STEPS)
    params.setdefault("seed", 0)
    return generator.generate("a photo of a cat", **params)


# -- txt2img, img2img, seeds, events ------------------------------------------------------------


def test_txt2img_through_public_path(gen: Generator) -> None:
    events: list[Any] = []
    result = run(gen, on_event=events.append)
    image = result.images[0]
    assert (image.width, image.height, image.seed, image.format) == (256, 256, 0, "png")
    assert image.to_pil().size == SIZE
    assert result.backend == "diffusers"
    steps = [event for event in events if isinstance(event, Step)]
    assert [(s.i, s.total) for s in steps] == [(i, STEPS) for i in range(1, STEPS + 1)]
    assert isinstance(events[-1], fluxkit.Completed)


def test_prompt_and_seed_matter(gen: Generator) -> None:
    base = pixels(run(gen))
    assert np.array_equal(base, pixels(run(gen)))
    assert not np.array_equal(base, pixels(run(gen, seed=1)))
    assert not np.array_equal(
        base, pixels(gen.generate("a red car", size=SIZE, steps=STEPS, seed=0))
    )


def test_n_images_are_reproducible_one_by_one(gen: Generator) -> None:
    events: list[Any] = []
    batch = run(gen, seed=10, n=3, on_event=events.append)
    assert [image.seed for image in batch.images] == [10, 11, 12]
    for index, seed in enumerate((10, 11, 12)):
        assert np.array_equal(pixels(batch, index), pixels(run(gen, seed=seed)))
    steps = [event for event in events if isinstance(event, Step)]
    assert len(steps) == 3 * STEPS
    assert sorted({step.job for step in steps}) == [0, 1, 2]


def test_img2img_shares_the_loaded_pipeline(gen: Generator) -> None:
    loads = backend_of(gen).stats.pipeline_loads
    init = np.random.default_rng(0).integers(0, 255, (256, 256, 3), dtype=np.uint8)
    events: list[Any] = []
    first = run(gen, steps=4, image=init, strength=0.5, on_event=events.append)
    again = run(gen, steps=4, image=init, strength=0.5)
    assert first.images[0].to_pil().size == SIZE
    assert np.array_equal(pixels(first), pixels(again))
    assert not np.array_equal(pixels(first), pixels(run(gen, steps=4)))
    # strength 0.5 of 4 steps denoises the last 2
    assert [(s.i, s.total) for s in events if isinstance(s, Step)] == [(1, 2), (2, 2)]
    assert first.request.effective_strength == 0.5
    assert backend_of(gen).stats.pipeline_loads == loads == 1


def test_output_formats(gen: Generator) -> None:
    assert run(gen, output_format="jpeg").images[0].format == "jpeg"
    assert run(gen, output_format="webp").images[0].format == "webp"


def test_extra_passes_pipeline_arguments_but_not_reserved_ones(gen: Generator) -> None:
    short = run(gen, extra={"max_sequence_length": 32})
    assert short.images[0].to_pil().size == SIZE
    with pytest.raises(InvalidRequestError, match="extra.generator"):
        run(gen, extra={"generator": None})


# -- LoRAs ----------------------------------------------------------------------------------


def test_lora_scale_zero_is_base_and_other_scales_change_it(
    make_gen: Callable[..., Generator], loras: dict[str, Path]
) -> None:
    gen = make_gen()
    base = pixels(run(gen))
    zero = pixels(run(gen, loras=[(str(loras["a"]), 0.0)]))
    one = pixels(run(gen, loras=[(str(loras["a"]), 1.0)]))
    half = pixels(run(gen, loras=[(str(loras["a"]), 0.5)]))
    assert np.array_equal(zero, base)
    assert np.abs(one - base).max() > 5
    assert np.abs(half - one).max() > 0
    assert np.array_equal(pixels(run(gen)), base)  # no LoRA requested: exactly the base model


def test_two_loras_mixed_with_their_scales(
    make_gen: Callable[..., Generator], loras: dict[str, Path]
) -> None:
    gen = make_gen()
    a = pixels(run(gen, loras=[(str(loras["a"]), 1.0)]))
    b = pixels(run(gen, loras=[(str(loras["b"]), 1.0)]))
    both = pixels(run(gen, loras=[(str(loras["a"]), 1.0), (str(loras["b"]), 1.0)]))
    mostly_a = pixels(run(gen, loras=[(str(loras["a"]), 1.0), (str(loras["b"]), 0.0)]))
    assert not np.array_equal(both, a) and not np.array_equal(both, b)
    assert np.array_equal(mostly_a, a)
    assert backend_of(gen).stats.loras.loads == 2


def test_kohya_lora_is_converted_and_applied(
    make_gen: Callable[..., Generator], loras: dict[str, Path]
) -> None:
    gen = make_gen()
    base = pixels(run(gen))
    events: list[Any] = []
    styled = run(gen, loras=[str(loras["kohya"])], on_event=events.append)
    assert np.abs(pixels(styled) - base).max() > 0
    assert any("[kohya]" in e.message for e in events if isinstance(e, fluxkit.Log))


def test_switching_cached_loras_reads_nothing_and_never_reloads(
    make_gen: Callable[..., Generator], loras: dict[str, Path]
) -> None:
    gen = make_gen(max_loaded_loras=3)
    stats = backend_of(gen).stats
    first = {name: pixels(run(gen, loras=[str(loras[name])])) for name in "abc"}
    for name in "cabca":
        assert np.array_equal(pixels(run(gen, loras=[str(loras[name])])), first[name])
    assert (stats.pipeline_loads, stats.loras.loads, stats.loras.hits) == (1, 3, 5)
    assert stats.loras.evictions == 0


def test_lru_evicts_least_recently_used(
    make_gen: Callable[..., Generator], loras: dict[str, Path]
) -> None:
    gen = make_gen(max_loaded_loras=2)
    stats = backend_of(gen).stats
    a = pixels(run(gen, loras=[str(loras["a"])]))
    run(gen, loras=[str(loras["b"])])
    run(gen, loras=[str(loras["c"])])  # evicts a
    assert np.array_equal(pixels(run(gen, loras=[str(loras["a"])])), a)  # reloaded, evicts b
    assert (stats.loras.loads, stats.loras.evictions, stats.pipeline_loads) == (4, 2, 1)


def test_hotswap_refills_a_slot_in_place(
    make_gen: Callable[..., Generator], loras: dict[str, Path]
) -> None:
    swapping = make_gen(hotswap=8, max_loaded_loras=1)
    run(swapping, loras=[str(loras["a"])])
    swapped = pixels(run(swapping, loras=[str(loras["b"])]))  # rank 8 into the rank-4 slot
    assert backend_of(swapping).stats.loras.hotswaps == 1
    fresh = pixels(run(make_gen(), loras=[str(loras["b"])]))
    assert np.abs(swapped - fresh).max() <= 1


def test_lora_matching_nothing_raises_naming_file_and_format(
    make_gen: Callable[..., Generator], loras: dict[str, Path], tmp_path: Path
) -> None:
    import torch
    from safetensors.torch import save_file

    gen = make_gen()
    base = pixels(run(gen))
    with pytest.raises(LoRALoadError, match="unmatched.safetensors") as caught:
        run(gen, loras=[str(loras["unmatched"])])
    assert caught.value.format == "diffusers" and caught.value.field == "loras[0]"
    # No key diffusers routes to a component: diffusers itself only logs; fluxkit raises.
    foreign = tmp_path / "sdxl.safetensors"
    save_file(
        {
            "unet.down.0.lora_A.weight": torch.zeros(4, 8),
            "unet.down.0.lora_B.weight": torch.zeros(8, 4),
        },
        str(foreign),
    )
    with pytest.raises(LoRALoadError, match="matches no module"):
        run(gen, loras=[str(foreign)])
    assert np.array_equal(pixels(run(gen)), base)  # nothing half-loaded stays behind
    assert backend_of(gen).stats.pipeline_loads == 1


def test_pickle_loras_are_refused_without_unpickling(
    make_gen: Callable[..., Generator], tmp_path: Path
) -> None:
    import torch

    with pytest.raises(InvalidRequestError, match="pickle"):
        LoRA(tmp_path / "lora.ckpt")
    (tmp_path / "folder").mkdir()
    gen = make_gen()
    with pytest.raises(InvalidRequestError, match="pickle"):
        run(gen, loras=[LoRA(tmp_path / "folder", weight_name="lora.bin")])
    disguised = tmp_path / "disguised.safetensors"
    torch.save({"transformer.x.lora_A.weight": torch.zeros(1)}, disguised)
    with pytest.raises(LoRALoadError, match="pickle") as caught:
        run(gen, loras=[str(disguised)])
    assert caught.value.path == disguised


def test_lora_formats_are_named_as_people_know_them() -> None:
    from fluxkit.backends._local.loras import detect_format

    assert detect_format(["lora_unet_double_blocks_0_img_attn_qkv.lora_down.weight"]) == "kohya"
    assert detect_format(["double_blocks.0.processor.proj_lora1.down.weight"]) == "xlabs"
    assert detect_format(["transformer.transformer_blocks.0.attn.to_q.lora_A.weight"]) == (
        "diffusers"
    )
    assert detect_format(["transformer_blocks.0.attn.to_q.lora_A.weight"]).startswith("peft")
    assert detect_format(["model.weight"]).startswith("not a LoRA")


def test_missing_lora_file_names_the_field(
    make_gen: Callable[..., Generator], loras: dict[str, Path], tmp_path: Path
) -> None:
    gen = make_gen()
    with pytest.raises(InvalidRequestError, match=r"loras\[1\].*no such file"):
        run(gen, loras=[str(loras["a"]), str(tmp_path / "missing.safetensors")])


def test_url_lora_is_cached_by_content_hash(
    make_gen: Callable[..., Generator],
    loras: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import hashlib

    from fluxkit.backends._local import loras as local_loras

    payload = loras["a"].read_bytes()
    fetched: list[str] = []

    def fake_download(lora: LoRA, field: str) -> list[bytes]:
        fetched.append(lora.source)
        return [payload]

    monkeypatch.setattr(local_loras, "_download", fake_download)
    monkeypatch.delenv("HF_HUB_OFFLINE")  # the suite sets it; this URL is served by the fake
    gen = make_gen(lora_cache_dir=tmp_path / "cache")
    url = "https://example.invalid/styles/a.safetensors"
    by_url = pixels(run(gen, loras=[url]))
    blob = (
        tmp_path
        / "cache"
        / "loras"
        / "blobs"
        / f"{hashlib.sha256(payload).hexdigest()}.safetensors"
    )
    assert blob.read_bytes() == payload
    # Same content by path: same adapter (content hash), no second load.
    assert np.array_equal(pixels(run(gen, loras=[str(loras["a"])])), by_url)
    assert backend_of(gen).stats.loras.loads == 1
    # A new generator finds the URL in the disk cache: no download.
    run(make_gen(lora_cache_dir=tmp_path / "cache"), loras=[url])
    assert fetched == [url]
    data_uri = "data:application/octet-stream;base64," + base64.b64encode(payload).decode()
    assert np.array_equal(pixels(run(gen, loras=[data_uri])), by_url)


def test_hf_lora_goes_through_the_hub_cache(
    make_gen: Callable[..., Generator], loras: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub

    calls: list[tuple[Any, ...]] = []

    def fake_hf_hub_download(repo: str, filename: str, **kwargs: Any) -> str:
        calls.append((repo, filename, kwargs.get("revision")))
        return str(loras["b"])

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_hf_hub_download)
    gen = make_gen()
    source = "hf://me/style-lora/style.safetensors@v1"
    first = pixels(run(gen, loras=[source]))
    assert np.array_equal(pixels(run(gen, loras=[source])), first)
    assert calls == [("me/style-lora", "style.safetensors", "v1")]  # memoised after the first


# -- reference image (IP-Adapter), single file, memory switches --------------------------------


def test_reference_image_through_ip_adapter(
    make_gen: Callable[..., Generator], model_dir: Path, tmp_path: Path
) -> None:
    ip_dir = make_tiny_ip_adapter(tmp_path / "ip", model_dir)
    gen = make_gen(
        ip_adapter=str(ip_dir / "ip_adapter.safetensors"),
        image_encoder=str(ip_dir / "image_encoder"),
    )
    assert gen.capabilities().reference_image
    base = pixels(run(gen))
    face = np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    guided = pixels(run(gen, reference_image=face))
    assert np.abs(guided - base).max() > 5
    assert np.array_equal(pixels(run(gen, reference_image=face, reference_strength=0.0)), base)
    assert np.array_equal(pixels(run(gen)), base)  # adapter switched off, not unloaded
    assert np.array_equal(pixels(run(gen, reference_image=face)), guided)
    assert backend_of(gen).stats.pipeline_loads == 1


def test_reference_image_refused_when_ip_adapter_disabled(
    make_gen: Callable[..., Generator],
) -> None:
    gen = make_gen(ip_adapter=None)
    with pytest.raises(UnsupportedFeatureError, match="reference_image"):
        run(gen, reference_image=np.zeros((64, 64, 3), dtype=np.uint8))


def test_single_file_checkpoint(
    gen: Generator, model_dir: Path, tmp_path: Path, make_gen: Callable[..., Generator]
) -> None:
    from safetensors.torch import save_file

    pipe = backend_of(gen).load()
    checkpoint = tmp_path / "flux-tiny.safetensors"
    save_file(pipe.transformer.state_dict(), str(checkpoint))
    single = Generator(
        "diffusers", model=str(checkpoint), device="cpu", single_file_config=str(model_dir)
    )
    with single:
        assert np.array_equal(pixels(run(single)), pixels(run(gen)))


def test_memory_switches(make_gen: Callable[..., Generator]) -> None:
    gen = make_gen(vae_tiling=True, vae_slicing=True)
    assert run(gen).images[0].to_pil().size == SIZE
    pipe = backend_of(gen).load()
    assert pipe.vae.use_tiling and pipe.vae.use_slicing
    with pytest.raises(ConfigurationError, match="no GPU"):
        Generator(
            "diffusers",
            model=str(backend_of(gen).options()["model"]),
            device="cpu",
            offload="model",
        )


# -- cancellation, deadlines, concurrency -------------------------------------------------------


class Recorder:
    """Wraps backend.run: how many run at once, and how each run ended."""

    def __init__(self, backend: DiffusersBackend) -> None:
        self._run = backend.run
        self._lock = threading.Lock()
        self.active = self.peak = 0
        self.outcomes: list[BaseException | None] = []
        self.finished = threading.Event()
        backend.run = self  # type: ignore[method-assign]

    def __call__(self, *args: Any) -> Any:
        with self._lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
        try:
            output = self._run(*args)
        except BaseException as exc:
            self.outcomes.append(exc)
            raise
        else:
            self.outcomes.append(None)
            return output
        finally:
            with self._lock:
                self.active -= 1
            self.finished.set()


def test_closing_a_stream_cancels_at_the_next_step(make_gen: Callable[..., Generator]) -> None:
    gen = make_gen()
    recorder = Recorder(backend_of(gen))
    seen = 0
    for event in gen.stream("a cat", size=SIZE, steps=50, seed=0):
        if isinstance(event, Step):
            seen = event.i
            if event.i == 2:
                break
    assert recorder.finished.wait(10)
    assert isinstance(recorder.outcomes[0], JobCancelledError)
    assert seen == 2


def test_deadline_interrupts_the_pipeline(make_gen: Callable[..., Generator]) -> None:
    gen = make_gen()
    backend_of(gen).load()
    steps: list[int] = []

    def slow(event: Any) -> None:
        if isinstance(event, Step):
            steps.append(event.i)
            time.sleep(0.05)

    started = time.monotonic()
    with pytest.raises(DeadlineExceeded):
        run(gen, steps=50, on_event=slow, timeout=1.0)
    assert time.monotonic() - started < 5
    assert 0 < len(steps) < 50


async def test_async_cancel_interrupts_the_worker(model_dir: Path) -> None:
    async with AsyncGenerator("diffusers", model=str(model_dir), device="cpu") as agen:
        recorder = Recorder(backend_of(agen))
        second_step = asyncio.Event()
        steps: list[int] = []

        def on_event(event: Any) -> None:
            if isinstance(event, Step):
                steps.append(event.i)
                if event.i == 2:
                    second_step.set()

        task = asyncio.create_task(
            agen.generate("a cat", size=SIZE, steps=50, seed=0, on_event=on_event)
        )
        await asyncio.wait_for(second_step.wait(), 30)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await asyncio.to_thread(recorder.finished.wait, 10)
        assert isinstance(recorder.outcomes[0], JobCancelledError)
        assert len(steps) < 50


async def test_async_jobs_run_one_at_a_time_per_device(model_dir: Path) -> None:
    async with (
        AsyncGenerator("diffusers", model=str(model_dir), device="cpu") as first,
        AsyncGenerator("diffusers", model=str(model_dir), device="cpu") as second,
    ):
        recorders = [Recorder(backend_of(first)), Recorder(backend_of(second))]
        peak = {"now": 0, "max": 0}
        original = [r._run for r in recorders]

        def shared(index: int) -> Callable[..., Any]:
            def counted(*args: Any) -> Any:
                peak["now"] += 1
                peak["max"] = max(peak["max"], peak["now"])
                try:
                    return original[index](*args)
                finally:
                    peak["now"] -= 1

            return counted

        for index, recorder in enumerate(recorders):
            recorder._run = shared(index)
        results = await asyncio.gather(
            first.generate("a cat", size=SIZE, steps=2, seed=0, n=2),
            first.generate("a dog", size=SIZE, steps=2, seed=5),
            second.generate("a cat", size=SIZE, steps=2, seed=0),
        )
    assert [len(r.images) for r in results] == [2, 1, 1]
    assert recorders[0].peak == 1 and peak["max"] == 1
    assert np.array_equal(pixels(results[0]), pixels(results[2]))


# -- configuration and errors -------------------------------------------------------------------


def test_capabilities_and_aliases(gen: Generator) -> None:
    caps = gen.capabilities()
    assert caps.local_loras and caps.img2img and caps.seeds_per_image
    assert MODEL_ALIASES["flux-schnell"] == "black-forest-labs/FLUX.1-schnell"
    assert CAPABILITIES["black-forest-labs/FLUX.1-schnell"].default_steps == 4
    with pytest.raises(UnsupportedFeatureError, match="create another Generator"):
        run(gen, model="flux-schnell")


def test_model_errors_say_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ModelUnavailableError, match="model_index.json"):
        Generator("diffusers", model=str(tmp_path), device="cpu")
    with pytest.raises(ModelUnavailableError, match="pickle"):
        Generator("diffusers", model=str(tmp_path / "flux.ckpt"), device="cpu")
    with pytest.raises(ModelUnavailableError, match="neither an existing"):
        Generator("diffusers", model="./missing/dir", device="cpu")
    offline = Generator("diffusers", model="fluxkit-tests/no-such-model", device="cpu")
    with pytest.raises(ModelUnavailableError, match="hf download fluxkit-tests/no-such-model"):
        run(offline)

    import httpx
    from diffusers import FluxPipeline
    from huggingface_hub.errors import GatedRepoError

    def gated(*args: Any, **kwargs: Any) -> Any:
        response = httpx.Response(403, request=httpx.Request("GET", "https://huggingface.co"))
        raise OSError("cannot load") from GatedRepoError("restricted", response=response)

    monkeypatch.setattr(FluxPipeline, "from_pretrained", gated)
    with pytest.raises(ModelUnavailableError, match="accept its licence.*HF_TOKEN"):
        run(Generator("diffusers", model="flux-dev", device="cpu"))


def test_missing_extra_is_reported_at_construction(
    model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "peft" else real(name, *a)
    )
    with pytest.raises(MissingDependencyError, match=r"fluxkit\[local\]") as caught:
        Generator("diffusers", model=str(model_dir))
    assert caught.value.package == "peft"
    monkeypatch.setattr(importlib.util, "find_spec", real)

    import importlib.metadata

    real_version = importlib.metadata.version
    monkeypatch.setattr(
        importlib.metadata,
        "version",
        lambda name: "0.32.2" if name == "diffusers" else real_version(name),
    )
    with pytest.raises(MissingDependencyError, match=r"diffusers 0\.32\.2 is too old") as caught:
        Generator("diffusers", model=str(model_dir))
    assert caught.value.package == "diffusers>=0.42"


def test_module_import_is_light() -> None:
    code = (
        "import sys, fluxkit.backends.diffusers as m; "
        "assert m.backend_class.name == 'diffusers'; "
        "assert 'torch' not in sys.modules and 'diffusers' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# -- batches and replay on the local backend ------------------------------------------------------


def test_a_batch_reruns_a_local_job_interrupted_mid_run(gen: Generator, tmp_path: Path) -> None:
    from fluxkit.batch import expand, run_batch
    from fluxkit.batch._journal import JOURNAL_NAME, Journal

    defaults = {"size": SIZE, "steps": STEPS}
    jobs = expand([{"prompt": "a photo of a cat", "seed": 3}], defaults)
    with Journal.open(tmp_path / JOURNAL_NAME) as journal:  # a run died while generating
        journal.plan(jobs)
        journal.submitting(jobs[0][0], "diffusers")
    summary = run_batch(
        [{"prompt": "a photo of a cat", "seed": 3}], gen, tmp_path, defaults=defaults
    )
    assert summary.ok and summary.saved == 1 and not summary.uncertain


def test_replaying_a_local_generation_reproduces_the_pixels(gen: Generator, tmp_path: Path) -> None:
    first = run(gen, seed=5)
    saved = first.images[0].save(tmp_path / "cat.png")
    again = fluxkit.replay(saved, generator=gen)
    assert again.images[0].seed == 5
    assert np.array_equal(pixels(again), pixels(first))
