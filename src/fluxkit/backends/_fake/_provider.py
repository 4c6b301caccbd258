"""The fake provider, answered in-process: what ``Generator("fake")`` talks to by default.

Protocol (JSON over HTTP; the same one `fluxkit.testing.FakeProviderEmulator` speaks
with scripting on top — the two are written separately so each checks the other):

=======  ====================================  ==============================================
POST     /v1/generations                       submit -> 202 ``{id, status, queue_position}``;
                                               an ``Idempotency-Key`` header seen before
                                               answers the same job again (no new job)
GET      /v1/generations/{id}?wait=S           status; the COMPLETED status carries
                                               ``result`` inline
GET      /v1/generations/{id}/result           the result again, else 409
POST     /v1/generations/{id}/cancel           cancel -> 200, or 409 when already finished
=======  ====================================  ==============================================

Jobs here finish at once: it is an offline stand-in for apps and examples, not a fault lab.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import threading
from collections import OrderedDict
from typing import Any

import httpx

from fluxkit._core import _media
from fluxkit.backends._fake._render import render_fake_image

__all__ = ["FakeProvider"]

_JOB = re.compile(r"/v1/generations/(?P<id>[\w-]+)(?P<rest>/result|/cancel)?")
_KEPT_JOBS = 256
"""Finished jobs kept for result re-fetches; older ones are forgotten (bounded memory)."""


class FakeProvider(httpx.BaseTransport, httpx.AsyncBaseTransport):
    """An httpx transport that *is* the fake provider (sync and async clients)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._jobs: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._by_key: dict[str, str] = {}

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        status, body = self._answer(
            request.method, request.url.path, request.headers, request.read()
        )
        return httpx.Response(status, json=body, request=request)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        content = await request.aread()
        status, body = self._answer(request.method, request.url.path, request.headers, content)
        return httpx.Response(status, json=body, request=request)

    # -- the protocol --------------------------------------------------------------------

    def _answer(
        self, method: str, path: str, headers: httpx.Headers, content: bytes
    ) -> tuple[int, Any]:
        if path == "/v1/generations" and method == "POST":
            return self._submit(headers.get("idempotency-key"), content)
        match = _JOB.fullmatch(path)
        if match is None:
            return 404, {"detail": f"Not Found: {path}"}
        with self._lock:
            job = self._jobs.get(match["id"])
        if job is None:
            return 404, {"detail": f"job {match['id']} not found"}
        rest = match["rest"]
        if rest == "/cancel" and method == "POST":
            return 409, {"detail": "job already finished"}
        if rest == "/result" and method == "GET":
            return 200, job["result"]
        if rest is None and method == "GET":
            return 200, job
        return 405, {"detail": "Method Not Allowed"}

    def _submit(self, key: str | None, content: bytes) -> tuple[int, Any]:
        try:
            payload = json.loads(content or b"{}")
            prompt, width, height = payload["prompt"], int(payload["width"]), int(payload["height"])
            seed = int(payload["seed"])
        except (ValueError, KeyError, TypeError) as exc:
            return 422, {"detail": [{"loc": ["body"], "msg": f"invalid submission: {exc}"}]}
        with self._lock:
            if key is not None and key in self._by_key and self._by_key[key] in self._jobs:
                job = self._jobs[self._by_key[key]]
                return 202, {"id": job["id"], "status": "IN_QUEUE", "queue_position": 0}
            job_id = f"fake-{next(self._ids):06d}"
        steps = int(payload.get("steps") or 4)
        images = [
            self._image(payload, prompt, (seed + index) % 2**32, width, height)
            for index in range(int(payload.get("num_images", 1)))
        ]
        job = {
            "id": job_id,
            "status": "COMPLETED",
            "queue_position": 0,
            "progress": {"step": steps, "total": steps},
            "logs": [f"accepted {job_id}"],
            "result": {"images": images, "timings": {"inference": 0.0}},
        }
        with self._lock:
            self._jobs[job_id] = job
            if key is not None:
                self._by_key[key] = job_id
            while len(self._jobs) > _KEPT_JOBS:
                old_id, _ = self._jobs.popitem(last=False)
                self._by_key = {k: v for k, v in self._by_key.items() if v != old_id}
        return 202, {"id": job_id, "status": "IN_QUEUE", "queue_position": 0}

    @staticmethod
    def _image(
        payload: dict[str, Any], prompt: str, seed: int, width: int, height: int
    ) -> dict[str, Any]:
        init = None
        if payload.get("image"):
            init = _media.open_image(_media.decode_data_uri(payload["image"])[0])
        loras = [
            (str(item["path"]), float(item.get("scale", 1.0))) for item in payload.get("loras", [])
        ]
        picture = render_fake_image(
            prompt,
            seed,
            width,
            height,
            loras=loras,
            init_image=init,
            strength=float(payload.get("strength", 0.75)),
        )
        data = _media.encode_image(picture, payload.get("output_format", "png"))
        return {
            "seed": seed,
            "width": width,
            "height": height,
            "content_type": _media.mime_type(data),
            "has_nsfw_concepts": "nsfw" in prompt.lower(),
            "b64": base64.b64encode(data).decode(),
        }
