"""The runpod backend against the in-process RunPod emulator (its built-in stand-in worker):
requests, events, server-side deadlines, failures, money rules and custom worker mappings."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from typing import Any

import httpx
import pytest

import fluxkit
from fluxkit import (
    AuthenticationError,
    ConfigurationError,
    DeadlineExceeded,
    JobFailedError,
    JobMayExistError,
    Log,
    Queued,
    Started,
    Step,
    UnsupportedFeatureError,
)
from fluxkit._config import Secret
from fluxkit._core import HttpRequest
from fluxkit._drivers import FlowContext, merge_json, run_flow
from fluxkit.backends._base import Call
from fluxkit.backends.runpod import RunPodBackend, parse_images, policy_for
from fluxkit.testing import RunPodEmulator
from fluxkit.worker import WorkerLimits

SIZE = (256, 256)


@pytest.fixture
def emu() -> RunPodEmulator:
    emulator = RunPodEmulator()
    emulator.script.queue_seconds = 0.05
    emulator.script.run_seconds = 0.1
    emulator.script.steps = 4
    return emulator


def test_generate_with_queue_cold_start_and_step_events(emu: RunPodEmulator) -> None:
    events: list[Any] = []
    with emu.generator(timeout=30) as gen:
        result = gen.generate("a fox", size=SIZE, steps=4, seed=9, n=2, on_event=events.append)
    assert [i.seed for i in result.images] == [9, 10]
    assert result.images[0].to_pil().size == SIZE
    assert any(isinstance(e, Queued) for e in events) and any(
        isinstance(e, Started) for e in events
    )
    (delay,) = [e for e in events if isinstance(e, Log)]
    assert "cold start included" in delay.message
    assert [e.i for e in events if isinstance(e, Step)] == [1, 2, 3, 4]
    (job,) = emu.jobs.values()
    assert job.input["n"] == 2 and job.input["seed"] == 9 and job.input["steps"] == 4
    # the time left when the request left (a little under the 30 s deadline), in ms
    assert set(job.policy) == {"executionTimeout", "ttl"}
    assert all(25_000 <= job.policy[key] <= 30_000 for key in job.policy)


def test_progress_from_the_stream_endpoint(emu: RunPodEmulator) -> None:
    events: list[Any] = []
    with emu.generator(timeout=30, progress="stream") as gen:
        result = gen.generate("a fox", size=SIZE, steps=4, on_event=events.append)
    assert result.images[0].data.startswith(b"\x89PNG")
    assert [e.i for e in events if isinstance(e, Step)] == [1, 2, 3, 4]
    assert emu.requests("/stream/")


def test_deadline_goes_in_the_body_and_cancels_the_job(emu: RunPodEmulator) -> None:
    emu.script.queue_seconds = 30
    with emu.generator() as gen, pytest.raises(DeadlineExceeded) as caught:
        gen.generate("a fox", size=SIZE, timeout=0.5)
    assert caught.value.cancelled and caught.value.request_id in emu.cancelled
    assert emu.jobs[caught.value.request_id].policy == {"executionTimeout": 5000, "ttl": 10000}


def test_no_deadline_sends_no_policy(emu: RunPodEmulator) -> None:
    with emu.generator(timeout=None, low_priority=True) as gen:
        gen.generate("a fox", size=SIZE)
    (job,) = emu.jobs.values()
    assert job.policy == {"lowPriority": True}


def test_policy_clamped_to_runpods_bounds() -> None:
    assert policy_for(0.2) == {"policy": {"executionTimeout": 5000, "ttl": 10000}}
    assert policy_for(60.0001)["policy"] == {"executionTimeout": 60001, "ttl": 60001}
    assert policy_for(1e9)["policy"]["ttl"] == 604_800_000


def test_driver_merges_deadline_json_and_reveals_secrets_only_on_the_wire() -> None:
    seen: list[dict[str, Any]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        return httpx.Response(200, json={})

    request = HttpRequest(
        "POST",
        "https://x.invalid/run",
        json={"policy": {"lowPriority": True}, "s3Config": {"accessSecret": Secret("s3cr3t")}},
        deadline_json=policy_for,
    )
    assert "s3cr3t" not in repr(request)

    def flow() -> Any:
        response = yield request
        return response

    from fluxkit._drivers import Deadline

    with httpx.Client(transport=httpx.MockTransport(answer)) as client:
        run_flow(flow(), client, FlowContext("runpod", deadline=Deadline.after(20)))
        run_flow(flow(), client, FlowContext("runpod"))
    assert seen[0]["s3Config"] == {"accessSecret": "s3cr3t"}
    assert seen[0]["policy"]["lowPriority"] is True
    assert 19000 <= seen[0]["policy"]["ttl"] <= 20000
    assert seen[1]["policy"] == {"lowPriority": True}  # no deadline: nothing merged
    assert merge_json({"a": {"b": 1}, "c": 1}, {"a": {"d": 2}, "c": 3}) == {
        "a": {"b": 1, "d": 2},
        "c": 3,
    }


def test_s3_config_is_sent_to_the_worker_and_never_shown(emu: RunPodEmulator) -> None:
    config = {"accessId": "AKIAX", "accessSecret": "topsecret", "bucketName": "out"}
    with emu.generator(timeout=30, s3_config=config) as gen:
        assert "topsecret" not in repr(gen._backend.__dict__)
        gen.generate("a fox", size=SIZE)
    (job,) = emu.jobs.values()
    assert job.s3_config == config


def test_failed_job_is_job_failed_error(emu: RunPodEmulator) -> None:
    emu.script.fail_jobs(1, "invalid input: loras[0]: me/x not found")
    with emu.generator(timeout=30) as gen, pytest.raises(JobFailedError) as caught:
        gen.generate("a fox", size=SIZE)
    assert "loras[0]" in str(caught.value) and caught.value.request_id


def test_handler_exception_json_is_unwrapped() -> None:
    from fluxkit.backends.runpod import _error_text

    raw = json.dumps(
        {"error_type": "<class 'ValueError'>", "error_message": "bad", "hostname": "h"}
    )
    assert _error_text(raw) == "<class 'ValueError'>: bad"
    assert _error_text("handler: boom \ntraceback: ...").startswith("handler: boom")


def test_wrong_key_is_authentication_error(emu: RunPodEmulator) -> None:
    with emu.generator(api_key="wrong", timeout=10) as gen, pytest.raises(AuthenticationError):
        gen.generate("a fox", size=SIZE)
    assert not emu.jobs


def test_gateway_timeout_after_submit_is_never_resubmitted(emu: RunPodEmulator) -> None:
    emu.script.fail_after_accept(504, path="/run$")
    with emu.generator(timeout=10) as gen, pytest.raises(JobMayExistError):
        gen.generate("a fox", size=SIZE)
    assert len(emu.requests("/run$")) == 1 and len(emu.jobs) == 1


def test_worker_limits_checked_before_any_request(emu: RunPodEmulator) -> None:
    with emu.generator(limits=WorkerLimits(max_loras=1, max_images=2)) as gen:
        with pytest.raises(UnsupportedFeatureError):
            gen.generate("a fox", size=SIZE, loras=["hf://a/b", "hf://c/d"])
        result = gen.generate("a fox", size=SIZE, n=3)  # split into calls of at most 2
    assert len(result.images) == 3 and len(emu.jobs) == 2
    assert not emu.requests("/run$")[0].json()["input"].get("loras")


def test_endpoint_id_is_required() -> None:
    with pytest.raises(ConfigurationError, match="endpoint_id"):
        fluxkit.Generator("runpod", api_key="k", environ={})  # type: ignore[call-arg]


def test_custom_worker_mapping(emu: RunPodEmulator) -> None:
    """A worker taking {prompt, custom_lora_repo} and answering {images: [data URIs]}."""

    def build(call: Call) -> dict[str, Any]:
        lora = call.request.loras[0].repo_id if call.request.loras else None
        return {"prompt": call.request.prompt, "custom_lora_repo": lora, "seed": call.seeds[0]}

    def parse(output: Any, call: Call) -> list[fluxkit.backends.ImageOutput]:
        plain = {"images": [image["image"] for image in output["images"]]}  # bare strings
        return parse_images(plain, call)

    with emu.generator(timeout=30, input_builder=build, output_parser=parse) as gen:
        result = gen.generate("a fox", seed=4, loras=["hf://me/tok"], size=SIZE)
    assert result.images[0].data.startswith(b"\x89PNG")
    (job,) = emu.jobs.values()
    assert job.input == {"prompt": "a fox", "custom_lora_repo": "me/tok", "seed": 4}


def test_parse_images_accepts_the_common_shapes() -> None:
    request = fluxkit.GenerationRequest(prompt="x", width=256, height=256)
    call = Call(request, "fluxkit-worker", (5,))
    from fluxkit._core._media import encode_image
    from fluxkit.testing import render_fake_image

    png = encode_image(render_fake_image("x", 5, 256, 256), "png")
    b64 = base64.b64encode(png).decode()
    assert parse_images({"images": [b64]}, call)[0].data == png
    assert parse_images({"image_url": "https://cdn/x.png"}, call)[0].url == "https://cdn/x.png"
    aggregated = [{"step": 1, "of": 1}, {"images": [{"image": "data:image/png;base64," + b64}]}]
    assert parse_images(aggregated, call)[0].seed == 5
    with pytest.raises(fluxkit.ResponseFormatError):
        parse_images({"nothing": 1}, call)


def test_registered_and_light() -> None:
    assert RunPodBackend.name == "runpod"
    code = (
        "import sys, fluxkit, fluxkit.backends.runpod, fluxkit.testing.runpod;"
        "print([m for m in ('runpod', 'boto3', 'torch', 'diffusers') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
