"""Replicate trainings through Trainer against ReplicateEmulator (+ the official SDK)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from fluxkit._exceptions import (
    DeadlineExceeded,
    InvalidRequestError,
    JobFailedError,
    ResultUnavailableError,
)
from fluxkit._uploads import UploadCache
from fluxkit.lora import inspect_lora
from fluxkit.testing._training import REPLICATE_TRAINER_VERSION
from fluxkit.testing.replicate import ReplicateEmulator
from fluxkit.training import LoRALibrary, Trainer, TrainingStep
from fluxkit.training._replicate import weights_from_tar

TRAININGS = r"/versions/\w+/trainings$"


def trainer(emu: ReplicateEmulator, library: LoRALibrary, **options: Any) -> Trainer:
    options.setdefault("destination", "me/tok-lora")
    return Trainer(
        "replicate",
        api_key="test",
        base_url=emu.base_url,
        transport=emu.transport(),
        poll_interval=0.01,
        library=library,
        upload_cache=UploadCache(),
        **options,
    )


def test_missing_destination_is_created_private_then_trained(
    replicate_emu: ReplicateEmulator, library: LoRALibrary, photos: Path
) -> None:
    emu = replicate_emu
    events: list[Any] = []
    job = trainer(emu, library).train(
        photos, trigger_word="tok", steps=40, rank=8, learning_rate=2e-4, autocaption=False
    )
    lora = job.wait(on_event=events.append)

    assert emu.models["me/tok-lora"]["visibility"] == "private"
    created = emu.requests(r"^/v1/models$", method="POST")
    assert len(created) == 1 and created[0].json()["hardware"]
    body = emu.requests(TRAININGS, method="POST")[0].json()
    assert body["destination"] == "me/tok-lora"
    given = body["input"]
    assert given["lora_rank"] == 8 and given["trigger_word"] == "tok"
    assert given["learning_rate"] == 2e-4 and given["autocaption"] is False
    assert given["input_images"].startswith(emu.base_url + "/v1/files/")
    assert emu.requests(TRAININGS, method="POST")[0].path.endswith(
        f"/versions/{REPLICATE_TRAINER_VERSION}/trainings"
    )
    steps = [e for e in events if isinstance(e, TrainingStep)]
    assert steps[-1].step == 40 and steps[-1].loss is not None
    assert job.status == "succeeded" and inspect_lora(lora.source).rank == 4
    assert job.cost.basis == "reported" and job.cost.usd == pytest.approx(0.1 * 0.001525, abs=1e-6)
    assert Path(lora.source).with_name("config.yaml").exists()
    # the destination's new version, runnable on Replicate as is
    assert job.handle.options["provider_version"] == f"me/tok-lora:{job.id}"


def test_existing_destination_is_not_recreated(
    replicate_emu: ReplicateEmulator, library: LoRALibrary, photos: Path
) -> None:
    replicate_emu.models["me/tok-lora"] = {"visibility": "public", "hardware": "cpu"}
    trainer(replicate_emu, library).train(photos, trigger_word="tok", steps=5).wait()
    assert replicate_emu.requests(r"^/v1/models$", method="POST") == []


def test_options_checked_against_the_live_schema_before_training(
    replicate_emu: ReplicateEmulator, library: LoRALibrary, photos: Path
) -> None:
    t = trainer(replicate_emu, library)
    with pytest.raises(InvalidRequestError, match="3-6000"):
        t.train(photos, trigger_word="tok", steps=2)
    with pytest.raises(InvalidRequestError, match="not an input"):
        t.train(photos, trigger_word="tok", gradient_checkpointing=True)  # not in this version
    with pytest.raises(InvalidRequestError, match="an integer"):
        t.train(photos, trigger_word="tok", rank=8.5)
    with pytest.raises(InvalidRequestError, match="destination"):
        trainer(replicate_emu, library, destination=None).train(photos, trigger_word="tok")
    assert replicate_emu.requests(TRAININGS) == [] and replicate_emu.files == {}


def test_failure_timeout_and_cancel(
    replicate_emu: ReplicateEmulator, library: LoRALibrary, photos: Path, tmp_path: Path
) -> None:
    emu = replicate_emu
    emu.script.fail_jobs(1)
    failed = trainer(emu, library).train(photos, trigger_word="tok", steps=5)
    with pytest.raises(JobFailedError):
        failed.wait()

    emu.script.run_seconds = 30
    slow = trainer(emu, library).train(
        photos, trigger_word="tok", steps=5, handle=tmp_path / "slow.json"
    )
    with pytest.raises(DeadlineExceeded):
        slow.wait(timeout=0.2)
    assert slow.id in emu.trainings_cancelled

    other = trainer(emu, library).train(
        photos, trigger_word="tok", steps=5, handle=tmp_path / "other.json"
    )
    assert other.cancel() and other.id in emu.trainings_cancelled
    assert other.refresh() == "canceled"


def test_expired_weights_url(
    replicate_emu: ReplicateEmulator, library: LoRALibrary, photos: Path
) -> None:
    replicate_emu.weights_ttl = 0.0
    replicate_emu.script.run_seconds = 0.0
    job = trainer(replicate_emu, library).train(photos, trigger_word="tok", steps=5)
    with pytest.raises(ResultUnavailableError, match="weights"):
        job.wait()


def test_job_by_id(replicate_emu: ReplicateEmulator, library: LoRALibrary, photos: Path) -> None:
    first = trainer(replicate_emu, library).train(photos, trigger_word="tok", steps=5)
    again = trainer(replicate_emu, library).job(str(first.id), trigger_word="tok")
    assert again.wait().trigger_words == ("tok",)
    assert len(replicate_emu.requests(TRAININGS, method="POST")) == 1


def test_weights_tar_rejects_an_archive_without_safetensors() -> None:
    import io
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        info = tarfile.TarInfo("../../etc/passwd")
        info.size = 1
        archive.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(Exception, match="no .safetensors"):
        weights_from_tar(buffer.getvalue(), "t1")


def test_official_replicate_sdk_speaks_the_training_routes(
    replicate_emu: ReplicateEmulator,
) -> None:
    replicate = pytest.importorskip("replicate")
    replicate_emu.script.run_seconds = 0.05
    replicate_emu.models["me/sdk"] = {"visibility": "private", "hardware": "cpu"}
    with replicate_emu.serve() as url:
        client = replicate.Client(api_token="test", base_url=url)
        model = client.models.get("ostris/flux-dev-lora-trainer")
        assert model.latest_version is not None
        assert model.latest_version.id == REPLICATE_TRAINER_VERSION
        training = client.trainings.create(
            version=f"ostris/flux-dev-lora-trainer:{REPLICATE_TRAINER_VERSION}",
            input={"input_images": f"{url}/v1/files/none", "steps": 10},
            destination="me/sdk",
        )
        assert training.status in ("starting", "processing") and training.id
        import time

        for _ in range(200):
            training.reload()
            if training.status == "succeeded":
                break
            time.sleep(0.01)
        assert training.status == "succeeded" and training.output["weights"].endswith(".tar")
        assert "loss" in training.logs
        second = client.trainings.create(
            version=f"ostris/flux-dev-lora-trainer:{REPLICATE_TRAINER_VERSION}",
            input={"steps": 10},
            destination="me/sdk",
        )
        second.cancel()
        assert client.trainings.get(second.id).status in ("canceled", "succeeded")
        assert [t.id for t in client.trainings.list().results][:2] == [second.id, training.id]
