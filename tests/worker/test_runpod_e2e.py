"""End to end: Generator("runpod") -> the RunPod emulator on loopback -> the real
``runpod.serverless.start`` worker loop running fluxkit's handler in a subprocess -> the tiny
FLUX pipeline -> images as S3 URLs (moto). Progress, cancel and a deadline cross every layer;
the official runpod client runs against the same emulator as a conformance check."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import fluxkit
from fluxkit import DeadlineExceeded, Step
from fluxkit.testing import RunPodEmulator
from tests.worker.conftest import BUCKET, HF_TOKEN

pytest.importorskip("runpod", reason="the worker loop needs fluxkit[worker]")

KEY = "rp-emulator-key"
SIZE = (256, 256)


@pytest.fixture(scope="module")
def endpoint(
    model_dir: Path, s3_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RunPodEmulator, str, Path]]:
    emu = RunPodEmulator(api_key=KEY, workers=True, long_poll=0.3)
    folder = tmp_path_factory.mktemp("worker")
    log = folder / "worker.log"
    with emu.serve() as url:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNPOD_", "FLUXKIT_"))}
        env.update(emu.worker_env(url))
        env.update(
            FLUXKIT_MODEL=str(model_dir),
            FLUXKIT_DEVICE="cpu",
            FLUXKIT_LORA_CACHE_DIR=str(folder / "loras"),
            FLUXKIT_S3_BUCKET=BUCKET,
            BUCKET_ENDPOINT_URL=s3_url,
            BUCKET_ACCESS_KEY_ID="test",
            BUCKET_SECRET_ACCESS_KEY="test",
            OMP_NUM_THREADS="1",
            RUNPOD_LOG_LEVEL="INFO",
            HF_HUB_OFFLINE="1",  # a Hub LoRA fails at once instead of retrying DNS
        )
        with log.open("w") as sink:
            worker = subprocess.Popen(
                [sys.executable, "-m", "fluxkit.worker"],
                cwd=folder,
                env=env,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
            try:
                deadline = time.monotonic() + 120
                while not emu.workers_seen:  # the model loads before the first job-take
                    assert worker.poll() is None, log.read_text()[-3000:]
                    assert time.monotonic() < deadline, "the worker never polled for a job"
                    time.sleep(0.1)
                yield emu, url, log
            finally:
                worker.terminate()
                try:
                    worker.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    worker.kill()
                    worker.wait()
    assert HF_TOKEN not in log.read_text()


def generator(url: str, **options: Any) -> fluxkit.Generator:
    return fluxkit.Generator(
        "runpod", endpoint_id="fluxkit-endpoint", api_key=KEY, base_url=f"{url}/v2", **options
    )


def test_generate_through_the_real_worker_loop(
    endpoint: tuple[RunPodEmulator, str, Path],
) -> None:
    emu, url, _ = endpoint
    events: list[Any] = []
    with generator(url, timeout=90) as gen:
        result = gen.generate("a fox", size=SIZE, steps=4, seed=21, n=2, on_event=events.append)
    assert [image.seed for image in result.images] == [21, 22]
    for image in result.images:
        assert image.url is not None and f"/{BUCKET}/fluxkit/" in image.url  # an S3 URL
        assert image.data.startswith(b"\x89PNG") and image.to_pil().size == SIZE
    names = [type(e).__name__ for e in events]
    assert "Started" in names and names[-1] == "Completed"
    assert [e.i for e in events if isinstance(e, Step)] == [1, 2, 3, 4]
    job = emu.jobs[result.request_ids[0]]
    assert job.status == "COMPLETED" and job.worker == "emu-worker-1"
    assert {"executionTimeout", "ttl"} <= set(job.policy)  # the deadline went server-side
    assert 5000 <= job.policy["executionTimeout"] <= 90_000


def test_a_failed_job_is_a_typed_error_naming_the_field(
    endpoint: tuple[RunPodEmulator, str, Path],
) -> None:
    _, url, _ = endpoint
    with generator(url, timeout=60) as gen, pytest.raises(fluxkit.JobFailedError) as caught:
        gen.generate("a fox", size=SIZE, steps=2, loras=["hf://me/does-not-exist"])
    assert "loras[0]" in str(caught.value) and caught.value.request_id


def test_cancel_reaches_the_running_job_and_the_worker_goes_on(
    endpoint: tuple[RunPodEmulator, str, Path],
) -> None:
    emu, url, log = endpoint

    async def scenario() -> str:
        first = asyncio.Event()
        ids: list[str] = []

        def on_event(event: Any) -> None:
            if isinstance(event, fluxkit.Submitted):
                ids.append(event.request_id)
            if isinstance(event, Step):
                first.set()

        async with fluxkit.AsyncGenerator(
            "runpod",
            endpoint_id="fluxkit-endpoint",
            api_key=KEY,
            base_url=f"{url}/v2",
            timeout=90,
        ) as gen:
            task = asyncio.ensure_future(
                gen.generate("a fox", size=(512, 512), steps=50, on_event=on_event)
            )
            await asyncio.wait_for(first.wait(), 60)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        return ids[0]

    job_id = asyncio.run(scenario())
    assert job_id in emu.cancelled and emu.jobs[job_id].status == "CANCELLED"
    deadline = time.monotonic() + 20
    while "Job stopped." not in log.read_text():  # the worker loop cancelled the handler task
        assert time.monotonic() < deadline, log.read_text()[-2000:]
        time.sleep(0.1)
    assert emu.jobs[job_id].stop_sent
    with generator(url, timeout=60) as gen:  # the same worker takes the next job
        assert gen.generate("a cat", size=SIZE, steps=1).images[0].data


def test_deadline_cancels_the_job_at_runpod(endpoint: tuple[RunPodEmulator, str, Path]) -> None:
    emu, url, _ = endpoint
    with generator(url) as gen, pytest.raises(DeadlineExceeded) as caught:
        gen.generate("a fox", size=(512, 512), steps=50, timeout=1.5)
    assert caught.value.cancelled and caught.value.request_id in emu.cancelled
    job = emu.jobs[caught.value.request_id]
    assert job.policy == {"executionTimeout": 5000, "ttl": 10000}  # RunPod's minimums


def test_official_runpod_client_against_the_emulator(
    endpoint: tuple[RunPodEmulator, str, Path],
) -> None:
    import runpod

    runpod.endpoint_url_base = f"{endpoint[1]}/v2"
    client = runpod.Endpoint("fluxkit-endpoint", api_key=KEY)
    output = client.run_sync(
        {"prompt": "a fox", "size": list(SIZE), "steps": 1, "seed": 3, "output": "base64"},
        timeout=60,
    )
    assert output["seeds"] == [3] and output["images"][0]["image"].startswith("data:image/png")
    job = client.run({"prompt": "a fox", "size": list(SIZE), "steps": 1, "output": "base64"})
    assert job.status() in ("IN_QUEUE", "IN_PROGRESS", "COMPLETED")
    assert job.output(timeout=60)["images"]
    health = client.health()
    assert health["jobs"]["completed"] >= 2 and "idle" in health["workers"]
    failed = client.run({"steps": 1})  # no prompt: the SDK swallows FAILED as None
    assert failed.output(timeout=60) is None
    status = failed.rp_client.get(f"fluxkit-endpoint/status/{failed.job_id}")
    assert status["status"] == "FAILED" and "prompt" in status["error"]
