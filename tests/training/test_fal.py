"""fal trainers through Trainer against FalEmulator: the whole job model and money rules."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fluxkit._events import Started, Submitted
from fluxkit._exceptions import (
    BudgetExceeded,
    DeadlineExceeded,
    InvalidRequestError,
    JobFailedError,
    JobMayExistError,
    ResultUnavailableError,
)
from fluxkit._uploads import UploadCache
from fluxkit.lora import inspect_lora
from fluxkit.testing._training import flux_lora_bytes
from fluxkit.testing.fal import FalEmulator
from fluxkit.training import (
    LoRALibrary,
    StatusChanged,
    Trainer,
    TrainingHandle,
    TrainingStep,
    handle_path_for,
)

SUBMITS = r"^/fal-ai/flux-lora-(fast-training|portrait-trainer)$"


def trainer(emu: FalEmulator, library: LoRALibrary, **options: Any) -> Trainer:
    return Trainer(
        "fal",
        api_key="test",
        base_url=emu.base_url,
        transport=emu.transport(),
        poll_interval=0.01,
        library=library,
        upload_cache=UploadCache(),
        **options,
    )


def test_train_wait_downloads_inspects_and_keeps_the_lora(
    fal: FalEmulator, library: LoRALibrary, photos: Path
) -> None:
    events: list[Any] = []
    job = trainer(fal, library).train(photos, trigger_word="tok", steps=50, on_event=events.append)
    assert isinstance(events[0], Submitted) and job.id == events[0].request_id
    lora = job.wait(on_event=events.append)

    body = fal.requests(SUBMITS, method="POST")[0].json()
    assert body["trigger_word"] == "tok" and body["steps"] == 50
    assert body["images_data_url"].startswith(fal.base_url + "/files/")
    archive = fal.files[body["images_data_url"].rsplit("/", 1)[-1]]
    assert archive.startswith(b"PK")  # the packed zip (photos -> fal target)
    assert job.status == "succeeded" and job.step == 50 and job.loss is not None
    steps = [e for e in events if isinstance(e, TrainingStep)]
    assert steps[-1].step == 50 and steps[-1].total == 50
    assert [s.step for s in steps] == sorted({s.step for s in steps})
    assert any(isinstance(e, Started) for e in events)
    assert [e.status for e in events if isinstance(e, StatusChanged)][-1] == "succeeded"
    assert "Preprocessing images..." in job.logs

    path = Path(lora.source)
    assert path.is_relative_to(library.root) and path.name == "lora.safetensors"
    assert path.with_name("config.json").exists()
    assert lora.trigger_words == ("tok",)
    info = inspect_lora(path)
    assert info.base_model in ("flux-dev", "flux") and info.rank == 4
    record = json.loads(path.with_name("training.json").read_text())
    assert record["job_id"] == job.id and record["backend"] == "fal"
    handle = TrainingHandle.load(handle_path_for(photos, "fal"))
    assert handle.status == "succeeded" and handle.lora_path == str(path)
    assert job.cost.usd == pytest.approx(0.1)  # 50 steps x $0.002


def test_portrait_trainer_gets_trigger_phrase_and_learning_rate(
    fal: FalEmulator, library: LoRALibrary, photos: Path
) -> None:
    job = trainer(fal, library, model="portrait").train(
        photos, trigger_word="tok", steps=10, learning_rate=2e-4, subject_crop=False
    )
    job.wait()
    body = fal.requests(r"^/fal-ai/flux-lora-portrait-trainer$", method="POST")[0].json()
    assert body["trigger_phrase"] == "tok" and "trigger_word" not in body
    assert body["learning_rate"] == 2e-4 and body["subject_crop"] is False


def test_bad_options_and_budget_refused_before_any_request(
    fal: FalEmulator, library: LoRALibrary, photos: Path
) -> None:
    t = trainer(fal, library)
    with pytest.raises(InvalidRequestError, match="lora_rank|rank"):
        t.train(photos, trigger_word="tok", rank=16)
    with pytest.raises(InvalidRequestError, match="not an input"):
        t.train(photos, trigger_word="tok", learning_rate=1e-4)  # fast trainer takes none
    with pytest.raises(InvalidRequestError, match="steps"):
        t.train(photos, trigger_word="tok", steps=20000)
    with pytest.raises(BudgetExceeded, match=r"\$2\.0000"):
        t.train(photos, trigger_word="tok", steps=1000, max_cost=1.0)
    assert fal.log == []
    assert t.estimate(1000).usd == pytest.approx(2.0)


def test_failed_training_raises_with_logs_and_marks_the_handle(
    fal: FalEmulator, library: LoRALibrary, photos: Path
) -> None:
    fal.fail_jobs_with(500, {"detail": "out of GPU memory"})
    job = trainer(fal, library).train(photos, trigger_word="tok", steps=10)
    with pytest.raises(JobFailedError, match="out of GPU memory") as caught:
        job.wait()
    assert caught.value.request_id == job.id and job.status == "failed"
    assert TrainingHandle.load(job.handle_path).status == "failed"
    # a failed training does not block a new one from the same dataset
    again = trainer(fal, library).train(photos, trigger_word="tok", steps=10)
    assert again.id != job.id


def test_cancel_reaches_the_provider(fal: FalEmulator, library: LoRALibrary, photos: Path) -> None:
    fal.script.run_seconds = 30
    job = trainer(fal, library).train(photos, trigger_word="tok", steps=10)
    assert job.cancel() is True
    assert job.id in fal.cancelled and job.status == "canceled"
    assert job.refresh() == "canceled"


def test_wait_timeout_cancels_at_the_provider(
    fal: FalEmulator, library: LoRALibrary, photos: Path
) -> None:
    fal.script.run_seconds = 30
    job = trainer(fal, library).train(photos, trigger_word="tok", steps=10)
    with pytest.raises(DeadlineExceeded):
        job.wait(timeout=0.2)
    assert job.id in fal.cancel_requests and job.id in fal.cancelled
    assert TrainingHandle.load(job.handle_path).status == "canceled"


def test_resumed_handle_never_submits_again(
    fal: FalEmulator, library: LoRALibrary, photos: Path
) -> None:
    fal.script.run_seconds = 0.3
    first = trainer(fal, library).train(photos, trigger_word="tok", steps=10)
    # "the script crashed": a new process trains the same dataset, or resumes the handle
    again = trainer(fal, library).train(photos, trigger_word="tok", steps=10)
    resumed = trainer(fal, library).resume(handle_path_for(photos, "fal"))
    assert again.id == resumed.id == first.id
    lora = resumed.wait()
    assert again.wait().source == lora.source
    assert len(fal.requests(SUBMITS, method="POST")) == 1
    # by id too
    by_id = trainer(fal, library).job(str(first.id), trigger_word="tok")
    assert by_id.refresh() == "succeeded"


def test_other_options_while_one_runs_are_refused(
    fal: FalEmulator, library: LoRALibrary, photos: Path
) -> None:
    fal.script.run_seconds = 30
    job = trainer(fal, library).train(photos, trigger_word="tok", steps=10)
    with pytest.raises(InvalidRequestError, match="one active training"):
        trainer(fal, library).train(photos, trigger_word="tok", steps=20)
    job.cancel()


def test_a_submission_lost_in_flight_blocks_a_second_one(
    fal: FalEmulator, library: LoRALibrary, photos: Path
) -> None:
    fal.script.fail_after_accept(504, path=SUBMITS)
    with pytest.raises(JobMayExistError):
        trainer(fal, library).train(photos, trigger_word="tok", steps=10)
    assert TrainingHandle.load(handle_path_for(photos, "fal")).status == "submitting"
    with pytest.raises(JobMayExistError, match="may be running"):
        trainer(fal, library).train(photos, trigger_word="tok", steps=10)
    assert len(fal.requests(SUBMITS, method="POST")) == 1


def test_expired_output_url_is_a_result_unavailable_error(
    fal: FalEmulator, library: LoRALibrary, photos: Path
) -> None:
    fal.file_ttl = 0.0
    job = trainer(fal, library).train(photos, trigger_word="tok", steps=5)
    fal.script.run_seconds = 0.0
    with pytest.raises(ResultUnavailableError, match="expire") as caught:
        job.wait()
    assert caught.value.urls and caught.value.request_id == job.id


def test_a_flux2_lora_is_never_kept_as_flux1(
    fal: FalEmulator, library: LoRALibrary, photos: Path
) -> None:
    fal.training_lora = flux_lora_bytes(metadata={"modelspec.architecture": "flux-2-dev/lora"})
    job = trainer(fal, library).train(photos, trigger_word="tok", steps=5)
    with pytest.raises(InvalidRequestError, match="FLUX|flux2|flux1"):
        job.wait()
    assert library.entries() == []


def test_the_archive_is_uploaded_once_per_content(
    fal: FalEmulator, library: LoRALibrary, photos: Path, tmp_path: Path
) -> None:
    cache = UploadCache()
    t = Trainer(
        "fal",
        api_key="test",
        base_url=fal.base_url,
        transport=fal.transport(),
        poll_interval=0.01,
        library=library,
        upload_cache=cache,
    )
    t.train(photos, trigger_word="tok", steps=5).wait()
    t.train(photos, trigger_word="tok", steps=5, handle=tmp_path / "second.json").wait()
    assert fal.uploads == 1 and len(fal.requests(SUBMITS, method="POST")) == 2


async def test_async_trainer(fal: FalEmulator, library: LoRALibrary, photos: Path) -> None:
    from fluxkit.training import AsyncTrainer

    async with AsyncTrainer(
        "fal",
        api_key="test",
        base_url=fal.base_url,
        transport=fal.transport(),
        poll_interval=0.01,
        library=library,
        upload_cache=UploadCache(),
    ) as t:
        job = await t.train(photos, trigger_word="tok", steps=8)
        events = [event async for event in job.stream()]
        assert job.lora is not None
        assert any(isinstance(e, TrainingStep) and e.step == 8 for e in events)
    assert job.lora.source in [str(entry) for entry in library.entries()]
    async with AsyncTrainer(
        "fal", api_key="test", base_url=fal.base_url, transport=fal.transport(), library=library
    ) as t:
        job = t.job(str(job.id))
        assert await job.refresh() == "succeeded"


async def test_async_wait_timeout_cancels(
    fal: FalEmulator, library: LoRALibrary, photos: Path
) -> None:
    from fluxkit.training import AsyncTrainer

    fal.script.run_seconds = 30
    async with AsyncTrainer(
        "fal",
        api_key="test",
        base_url=fal.base_url,
        transport=fal.transport(),
        poll_interval=0.01,
        library=library,
        upload_cache=UploadCache(),
    ) as t:
        job = await t.train(photos, trigger_word="tok", steps=8)
        with pytest.raises(DeadlineExceeded):
            await job.wait(timeout=0.2)
    assert job.id in fal.cancelled


def test_stream_yields_events_then_the_lora(
    fal: FalEmulator, library: LoRALibrary, photos: Path
) -> None:
    job = trainer(fal, library).train(photos, trigger_word="tok", steps=6)
    kinds = {type(e).__name__ for e in job.stream()}
    assert {"TrainingStep", "StatusChanged", "Log"} <= kinds and job.lora is not None


def test_official_fal_client_speaks_the_training_routes(
    fal: FalEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Conformance (see tests/testing/test_fal_emulator.py for how fal-client is pointed)."""
    fal_client = pytest.importorskip("fal_client")
    fal_module = pytest.importorskip("fal_client.client")
    import httpx

    fal.script.run_seconds = 0.05
    with fal.serve() as root:
        for name in ("QUEUE_URL_FORMAT", "RUN_URL_FORMAT"):
            monkeypatch.setattr(fal_module, name, f"{root}/")
        for name in ("REST_URL", "CDN_URL"):
            monkeypatch.setattr(fal_module, name, root)
        client = fal_client.SyncClient(key="test")
        url = client.upload(b"PK\x05\x06" + bytes(18), "application/zip")
        handle = client.submit(
            "fal-ai/flux-lora-fast-training",
            {"images_data_url": url, "trigger_word": "tok", "steps": 20},
        )
        statuses = list(handle.iter_events(with_logs=True, interval=0.01))
        assert isinstance(statuses[-1], fal_client.Completed)
        messages = [log["message"] for log in statuses[-1].logs or []]
        assert "step 20/20 loss=0.3838" in messages
        result = handle.get()
        lora = httpx.get(result["diffusers_lora_file"]["url"]).content
        assert lora == fal.files[result["diffusers_lora_file"]["url"].rsplit("/", 1)[-1]]
        assert httpx.get(result["config_file"]["url"]).json()["trigger"] == "tok"

        fal.script.run_seconds = 30
        slow = client.submit(
            "fal-ai/flux-lora-portrait-trainer", {"images_data_url": url, "trigger_phrase": "tok"}
        )
        client.cancel("fal-ai/flux-lora-portrait-trainer", slow.request_id)
        assert slow.request_id in fal.cancelled
        fal.script.run_seconds = 0.0
        with pytest.raises(fal_client.client.FalClientError):
            client.submit("fal-ai/flux-lora-fast-training", {"steps": 5}).get()


