"""The façade: one behaviour sync and async, seeds, n-splitting, validation modes, events."""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
from typing import Any

import pytest

import fluxkit
from fluxkit.testing import Defer, FakeProviderEmulator, route


def public_methods(cls: type) -> dict[str, inspect.Signature]:
    renames = {"aclose": "close", "__aenter__": "__enter__", "__aexit__": "__exit__"}
    methods = {}
    for name, member in inspect.getmembers(cls):
        if name.startswith("_") and name not in renames and name not in ("__enter__", "__exit__"):
            continue
        if callable(member):
            methods[renames.get(name, name)] = inspect.signature(member)
    return methods


def test_sync_and_async_have_the_same_methods_and_parameters() -> None:
    sync, asynchronous = public_methods(fluxkit.Generator), public_methods(fluxkit.AsyncGenerator)
    assert sync.keys() == asynchronous.keys()
    for name in sync:
        if name in ("__enter__", "__exit__"):
            continue
        assert list(sync[name].parameters) == list(asynchronous[name].parameters), name
        for param in sync[name].parameters:
            ours, theirs = sync[name].parameters[param], asynchronous[name].parameters[param]
            assert (ours.kind, ours.default) == (theirs.kind, theirs.default), (name, param)
    init_sync = inspect.signature(fluxkit.Generator.__init__).parameters
    init_async = inspect.signature(fluxkit.AsyncGenerator.__init__).parameters
    assert list(init_sync) == list(init_async)


class TestSeeds:
    def test_every_image_reports_a_seed_that_regenerates_it_alone(
        self, fake_generator: fluxkit.Generator
    ) -> None:
        batch = fake_generator.generate("fox", size="square", seed=7, n=6)
        assert batch.seeds == (7, 8, 9, 10, 11, 12)
        assert len(batch.request_ids) == 2  # 4 per call on this model: split in two
        alone = fake_generator.generate("fox", size="square", seed=10)
        assert alone.images[0].data == batch.images[3].data

    def test_random_seed_is_reported_and_reproducible(
        self, fake_generator: fluxkit.Generator
    ) -> None:
        first = fake_generator.generate("fox", size="square")
        seed = first.images[0].seed
        assert seed is not None and first.request.seed == seed
        again = fake_generator.generate("fox", size="square", seed=seed)
        assert again.images[0].data == first.images[0].data

    def test_seeds_wrap_at_2_pow_32(self, fake_generator: fluxkit.Generator) -> None:
        assert fake_generator.generate("fox", size="square", seed=2**32 - 1, n=2).seeds == (
            2**32 - 1,
            0,
        )

    def test_one_image_per_call_models_are_fanned_out(
        self, fake_emulator: FakeProviderEmulator
    ) -> None:
        fake_emulator.script.run_seconds = 0.2
        with fake_emulator.generator(
            model="flux-pro",
            max_concurrency=4,
        ) as generator:
            started = time.monotonic()
            result = generator.generate("fox", size="square", seed=1, n=4)
            elapsed = time.monotonic() - started
        assert result.seeds == (1, 2, 3, 4)
        assert len(result.request_ids) == 4
        assert elapsed < 0.7  # concurrent, not 4 x 0.2 s in a row

    async def test_async_gives_the_same_images(self, fake_generator: fluxkit.Generator) -> None:
        sync = fake_generator.generate("fox", size="square", seed=7, n=5)
        async with fluxkit.AsyncGenerator("fake") as generator:
            result = await generator.generate("fox", size="square", seed=7, n=5)
        assert result.seeds == sync.seeds
        assert [i.data for i in result.images] == [i.data for i in sync.images]


