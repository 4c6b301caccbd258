"""fluxkit's RunPod handler on the tiny FLUX pipeline, with a real S3 server (moto) and the Hub
emulator on loopback: outputs, aliases, private LoRAs, the LoRA cache, malformed input, S3
failure, cancellation, streaming and credential redaction."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from fluxkit._config import Secret
from fluxkit.worker import Worker, WorkerLimits, WorkerSettings, parse_input
from fluxkit.worker.loras import LoraStore
from fluxkit.worker.schema import WorkerInputError
from fluxkit.worker.settings import S3Settings
from tests.worker.conftest import AWS_KEY_ID, AWS_SECRET, BUCKET, HF_TOKEN

SIZE = [256, 256]


@pytest.fixture(scope="module")
def progress_log() -> list[tuple[str, dict[str, Any]]]:
    return []


@pytest.fixture(scope="module")
def worker(
    model_dir: Path,
    s3_url: str,
    hub: tuple[Any, str],
    tmp_path_factory: pytest.TempPathFactory,
    progress_log: list[tuple[str, dict[str, Any]]],
) -> Worker:
    settings = WorkerSettings(
        model=str(model_dir),
        device="cpu",
        lora_cache_dir=tmp_path_factory.mktemp("worker-cache") / "loras",
        limits=WorkerLimits(max_loras=3, max_images=3, max_steps=40),
        s3=S3Settings(
            bucket=BUCKET,
            endpoint_url=s3_url,
            access_key_id=Secret("test"),
            secret_access_key=Secret("test"),
        ),
        hub_endpoint=hub[1],
    )
    made = Worker(settings, progress=lambda job, payload: progress_log.append((job["id"], payload)))
    made.load()
    return made


def run(worker: Worker, job_input: dict[str, Any], job_id: str = "job") -> dict[str, Any]:
    """Run a job; data URIs only unless the input asks otherwise (the worker's default here is
    S3, since a bucket is configured)."""
    if isinstance(job_input, dict) and "s3_bucket" not in job_input:
        job_input = {"output": "base64", **job_input}
    return asyncio.run(worker.run({"id": job_id, "input": job_input}))


def decode(uri: str) -> bytes:
    header, _, payload = uri.partition(",")
    assert header == "data:image/png;base64"
    return base64.b64decode(payload)


# -- schema ---------------------------------------------------------------------------------------


def test_aliases_of_common_workers_are_accepted() -> None:
    parsed = parse_input(
        {
            "prompt": "a fox",
            "num_inference_steps": 4,
            "guidance_scale": 2.5,
            "num_images": 2,
            "custom_lora_repo": "me/tok-lora",
            "custom_lora_weight_name": "tok.safetensors",
            "lora_scale": 0.7,
            "hf_token": HF_TOKEN,
            "aws_access_key_id": AWS_KEY_ID,
            "aws_secret_access_key": AWS_SECRET,
            "s3_bucket": "b-out",
            "s3_prefix": "p/",
            "s3_region": "eu-west-1",
            "s3_endpoint_url": "https://s3.example.com",
            "s3Config": {
                "accessId": "a",
                "accessSecret": "s",
                "bucketName": "b",
                "endpointUrl": "u",
            },
        }
    )
    assert (parsed.steps, parsed.guidance, parsed.n) == (4, 2.5, 2)
    (lora,) = parsed.lora_list()
    assert (lora.source, lora.weight_name, lora.scale) == ("me/tok-lora", "tok.safetensors", 0.7)
    assert HF_TOKEN not in repr(parsed) and AWS_SECRET not in repr(parsed)
    assert set(parsed.secrets()) == {HF_TOKEN, AWS_KEY_ID, AWS_SECRET, "a", "s"}


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({}, "prompt"),
        ({"prompt": "x", "steps": "many"}, "steps"),
        ({"prompt": "x", "colour": "red"}, "colour"),
        ({"prompt": "x", "image": "/etc/passwd"}, "image"),
        ({"prompt": "x", "loras": [{"source": "me/x", "scale": 9}]}, "loras[0]"),
        ("not an object", "input"),
    ],
)
def test_malformed_input_names_the_field(raw: Any, field: str) -> None:
    with pytest.raises(WorkerInputError) as caught:
        parse_input(raw)
    assert field in caught.value.field


# -- the handler ----------------------------------------------------------------------------------


def test_images_as_data_uris_and_s3_urls_with_seeds_metrics_and_progress(
    worker: Worker, s3_client: Any, progress_log: list[tuple[str, dict[str, Any]]]
) -> None:
    out = run(
        worker,
        {"prompt": "a fox", "size": SIZE, "steps": 3, "seed": 11, "n": 2, "output": "both"},
        job_id="both-1",
    )
    assert "error" not in out, out
    assert out["seeds"] == [11, 12]
    for image in out["images"]:
        data = decode(image["image"])
        assert data.startswith(b"\x89PNG") and (image["width"], image["height"]) == (256, 256)
        fetched = httpx.get(image["url"])  # presigned GET against the S3 server
        assert fetched.status_code == 200 and fetched.content == data
        assert fetched.headers["content-type"] == "image/png"
    assert "X-Amz-Signature" in out["images"][0]["url"]
    metrics = out["metrics"]
    assert {
        "load_s",
        "lora_fetch_s",
        "lora_switch_s",
        "inference_s",
        "encode_s",
        "upload_s",
    } <= set(metrics)
    steps = [p for job, p in progress_log if job == "both-1"]
    assert {(p["step"], p["of"]) for p in steps} >= {(1, 3), (2, 3), (3, 3)}
    head = s3_client.head_object(Bucket=BUCKET, Key="fluxkit/both-1/0-11.png")
    assert head["Metadata"] == {"seed": "11", "job-id": "both-1"}


def test_same_seed_same_image_and_n_splits_like_single_calls(worker: Worker) -> None:
    pair = run(worker, {"prompt": "a fox", "size": SIZE, "steps": 2, "seed": 5, "n": 2})
    second = run(worker, {"prompt": "a fox", "size": SIZE, "steps": 2, "seed": 6})
    assert pair["images"][1]["image"] == second["images"][0]["image"]


def test_private_lora_with_the_requests_token_only(worker: Worker, hub: tuple[Any, str]) -> None:
    emulator, _ = hub
    base = run(worker, {"prompt": "a fox", "size": SIZE, "steps": 2, "seed": 1})
    styled = run(
        worker,
        {
            "prompt": "a fox",
            "size": SIZE,
            "num_inference_steps": 2,
            "seed": 1,
            "custom_lora_repo": "hf://me/private-lora",
            "lora_scale": 1.0,
            "hf_token": HF_TOKEN,
        },
    )
    assert "error" not in styled, styled
    assert styled["images"][0]["image"] != base["images"][0]["image"]  # the LoRA is applied
    downloads = worker.store.downloads
    again = run(
        worker,
        {
            "prompt": "a cat",
            "size": SIZE,
            "steps": 2,
            "seed": 2,
            "hf_token": HF_TOKEN,
            "loras": [{"source": "me/private-lora", "scale": 0.5}],
        },
    )
    assert "error" not in again and worker.store.downloads == downloads  # served from the cache
    # Another request without the token: the cached copy is not handed out.
    before = len(emulator.log)
    denied = run(
        worker,
        {"prompt": "a cat", "size": SIZE, "steps": 2, "loras": ["hf://me/private-lora"]},
    )
    assert "error" in denied and "loras[0]" in denied["error"]
    assert "not found or not readable" in denied["error"]
    asked = emulator.log[before:]
    assert asked and all(r.header("authorization") is None for r in asked)


def test_lora_switch_does_not_reload_the_base_model(worker: Worker) -> None:
    assert worker._backend is not None
    loads = worker._backend.stats.pipeline_loads
    for source in ("hf://me/public-lora", "hf://me/private-lora", "hf://me/public-lora"):
        out = run(
            worker,
            {"prompt": "x", "size": SIZE, "steps": 1, "loras": [source], "hf_token": HF_TOKEN},
        )
        assert "error" not in out, out
    assert worker._backend.stats.pipeline_loads == loads == 1


@pytest.mark.parametrize(
    ("job_input", "field"),
    [
        ({"size": SIZE}, "prompt"),
        ({"prompt": "x", "n": 9}, "n"),
        ({"prompt": "x", "steps": 99}, "steps"),
        ({"prompt": "x", "width": 250, "height": 256}, "width"),
        ({"prompt": "x", "loras": ["a/b", "c/d", "e/f", "g/h"]}, "loras"),
        ({"prompt": "x", "model": "someone/else"}, "model"),
        ({"prompt": "x", "loras": ["hf://me/missing-lora"]}, "loras[0]"),
    ],
)
def test_malformed_request_is_a_failed_job_naming_the_field(
    worker: Worker, job_input: dict[str, Any], field: str
) -> None:
    out = run(worker, job_input)
    assert set(out) == {"error"}
    assert field in out["error"] and "Traceback" not in out["error"]


def test_s3_failure_fails_the_job_unless_base64_was_asked_too(worker: Worker) -> None:
    out = run(
        worker,
        {
            "prompt": "x",
            "size": SIZE,
            "steps": 1,
            "s3_bucket": "no-such-bucket",
            "aws_access_key_id": "test",
            "aws_secret_access_key": "test",
        },
    )
    assert set(out) == {"error"}
    assert "s3://no-such-bucket" in out["error"] and "NoSuchBucket" in out["error"]
    both = run(
        worker,
        {
            "prompt": "x",
            "size": SIZE,
            "steps": 1,
            "s3_bucket": "no-such-bucket",
            "aws_access_key_id": "test",
            "aws_secret_access_key": "test",
            "output": "both",
        },
    )
    assert both["images"][0]["image"].startswith("data:image/png")
    assert "url" not in both["images"][0] and "NoSuchBucket" in both["warnings"][0]


def test_streaming_handler_yields_steps_then_the_result(worker: Worker) -> None:
    async def collect() -> list[dict[str, Any]]:
        return [
            item
            async for item in worker.stream(
                {"id": "s1", "input": {"prompt": "x", "size": SIZE, "steps": 3, "output": "base64"}}
            )
        ]

    items = asyncio.run(collect())
    assert [i["step"] for i in items[:-1]] == [1, 2, 3]
    assert items[-1]["images"][0]["image"].startswith("data:image/png")


def test_cancelling_the_task_stops_generation_at_the_next_step(worker: Worker) -> None:
    seen: list[dict[str, Any]] = []

    async def scenario() -> None:
        first = asyncio.Event()

        def progress(job: dict[str, Any], payload: dict[str, Any]) -> None:
            seen.append(payload)
            first.set()

        worker.progress = progress
        task = asyncio.ensure_future(
            worker.run({"id": "c1", "input": {"prompt": "x", "size": [512, 512], "steps": 40}})
        )
        await first.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    try:
        asyncio.run(scenario())
    finally:
        worker.progress = lambda job, payload: None
    assert 1 <= len(seen) < 40
    after = run(worker, {"prompt": "x", "size": SIZE, "steps": 1})  # the worker still serves
    assert "images" in after


def test_credentials_never_appear_in_logs_output_errors_or_s3(
    worker: Worker,
    s3_client: Any,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    planted = {
        "hf_token": HF_TOKEN,
        "aws_access_key_id": AWS_KEY_ID,
        "aws_secret_access_key": AWS_SECRET,
    }
    results = [
        # succeeds: private LoRA with the token; S3 through RunPod's s3Config with planted keys
        asyncio.run(
            worker.run(
                {
                    "id": "secret-ok",
                    "input": {
                        "prompt": "x",
                        "size": SIZE,
                        "steps": 1,
                        "output": "both",
                        "loras": ["hf://me/private-lora"],
                        "hf_token": HF_TOKEN,
                    },
                    "s3Config": {
                        "accessId": AWS_KEY_ID,
                        "accessSecret": AWS_SECRET,
                        "bucketName": BUCKET,
                        "endpointUrl": worker.settings.s3.endpoint_url,
                    },
                }
            )
        ),
        # fails at S3 (no such bucket) with the keys in the request
        run(
            worker,
            {"prompt": "x", "size": SIZE, "steps": 1, "s3_bucket": "missing-bucket", **planted},
        ),
        # fails at the Hub with a token that is not accepted
        run(worker, {"prompt": "x", "loras": ["hf://me/private-lora"], "hf_token": HF_TOKEN + "X"}),
        # a malformed request that still carries the credentials
        run(worker, {"prompt": "x", "steps": "bad", **planted}),
        # the token planted in the prompt and a LoRA URL: echoed text is masked too
        run(
            worker,
            {
                "prompt": f"say {HF_TOKEN}",
                "loras": [f"https://x.invalid/{HF_TOKEN}.bin"],
                "hf_token": HF_TOKEN,
            },
        ),
    ]
    assert "images" in results[0] and all("error" in r for r in results[1:])
    captured = capsys.readouterr()
    objects = s3_client.list_objects_v2(Bucket=BUCKET).get("Contents", [])
    metadata = [s3_client.head_object(Bucket=BUCKET, Key=o["Key"])["Metadata"] for o in objects]
    keys = [o["Key"] for o in objects]
    haystack = "\n".join(
        [
            json.dumps(results),
            caplog.text,
            captured.out,
            captured.err,
            json.dumps(metadata),
            json.dumps(keys),
        ]
        + [record.getMessage() for record in caplog.records]
    )
    # A SigV4 presigned URL carries the access key *id* by design (X-Amz-Credential): it may
    # appear there and nowhere else; the secret key and the Hub token appear nowhere.
    urls = [image["url"] for image in results[0]["images"]]
    assert all(f"X-Amz-Credential={AWS_KEY_ID}%2F" in url for url in urls)
    assert httpx.get(urls[0]).status_code == 200
    for url in urls:
        haystack = haystack.replace(url, "<presigned url>")
    for secret in (HF_TOKEN, AWS_KEY_ID, AWS_SECRET):
        assert secret not in haystack
    assert "[redacted]" in json.dumps(results)


def test_lora_cache_is_bounded_lru_by_content_hash(
    tmp_path: Path, lora_bytes: dict[str, bytes]
) -> None:
    import fluxkit

    def uri(data: bytes) -> str:
        return "data:application/octet-stream;base64," + base64.b64encode(data).decode()

    size = len(lora_bytes["public"])
    store = LoraStore(tmp_path, max_bytes=int(size * 2.5))
    sources = {name: fluxkit.LoRA(uri(data)) for name, data in lora_bytes.items()}
    first = store.fetch_all([(sources["private"], "l0"), (sources["public"], "l1")], token=None)
    assert store.downloads == 2 and all(item.path.is_file() for item in first)
    store.fetch_all([(sources["private"], "l0")], token=None)  # private is now the most recent
    store.fetch_all([(sources["other"], "l0")], token=None)  # over the bound: public goes
    assert store.evictions == 1
    assert not first[1].path.exists() and first[0].path.exists()
    assert store.size() <= store.max_bytes
    again = store.fetch(sources["private"], token=None, field="l0")
    assert not again.downloaded and again.sha256 == first[0].sha256


def test_test_input_runs_a_real_generation_and_exits_0(model_dir: Path, tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNPOD_")}
    env.update(
        FLUXKIT_MODEL=str(model_dir),
        FLUXKIT_DEVICE="cpu",
        OMP_NUM_THREADS="1",
        FLUXKIT_LORA_CACHE_DIR=str(tmp_path / "cache"),
    )
    job = {"input": {"prompt": "a fox", "size": SIZE, "steps": 2, "seed": 4}}
    done = subprocess.run(
        [sys.executable, "-m", "fluxkit.worker", "--test_input", json.dumps(job)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    line = next(x for x in done.stdout.splitlines() if x.startswith('{"output"'))
    output = json.loads(line)["output"]
    assert output["seeds"] == [4] and decode(output["images"][0]["image"]).startswith(b"\x89PNG")
    bad = subprocess.run(
        [sys.executable, "-m", "fluxkit.worker", "--test_input", '{"input": {"steps": 2}}'],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 1 and "prompt" in bad.stdout + bad.stderr


@pytest.fixture(autouse=True)
def _no_network_tokens(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("HF_TOKEN", raising=False)
    yield