def test_ctrl_c_while_waiting_cancels_at_the_provider(
    fal: FalEmulator, library: LoRALibrary, photos: Path
) -> None:
    fal.script.run_seconds = 30
    job = trainer(fal, library).train(photos, trigger_word="tok", steps=10)

    def interrupt(event: Any) -> None:
        if isinstance(event, StatusChanged):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        job.wait(on_event=interrupt)
    assert job.id in fal.cancelled


def test_a_packed_dataset_report_is_trained_as_is(
    fal: FalEmulator, library: LoRALibrary, photos: Path, tmp_path: Path
) -> None:
    from fluxkit.datasets import pack_dataset

    report = pack_dataset(photos, target="fal", trigger="tok", out=tmp_path / "tok.zip")
    job = trainer(fal, library).train(report, trigger_word="tok", steps=5)
    job.wait()
    body = fal.requests(SUBMITS, method="POST")[0].json()
    uploaded = fal.files[body["images_data_url"].rsplit("/", 1)[-1]]
    assert uploaded == (tmp_path / "tok.zip").read_bytes()
    assert job.handle_path == tmp_path / "tok.zip.fluxkit-train-fal.json"


def test_the_dataset_report_and_archive_checks(
    fal: FalEmulator, library: LoRALibrary, photos: Path, tmp_path: Path
) -> None:
    import zipfile

    job = trainer(fal, library).train(photos, trigger_word="tok", steps=5)
    assert job.dataset_report is not None and len(job.dataset_report.images) == 5
    thin = tmp_path / "thin.zip"
    with zipfile.ZipFile(thin, "w") as archive:
        archive.writestr("a.jpg", b"x")
    with pytest.raises(InvalidRequestError, match="holds 1"):
        trainer(fal, library).train(thin, trigger_word="tok", steps=5)
    job.cancel()