class TestValidation:
    def test_strict_mode_refuses_off_grid_sizes(self, fake_generator: fluxkit.Generator) -> None:
        with pytest.raises(fluxkit.InvalidRequestError, match="multiple of 16"):
            fake_generator.generate("fox", size=(1000, 1000))

    def test_coerce_mode_rounds_and_warns(self, fake_emulator: FakeProviderEmulator) -> None:
        with fake_emulator.generator(
            validate="coerce",
        ) as generator:
            result = generator.generate("fox", size=(1000, 1000), seed=1)
        assert (result.images[0].width, result.images[0].height) == (1008, 1008)
        coerced = [w for w in result.warnings if isinstance(w, fluxkit.RequestCoerced)]
        assert {(w.field, w.given, w.used) for w in coerced} == {
            ("width", 1000, 1008),
            ("height", 1000, 1008),
        }

    def test_coerce_caps_steps_to_the_model(self, fake_emulator: FakeProviderEmulator) -> None:
        with fake_emulator.generator(
            model="flux-schnell",
        ) as generator:
            with pytest.raises(fluxkit.InvalidRequestError, match="1 to 12"):
                generator.generate("fox", size="square", steps=30)
            result = generator.generate("fox", size="square", steps=30, validate="coerce")
        assert result.request.steps == 12

    def test_unsupported_feature_fails_before_any_call(
        self, fake_emulator: FakeProviderEmulator
    ) -> None:
        with fake_emulator.generator(
            model="flux-schnell",
        ) as generator:
            with pytest.raises(fluxkit.UnsupportedFeatureError) as info:
                generator.generate("fox", loras=["hf://me/style/a.safetensors"])
        assert info.value.backend == "fake" and info.value.model == "fake-flux-schnell"
        assert "LoRAs" in str(info.value)
        assert isinstance(info.value, ValueError)
        assert fake_emulator.log == []

    def test_model_defaults_fill_steps_and_guidance(
        self, fake_generator: fluxkit.Generator
    ) -> None:
        result = fake_generator.generate("fox", size="square")
        assert (result.request.steps, result.request.guidance) == (28, 3.5)

    def test_unknown_model_lists_known_ones(self, fake_generator: fluxkit.Generator) -> None:
        with pytest.raises(fluxkit.UnsupportedFeatureError, match="flux-dev"):
            fake_generator.generate("fox", model="sdxl")

    def test_both_alias_and_name_is_refused(self, fake_generator: fluxkit.Generator) -> None:
        with pytest.raises(fluxkit.InvalidRequestError, match="either"):
            fake_generator.generate("fox", steps=4, num_inference_steps=5)

    def test_a_ready_request_object_is_accepted(self, fake_generator: fluxkit.Generator) -> None:
        request = fluxkit.GenerationRequest(prompt="fox", size="square", seed=2)
        assert fake_generator.generate(request).seeds == (2,)


class TestEvents:
    def test_events_in_order_and_completed_last(self, fake_emulator: FakeProviderEmulator) -> None:
        fake_emulator.script.queue_seconds = 0.1
        fake_emulator.script.run_seconds = 0.1
        with fake_emulator.generator() as generator:
            events = list(generator.stream("fox", size="square", steps=4, seed=1))
        kinds = [type(e).__name__ for e in events]
        assert kinds[:2] == ["Submitted", "Queued"] and kinds[-1] == "Completed"
        assert kinds.index("Started") < kinds.index("Step")
        assert [(e.i, e.total) for e in events if isinstance(e, fluxkit.Step)] == [
            (1, 4),
            (2, 4),
            (3, 4),
            (4, 4),
        ]
        completed = events[-1]
        assert isinstance(completed, fluxkit.Completed) and completed.result.seeds == (1,)
        assert (
            completed.result.timings.queued is not None and completed.result.timings.queued >= 0.05
        )

    def test_stream_raises_invalid_requests_immediately(
        self, fake_generator: fluxkit.Generator
    ) -> None:
        with pytest.raises(fluxkit.InvalidRequestError):
            fake_generator.stream("fox", steps=0)

    def test_leaving_a_stream_early_cancels_the_job(
        self, fake_emulator: FakeProviderEmulator
    ) -> None:
        fake_emulator.script.queue_seconds = 30
        with fake_emulator.generator() as generator:
            for event in generator.stream("fox", size="square"):
                assert isinstance(event, fluxkit.Submitted)  # the job exists: leave now
                break
        assert fake_emulator.cancelled == {"fake-000001"}

    def test_stream_reraises_provider_errors(self, fake_emulator: FakeProviderEmulator) -> None:
        fake_emulator.script.fail_jobs(1)
        with fake_emulator.generator() as generator:
            with pytest.raises(fluxkit.JobFailedError):
                list(generator.stream("fox", size="square"))

    async def test_async_stream(self, fake_emulator: FakeProviderEmulator) -> None:
        async with fake_emulator.async_generator() as generator:
            events = [
                event async for event in generator.stream("fox", size="square", steps=2, seed=9)
            ]
        assert isinstance(events[-1], fluxkit.Completed) and events[-1].result.seeds == (9,)
        assert sum(isinstance(e, fluxkit.Step) for e in events) == 2

    def test_on_event_gets_job_index_per_call(self, fake_emulator: FakeProviderEmulator) -> None:
        events: list[object] = []
        with fake_emulator.generator(
            model="flux-pro",
        ) as generator:
            generator.generate("fox", size="square", n=3, on_event=events.append)
        assert {e.job for e in events if isinstance(e, fluxkit.Started)} == {0, 1, 2}


