"""The ``fake`` backend: a real queue flow against fluxkit's own emulated provider.

It runs every part of the stack a hosted backend runs — submit, long-poll, fetch, cancel, the
drivers' retries and deadlines — against fluxkit's own offline provider, answered in-process
by default (``fluxkit.backends._fake``), or against a scriptable emulator through the one seam:
``Generator("fake", transport=FakeProviderEmulator().transport())``, or ``base_url=`` for one on
a real port. Images are deterministic functions of prompt, seed, size, LoRAs and init image, so
apps can be unit-tested offline.

```python
import fluxkit

gen = fluxkit.Generator("fake")
result = gen.generate("a red fox", seed=7, n=2)
result.seeds          # (7, 8)
```
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from fluxkit._capabilities import Capabilities
from fluxkit._config import Secret
from fluxkit._core import Flow, HttpRequest, accept, send
from fluxkit._core._media import decode_base64_image
from fluxkit._events import Log, Queued, Started, Step
from fluxkit._exceptions import JobCancelledError, JobFailedError, ResponseFormatError
from fluxkit.backends._base import Call, CallOutput, HttpBackend, ImageOutput

if TYPE_CHECKING:
    import httpx

__all__ = ["CAPABILITIES", "MODEL_ALIASES", "FakeBackend", "backend_class"]

MODEL_ALIASES: Mapping[str, str] = {
    "flux-dev": "fake-flux-dev",
    "flux-schnell": "fake-flux-schnell",
    "flux-pro": "fake-flux-pro",
}

CAPABILITIES: Mapping[str, Capabilities] = {
    "fake-flux-dev": Capabilities(
        max_loras=4,
        img2img=True,
        reference_image=True,
        max_images_per_call=4,
        seeds_per_image=True,
        local_loras=True,
        output_formats=("png", "jpeg", "webp"),
    ),
    "fake-flux-schnell": Capabilities(
        max_loras=0,
        img2img=True,
        max_images_per_call=4,
        seeds_per_image=True,
        max_steps=12,
        default_steps=4,
        guidance=False,
        default_guidance=None,
        output_formats=("png", "jpeg", "webp"),
    ),
    "fake-flux-pro": Capabilities(
        max_images_per_call=1,
        output_formats=("png", "jpeg"),
        notes="one image per call",
    ),
}

_LONG_POLL = "2"


class FakeBackend(HttpBackend):
    """Deterministic offline provider, answered in-process unless ``base_url`` points elsewhere."""

    name = "fake"
    capabilities_table = CAPABILITIES
    model_aliases = MODEL_ALIASES
    default_model = "fake-flux-dev"
    default_base_url = "http://fake.fluxkit.local"

    def deduplicates(self) -> bool:
        """The fake provider answers a repeated ``Idempotency-Key`` with the job it made."""
        return True

    def default_transport(self) -> httpx.BaseTransport | httpx.AsyncBaseTransport | None:
        """The in-process fake provider, unless ``base_url`` names a real server."""
        if self.base_url != self.default_base_url:
            return None
        from fluxkit.backends._fake._provider import FakeProvider

        return FakeProvider()

    def resolve_credentials(
        self, api_key: str | Secret | None, environ: Mapping[str, str] | None
    ) -> Secret | None:
        # The fake provider needs no key, but checks one when its emulator was given one.
        if isinstance(api_key, Secret) or api_key is None:
            return api_key
        return Secret(api_key) if api_key else None

    def _headers(self) -> dict[str, str | Secret]:
        return {"authorization": self.api_key.prefixed("Bearer ")} if self.api_key else {}

    def payload(self, call: Call) -> dict[str, Any]:
        """The submit body for ``call`` (pure; exposed for payload tests)."""
        request = call.request
        body: dict[str, Any] = {
            "prompt": request.prompt,
            "width": request.width,
            "height": request.height,
            "seed": call.seeds[0],
            "num_images": len(call.seeds),
            "steps": request.steps,
            "guidance": request.guidance,
            "output_format": request.output_format,
            "model": call.model,
            "loras": [{"path": lora.source, "scale": lora.scale} for lora in request.loras],
            **dict(request.extra),
        }
        if request.image is not None:
            body["image"] = request.image.url or request.image.data_uri()
            body["strength"] = request.effective_strength
        if request.reference_image is not None:
            body["reference_image"] = (
                request.reference_image.url or request.reference_image.data_uri()
            )
        return body

    def flow(self, call: Call) -> Flow[CallOutput]:
        base, headers = f"{self.base_url}/v1/generations", self._headers()
        # The fake provider deduplicates on this key, so a submission with no clear answer
        # (a 502, a dropped connection) is resent safely instead of raising JobMayExistError.
        key = {"idempotency-key": call.idempotency_key or secrets.token_hex(16)}
        submitted = yield from send(
            HttpRequest(
                "POST",
                base,
                headers={**headers, **key},
                json=self.payload(call),
                retry="submit-deduplicated",
            )
        )
        job = submitted.json()
        job_id = str(job["id"])
        yield from accept(
            job_id,
            HttpRequest(
                "POST",
                f"{base}/{job_id}/cancel",
                headers=headers,
                retry="never",
                raise_for_status=False,
            ),
        )
        yield Queued(job.get("queue_position"), request_id=job_id)
        return (yield from self._collect(base, job_id, headers))

    def follow(self, call: Call, request_id: str) -> Flow[CallOutput]:
        """Collect an accepted job by id: poll it and fetch its result (nothing is submitted)."""
        base, headers = f"{self.base_url}/v1/generations", self._headers()
        yield from accept(
            request_id,
            HttpRequest(
                "POST",
                f"{base}/{request_id}/cancel",
                headers=headers,
                retry="never",
                raise_for_status=False,
            ),
        )
        return (yield from self._collect(base, request_id, headers))

    def _collect(
        self, base: str, job_id: str, headers: Mapping[str, str | Secret]
    ) -> Flow[CallOutput]:
        status = yield from self._follow(base, job_id, headers)
        if status["status"] == "FAILED":
            raise JobFailedError(
                str(status.get("error") or "job failed"),
                backend=self.name,
                request_id=job_id,
                logs=status.get("logs", []),
            )
        if status["status"] == "CANCELLED":
            raise JobCancelledError(
                "cancelled at the provider", backend=self.name, request_id=job_id
            )
        result = status.get("result")
        if result is None:  # a result too large to inline, or an older server: fetch it
            fetched = yield from send(
                HttpRequest("GET", f"{base}/{job_id}/result", headers=headers)
            )
            result = fetched.json()
        return CallOutput(self._images(result, job_id), request_id=job_id)

    def _follow(
        self, base: str, job_id: str, headers: Mapping[str, str | Secret]
    ) -> Flow[dict[str, Any]]:
        """Long-poll the status until it is final, turning changes into events."""
        position: int | None = None
        steps_seen = logs_seen = 0
        started = False
        while True:
            status: dict[str, Any] = (
                yield from send(
                    HttpRequest(
                        "GET",
                        f"{base}/{job_id}",
                        headers=headers,
                        params={"wait": _LONG_POLL},
                    )
                )
            ).json()
            logs = status.get("logs", [])
            for line in logs[logs_seen:]:
                yield Log(str(line))
            logs_seen = len(logs)
            state = status.get("status")
            if state == "IN_QUEUE" and status.get("queue_position") != position:
                position = status.get("queue_position")
                yield Queued(position, request_id=job_id)
            if state in ("IN_PROGRESS", "COMPLETED") and not started:
                started = True
                yield Started(request_id=job_id)
            progress = status.get("progress") or {}
            for step in range(steps_seen + 1, int(progress.get("step", 0)) + 1):
                yield Step(step, int(progress.get("total", step)))
            steps_seen = max(steps_seen, int(progress.get("step", 0)))
            if state in ("COMPLETED", "FAILED", "CANCELLED"):
                return status

    def _images(self, result: dict[str, Any], job_id: str) -> list[ImageOutput]:
        images = []
        for entry in result.get("images", []):
            try:
                data = decode_base64_image(entry["b64"]) if "b64" in entry else None
                images.append(
                    ImageOutput(
                        seed=entry.get("seed"),
                        width=int(entry["width"]),
                        height=int(entry["height"]),
                        format=str(entry.get("content_type", "image/png")).split("/")[-1],
                        data=data,
                        url=entry.get("url"),
                        nsfw=bool(entry.get("has_nsfw_concepts")),
                    )
                )
            except (KeyError, TypeError, ValueError) as exc:
                raise ResponseFormatError(
                    f"unreadable image entry: {exc}",
                    backend=self.name,
                    request_id=job_id,
                    body=result,
                ) from exc
        return images


backend_class = FakeBackend