def test_a_running_fal_training_that_ignores_cancel_is_never_paid_twice(
    fal: FalEmulator, library: LoRALibrary, photos: Path
) -> None:
    fal.cancel_running = False  # fal stops only queued requests
    fal.script.run_seconds = 0.8
    job = trainer(fal, library).train(photos, trigger_word="tok", steps=10)
    with pytest.raises(DeadlineExceeded):
        job.wait(timeout=0.1)
    assert job.id in fal.cancel_requests and job.id not in fal.cancelled
    assert job.status == "running"
    assert TrainingHandle.load(job.handle_path).status == "running"
    again = trainer(fal, library).train(photos, trigger_word="tok", steps=10)
    assert again.id == job.id and again.wait().trigger_words == ("tok",)
    assert len(fal.requests(SUBMITS, method="POST")) == 1


def test_queue_positions_then_running_then_steps(
    fal: FalEmulator, library: LoRALibrary, photos: Path
) -> None:
    from fluxkit._events import Queued

    fal.queue_position, fal.script.queue_seconds = 3, 0.3
    events: list[Any] = []
    trainer(fal, library).train(photos, trigger_word="tok", steps=5).wait(on_event=events.append)
    positions = [e.position for e in events if isinstance(e, Queued)]
    assert positions and positions[0] == 3 and positions == sorted(positions, reverse=True)
    order = [type(e).__name__ for e in events]
    assert order.index("Queued") < order.index("Started") < order.index("TrainingStep")