class TestDownloads:
    def test_url_results_are_downloaded_before_returning(self) -> None:
        emulator = FakeProviderEmulator(return_urls=True)
        with emulator.generator() as generator:
            result = generator.generate("fox", size="square")
        assert result.images[0].is_loaded and result.images[0].url
        assert result.images[0].to_pil().size == (512, 512)

    def test_lazy_download_fetches_once(self) -> None:
        emulator = FakeProviderEmulator(return_urls=True)
        with emulator.generator(download=False) as generator:
            image = generator.generate("fox", size="square").images[0]
            assert not image.is_loaded
            assert image.data == image.data
        assert len(emulator.requests(r"^/files/")) == 1


def test_sync_generate_works_inside_a_running_event_loop() -> None:
    async def notebook_cell() -> tuple[int | None, ...]:
        with fluxkit.Generator("fake") as generator:  # as in Jupyter: a loop is already running
            return generator.generate("fox", size="square", seed=3, n=2).seeds

    assert asyncio.run(notebook_cell()) == (3, 4)


def test_unknown_backend_lists_valid_names() -> None:
    with pytest.raises(fluxkit.UnknownBackendError) as info:
        fluxkit.Generator("midjourney")
    assert "fake" in str(info.value) and isinstance(info.value, LookupError)


def test_generators_are_usable_from_many_threads(fake_generator: fluxkit.Generator) -> None:
    seeds: list[tuple[int | None, ...]] = []

    def work(seed: int) -> None:
        seeds.append(fake_generator.generate("fox", size="square", seed=seed).seeds)

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(seeds) == [(seed,) for seed in range(6)]


def test_nsfw_flags_become_warnings_not_dropped_images(fake_generator: fluxkit.Generator) -> None:
    result = fake_generator.generate("nsfw test", size="square", n=2)
    assert len(result.images) == 2
    assert [w.index for w in result.warnings if isinstance(w, fluxkit.ContentFlagged)] == [0, 1]


def _max_overlap(emulator: FakeProviderEmulator) -> int:
    spans = [(job.created, job.finished_at) for job in emulator.jobs.values()]
    return max(sum(1 for s, e in spans if s <= start < e) for start, _ in spans)


async def test_max_concurrency_bounds_calls_across_generate_calls(
    fake_emulator: FakeProviderEmulator,
) -> None:
    fake_emulator.script.run_seconds = 0.15
    async with fake_emulator.async_generator(
        max_concurrency=2,
    ) as gen:
        await asyncio.gather(*(gen.generate("fox", size="square", seed=i) for i in range(5)))
    assert len(fake_emulator.jobs) == 5
    assert _max_overlap(fake_emulator) == 2


def test_sync_max_concurrency_bounds_calls_across_threads(
    fake_emulator: FakeProviderEmulator,
) -> None:
    fake_emulator.script.run_seconds = 0.15
    with fake_emulator.generator(
        max_concurrency=2,
    ) as gen:
        threads = [
            threading.Thread(target=gen.generate, args=("fox",), kwargs={"size": "square"})
            for _ in range(5)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert len(fake_emulator.jobs) == 5
    assert _max_overlap(fake_emulator) == 2


class _SlowFiles(FakeProviderEmulator):
    """Image downloads take 0.3 s, to see what overlaps them."""

    @route("GET", r"/files/(?P<name>[\w.-]+)")
    def file(self, request: Any, name: str) -> Any:
        answer = super().file(request, name)
        return Defer(0.3, lambda: answer)


async def test_downloads_do_not_hold_a_concurrency_slot() -> None:
    emulator = _SlowFiles(return_urls=True)
    async with emulator.async_generator(
        model="flux-pro",
        max_concurrency=1,
    ) as gen:
        result = await gen.generate("fox", size="square", n=2)
    assert all(image.is_loaded for image in result.images)
    first_download = min(r.received_at for r in emulator.requests(r"^/files/"))
    second_job = max(job.created for job in emulator.jobs.values())
    # with one slot, the second job was submitted while the first image was still downloading
    assert second_job < first_download + 0.3
