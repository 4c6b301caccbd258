"""The fake backend's flow, replayed from canned responses, and its payload."""

from __future__ import annotations

import base64
import json

import pytest

import fluxkit
from fluxkit._core import HttpResponse
from fluxkit.backends import Call
from fluxkit.backends.fake import FakeBackend
from fluxkit.testing import render_fake_image, replay


def answer(status: int, body: object) -> HttpResponse:
    return HttpResponse(status, {"content-type": "application/json"}, json.dumps(body).encode())


def call(**params: object) -> Call:
    request = fluxkit.GenerationRequest(prompt="fox", size="square", steps=2, seed=5, **params)
    return Call(request, "fake-flux-dev", (5,), 0)


PNG = base64.b64encode(b"\x89PNG\r\n\x1a\nrest").decode()


def test_queue_flow_submits_once_polls_and_fetches() -> None:
    backend = FakeBackend(base_url="http://fake.test", api_key="k")
    run = replay(
        backend.flow(call()),
        [
            answer(202, {"id": "j1", "status": "IN_QUEUE", "queue_position": 3}),
            answer(200, {"status": "IN_QUEUE", "queue_position": 1, "logs": ["waiting"]}),
            answer(200, {"status": "IN_PROGRESS", "progress": {"step": 1, "total": 2}}),
            answer(200, {"status": "COMPLETED", "progress": {"step": 2, "total": 2}}),
            answer(
                200,
                {
                    "images": [
                        {
                            "b64": PNG,
                            "seed": 5,
                            "width": 512,
                            "height": 512,
                            "content_type": "image/png",
                            "has_nsfw_concepts": False,
                        }
                    ]
                },
            ),
        ],
    )
    submit, *polls, fetch = run.requests
    assert (submit.method, submit.url, submit.retry) == (
        "POST",
        "http://fake.test/v1/generations",
        "submit-deduplicated",
    )
    assert len(submit.headers["idempotency-key"]) == 32
    assert submit.headers["authorization"] == fluxkit.Secret("Bearer k")  # wrapped until sent
    assert all(p.params == {"wait": "2"} and p.retry == "idempotent" for p in polls)
    assert fetch.url == "http://fake.test/v1/generations/j1/result"
    assert run.accepted is not None and run.accepted.request_id == "j1"
    assert run.accepted.cancel is not None and run.accepted.cancel.url.endswith("/j1/cancel")
    kinds = [type(e).__name__ for e in run.events]
    assert kinds == ["Queued", "Log", "Queued", "Started", "Step", "Step"]
    output = run.result
    assert output.request_id == "j1" and output.images[0].seed == 5
    assert output.images[0].data.startswith(b"\x89PNG")


def test_failed_job_raises_with_logs() -> None:
    backend = FakeBackend(base_url="http://fake.test")
    with pytest.raises(fluxkit.JobFailedError, match="boom") as info:
        replay(
            backend.flow(call()),
            [
                answer(202, {"id": "j1", "status": "IN_QUEUE"}),
                answer(200, {"status": "FAILED", "error": "boom", "logs": ["loading", "boom"]}),
            ],
        )
    assert info.value.logs == ("loading", "boom")


def test_unreadable_result_is_a_response_format_error() -> None:
    backend = FakeBackend(base_url="http://fake.test")
    with pytest.raises(fluxkit.ResponseFormatError):
        replay(
            backend.flow(call()),
            [
                answer(202, {"id": "j1"}),
                answer(200, {"status": "COMPLETED"}),
                answer(200, {"images": [{"b64": PNG}]}),
            ],
        )


def test_payload_carries_every_request_feature() -> None:
    init = render_fake_image("init", 1, 256, 256)
    backend = FakeBackend(base_url="http://fake.test")
    body = backend.payload(
        call(
            loras=[("hf://me/a/a.safetensors", 0.5)],
            image=init,
            strength=0.4,
            extra={"tile": True},
        )
    )
    assert body["loras"] == [{"path": "hf://me/a/a.safetensors", "scale": 0.5}]
    assert body["image"].startswith("data:image/png;base64,") and body["strength"] == 0.4
    assert (body["seed"], body["num_images"], body["steps"], body["tile"]) == (5, 1, 2, True)


def test_replay_refuses_unused_responses() -> None:
    backend = FakeBackend(base_url="http://fake.test")
    with pytest.raises(AssertionError, match="left unused"):
        replay(
            backend.flow(call()),
            [
                answer(202, {"id": "j1"}),
                answer(200, {"status": "COMPLETED"}),
                answer(200, {"images": []}),
                answer(200, {}),
            ],
        )


def test_cancelled_job_raises() -> None:
    backend = FakeBackend(base_url="http://fake.test")
    with pytest.raises(fluxkit.JobCancelledError):
        replay(
            backend.flow(call()), [answer(202, {"id": "j1"}), answer(200, {"status": "CANCELLED"})]
        )


def test_images_follow_their_inputs() -> None:
    base = render_fake_image("fox", 1, 256, 256)
    assert render_fake_image("fox", 1, 256, 256).tobytes() == base.tobytes()
    assert render_fake_image("fox", 2, 256, 256).tobytes() != base.tobytes()
    assert (
        render_fake_image("fox", 1, 256, 256, loras=[("hf://a/b", 1.0)]).tobytes() != base.tobytes()
    )
