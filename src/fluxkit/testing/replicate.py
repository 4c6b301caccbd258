"""Replicate's predictions API, emulated for offline tests (the official ``replicate`` SDK runs
against it too).

=======  ==========================================  ===========================================
POST     /v1/models/{owner}/{name}/predictions       create by model name (official or added)
POST     /v1/predictions                             create by ``version`` (id or owner/name:id)
GET      /v1/predictions[/{id}]                      list / get
GET      /v1/account                                 the token's account
POST     /v1/predictions/{id}/cancel                 cancel (a finished one is returned as is)
GET      /v1/models/{owner}/{name}/versions/{id}     version (what ``replicate.run`` looks up)
POST     /v1/files  (multipart, field ``content``)   upload; ``GET``/``DELETE /v1/files/{id}``
GET      /delivery/{name}                            output images (replicate.delivery stand-in)
=======  ==========================================  ===========================================

Trainings (``ostris/flux-dev-lora-trainer``) and models: see ``_replicate_trainings`` (the
table there: model get/create, trainings create/get/list/cancel, the weights ``.tar``).

Statuses ``starting`` (queued, ``script.queue_seconds``), ``processing`` (``script.run_seconds``,
logs grow: ``Using seed: N`` then a tqdm bar per step), ``succeeded``, ``failed``, ``canceled``,
``aborted`` (``Cancel-After`` passed, or `ReplicateEmulator.abort_jobs`). ``Prefer: wait``
holds the create answer. Prompts containing "nsfw" fail like cog-flux's safety checker.
"""

from __future__ import annotations

import hashlib
import itertools
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fluxkit._core import _media
from fluxkit.backends._replicate._inputs import ASPECT_RATIOS, TRAINED, dialect_for
from fluxkit.testing._emulator import Defer, Emulator, EmuRequest, EmuResponse, route
from fluxkit.testing._jobs import EmulatedJob
from fluxkit.testing._render import render_fake_image
from fluxkit.testing._replicate_trainings import TrainingsRoutes

__all__ = ["OFFICIAL_MODELS", "ReplicateEmulator"]

OFFICIAL_MODELS = (
    "black-forest-labs/flux-dev",
    "black-forest-labs/flux-dev-lora",
    "black-forest-labs/flux-schnell",
    "black-forest-labs/flux-1.1-pro",
)
NSFW_ERROR = (
    "All generated images contained NSFW content. Try running it again with a different prompt."
)
_STATUS = {
    "queued": "starting",
    "running": "processing",
    "completed": "succeeded",
    "failed": "failed",
    "cancelled": "canceled",
}
_RANGES = {
    "num_outputs": (1, 4),
    "num_inference_steps": (1, 50),
    "guidance": (0, 10),
    "guidance_scale": (0, 10),
    "prompt_strength": (0, 1),
    "width": (256, 1440),
    "height": (256, 1440),
    "lora_scale": (-1, 3),
    "extra_lora_scale": (-1, 3),
}
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)?$")


def _problem(status: int, title: str, detail: str, **extra: Any) -> EmuResponse:
    return EmuResponse(status, json={"title": title, "detail": detail, "status": status, **extra})


def _version_id(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


@dataclass
class _Prediction:
    job: EmulatedJob
    model: str
    version: str
    input: dict[str, Any]
    seed: int
    aborted_at: float | None = None
    output: list[str] | None = None


class ReplicateEmulator(TrainingsRoutes, Emulator):
    """Replicate, emulated. Scripting: ``emu.script`` (latency, queue/run time, failure bursts,
    failing jobs), `abort_jobs`, `add_model`.

    Example:
        ```python
        import fluxkit
        from fluxkit.testing.replicate import ReplicateEmulator

        emu = ReplicateEmulator()
        emu.script.run_seconds = 0.05
        gen = emu.generator()  # Generator("replicate", transport=emu.transport(), ...)
        gen.generate("a fox", seed=3, size=(512, 512))
        ```

    Attributes:
        predictions: every prediction, by id. cancelled: ids a cancel request reached.
        files: uploaded files, by id (``name``, ``content_type``, ``data``).
    """

    base_url = "http://replicate.emulator.fluxkit.local"
    backend = "replicate"

    def __init__(self, *, api_key: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.api_key = api_key
        self.predictions: dict[str, _Prediction] = {}
        self.cancelled: set[str] = set()
        self.files: dict[str, dict[str, Any]] = {}
        self.outputs: dict[str, bytes] = {}
        self.versions = {_version_id(name): name for name in OFFICIAL_MODELS}
        self._aborts = 0
        self._init_trainings()
        self._ids = itertools.count(1)
        self._epoch = time.time() - self.clock()

    # -- scripting -----------------------------------------------------------------------

    def add_model(self, name: str) -> str:
        """Register a trained LoRA model; returns its ``owner/name:version`` reference."""
        version = _version_id(name)
        self.versions[version] = name
        return f"{name}:{version}"

    def abort_jobs(self, count: int = 1) -> None:
        """The next ``count`` predictions end ``aborted`` when they would have started."""
        self._aborts += count

    # -- state ---------------------------------------------------------------------------

    def _iso(self, at: float) -> str:
        return datetime.fromtimestamp(self._epoch + at, UTC).isoformat().replace("+00:00", "Z")

    def _status(self, p: _Prediction, now: float) -> str:
        if p.aborted_at is not None and now >= p.aborted_at:
            return "aborted"
        return _STATUS[p.job.state(now)]

    def _logs(self, p: _Prediction, now: float, status: str) -> str:
        job = p.job
        if now < job.started_at or status == "aborted":
            return ""
        lines = [f"Using seed: {p.seed}"]
        if job.cancelled_at is not None:  # the bar stops where the cancel caught it
            now = min(now, job.cancelled_at - 1e-9)
        for step in range(1, job.step(now) + 1):
            percent = 100 * step // job.steps
            lines.append(
                f"{percent:3d}%|{'#' * (percent // 10):<10}| {step}/{job.steps} [00:00<00:00]"
            )
        if status == "succeeded":
            count = int(p.input.get("num_outputs", 1))
            lines.append(f"Total safe images: {count} out of {count}")
        return "\n".join(lines) + "\n"

    def _json(self, p: _Prediction, host: str) -> dict[str, Any]:
        now, job = self.clock(), p.job
        status = self._status(p, now)
        ended = {
            "succeeded": job.finished_at,
            "failed": job.finished_at,
            "canceled": job.cancelled_at,
            "aborted": p.aborted_at,
        }.get(status)
        if status == "succeeded" and p.output is None:
            self._render(p, host)
        url = f"http://{host}/v1/predictions/{job.id}"
        single = dialect_for(p.model).num_outputs is False
        return {
            "id": job.id,
            "model": p.model,
            "version": p.version,
            "input": p.input,
            "logs": self._logs(p, now, status),
            "error": job.failure if status == "failed" else None,
            "output": (p.output[0] if single else p.output)
            if status == "succeeded" and p.output
            else None,
            "status": status,
            "data_removed": False,
            "source": "api",
            "created_at": self._iso(job.created),
            "started_at": self._iso(job.started_at)
            if now >= job.started_at and status != "aborted"
            else None,
            "completed_at": self._iso(ended) if ended is not None else None,
            "urls": {
                "get": url,
                "cancel": f"{url}/cancel",
                "web": f"https://replicate.com/p/{job.id}",
            },
            "metrics": {"predict_time": job.run_seconds} if status == "succeeded" else {},
        }

    def _input_image(self, reference: str) -> Any:
        match = re.search(r"/v1/files/(\w+)$", reference)
        if match and match[1] in self.files:
            return _media.open_image(self.files[match[1]]["data"])
        if reference.startswith("data:"):
            return _media.open_image(_media.decode_data_uri(reference)[0])
        return None

    def _size(self, p: _Prediction, init: Any) -> tuple[int, int]:
        """cog-flux: img2img follows the input (fit in 1440, sides rounded to 16); "custom"
        rounds width/height to 16 (trained models) or 32 (flux-1.1-pro); else the ratio table."""
        given = p.input
        if init is not None:
            scale = min(1440 / init.width, 1440 / init.height, 1.0)
            width, height, multiple = int(init.width * scale), int(init.height * scale), 16
        elif given.get("aspect_ratio") == "custom":
            width, height = int(given["width"]), int(given["height"])
            multiple = 16 if dialect_for(p.model) is TRAINED else 32
        else:
            width, height = ASPECT_RATIOS.get(str(given.get("aspect_ratio", "1:1")), (1024, 1024))
            return (
                (width // 2, height // 2) if given.get("megapixels") == "0.25" else (width, height)
            )
        return round(width / multiple) * multiple, round(height / multiple) * multiple

    def _render(self, p: _Prediction, host: str) -> None:
        given = p.input
        init = self._input_image(str(given["image"])) if given.get("image") else None
        width, height = self._size(p, init)
        slots = (("lora_weights", "lora_scale"), ("extra_lora", "extra_lora_scale"))
        loras = [(str(given[w]), float(given.get(s, 1.0))) for w, s in slots if given.get(w)]
        fmt = str(given.get("output_format", "webp")).replace("jpg", "jpeg")
        p.output = []
        for index in range(int(given.get("num_outputs", 1))):
            # One noise batch per call (cog-flux): image i is not image 0 of seed + i.
            seed = p.seed if index == 0 else int(_version_id(f"{p.seed}/{index}")[:8], 16)
            picture = render_fake_image(
                str(given["prompt"]),
                seed,
                width,
                height,
                loras=loras,
                init_image=init,
                strength=float(given.get("prompt_strength", 0.8)),
            )
            name = f"{p.job.id}/out-{index}.{'jpg' if fmt == 'jpeg' else fmt}"
            self.outputs[name] = _media.encode_image(picture, fmt)
            p.output.append(f"http://{host}/delivery/{name}")

    # -- requests ------------------------------------------------------------------------

    def _denied(self, request: EmuRequest) -> EmuResponse | None:
        if self.api_key is None or request.header("authorization") == f"Bearer {self.api_key}":
            return None
        return _problem(401, "Unauthenticated", "You did not pass a valid authentication token")

    def _invalid(self, given: dict[str, Any]) -> EmuResponse | None:
        problems: list[tuple[str, str]] = []
        if not given.get("prompt"):
            problems.append(("prompt", "prompt is required"))
        for name, (low, high) in _RANGES.items():
            value = given.get(name)
            if isinstance(value, int | float) and not low <= value <= high:
                problems.append((name, f"Must be between {low} and {high}"))
        ratio = given.get("aspect_ratio")
        if ratio is not None and ratio not in ASPECT_RATIOS and ratio != "custom":
            problems.append(
                ("aspect_ratio", f"aspect_ratio must be one of {', '.join(ASPECT_RATIOS)}")
            )
        if given.get("output_format", "webp") not in ("webp", "jpg", "png"):
            problems.append(("output_format", "output_format must be one of webp, jpg, png"))
        if not problems:
            return None
        return _problem(
            422,
            "Input validation failed",
            "".join(f"- input.{f}: {m}\n" for f, m in problems),
            invalid_fields=[
                {"type": "invalid", "field": f"input.{f}", "description": m} for f, m in problems
            ],
        )

    def _create(self, request: EmuRequest, model: str, version: str) -> EmuResponse | Defer:
        body = request.json() or {}
        given = dict(body.get("input") or {})
        if (invalid := self._invalid(given)) is not None:
            return invalid
        now, steps = self.clock(), given.get("num_inference_steps")
        default_steps = 4 if model.endswith("schnell") else 0 if model.endswith("pro") else 28
        job = EmulatedJob(
            f"r{next(self._ids):08d}emu",
            given,
            now,
            self.script.queue_seconds,
            self.script.run_seconds,
            steps=int(steps or default_steps),
            failure=self.script.take_job_failure(),
        )
        if "nsfw" in str(given["prompt"]).lower() and not given.get("disable_safety_checker"):
            job.failure = NSFW_ERROR
        seed = given.get("seed")  # cog-flux: `if not seed: seed = random` (0 is random too)
        p = _Prediction(
            job, model, version, given, int(seed) if seed else int(job.id[1:9]) * 7919 % 65536
        )
        if self._aborts:
            self._aborts -= 1
            p.aborted_at = job.started_at
        if (deadline := self._duration(request.header("cancel-after"))) is not None:
            if now + deadline < job.started_at:
                p.aborted_at = now + deadline
            elif now + deadline < job.finished_at:
                job.cancelled_at = now + deadline
        self.predictions[job.id] = p
        host = request.header("host") or "replicate.emulator.fluxkit.local"
        hold = self._prefer_wait(request.header("prefer"))
        return self._answer(p, host, 201, now + hold)

    def _answer(self, p: _Prediction, host: str, status: int, until: float) -> EmuResponse | Defer:
        def answer() -> EmuResponse | Defer:
            with self.lock:
                now = self.clock()
                body = self._json(p, host)
                if body["status"] in ("succeeded", "failed", "canceled", "aborted") or now >= until:
                    return EmuResponse(status, json=body)
                changes = [
                    t
                    for t in (p.job.next_change(now), p.aborted_at, p.job.cancelled_at)
                    if t is not None and t > now
                ]
                return Defer(max(0.0, min([until, *changes]) - now) + 0.0005, answer)

        return answer()

    @staticmethod
    def _prefer_wait(header: str | None) -> float:
        match = re.search(r"\bwait(?:=(\d+))?", header or "")
        return 0.0 if match is None else min(60.0, float(match[1] or 60))

    @staticmethod
    def _duration(header: str | None) -> float | None:
        match = _DURATION.match((header or "").strip())
        if match is None:
            return None
        return float(match[1]) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}[match[2]]

    @route("POST", r"/v1/models/(?P<owner>[\w.-]+)/(?P<name>[\w.-]+)/predictions")
    def create_by_model(self, request: EmuRequest, owner: str, name: str) -> EmuResponse | Defer:
        if (denied := self._denied(request)) is not None:
            return denied
        model = f"{owner}/{name}"
        if model not in self.versions.values():
            return _problem(404, "Not found", "The requested resource could not be found.")
        return self._create(request, model, _version_id(model))

    @route("POST", r"/v1/predictions")
    def create_by_version(self, request: EmuRequest) -> EmuResponse | Defer:
        if (denied := self._denied(request)) is not None:
            return denied
        version = str((request.json() or {}).get("version", "")).rsplit(":", 1)[-1]
        if version not in self.versions:
            return _problem(422, "Invalid version", "Invalid version or not permitted")
        return self._create(request, self.versions[version], version)

    @route("GET", r"/v1/account")
    def account(self, request: EmuRequest) -> EmuResponse:
        """The token's account (what ``fluxkit doctor --check`` asks: free, authenticated)."""
        if (denied := self._denied(request)) is not None:
            return denied
        return EmuResponse(
            200,
            json={"type": "user", "username": "emulator", "name": "Emulator", "github_url": None},
        )

    @route("GET", r"/v1/predictions")
    def list_predictions(self, request: EmuRequest) -> EmuResponse:
        host = request.header("host") or ""
        results = [self._json(p, host) for p in reversed(list(self.predictions.values()))]
        return EmuResponse(200, json={"next": None, "previous": None, "results": results})

    @route("GET", r"/v1/predictions/(?P<pid>\w+)")
    def get(self, request: EmuRequest, pid: str) -> EmuResponse:
        if (denied := self._denied(request)) is not None:
            return denied
        if pid not in self.predictions:
            return _problem(404, "Not found", "The requested resource could not be found.")
        return EmuResponse(
            200, json=self._json(self.predictions[pid], request.header("host") or "")
        )

    @route("POST", r"/v1/predictions/(?P<pid>\w+)/cancel")
    def cancel(self, request: EmuRequest, pid: str) -> EmuResponse:
        if (denied := self._denied(request)) is not None:
            return denied
        p = self.predictions.get(pid)
        if p is None:
            return _problem(404, "Not found", "The requested resource could not be found.")
        now = self.clock()
        if self._status(p, now) in ("starting", "processing"):
            p.job.cancelled_at = now
            self.cancelled.add(pid)
        return EmuResponse(200, json=self._json(p, request.header("host") or ""))

    @route("GET", r"/v1/models/(?P<owner>[\w.-]+)/(?P<name>[\w.-]+)/versions/(?P<vid>\w+)")
    def version(self, request: EmuRequest, owner: str, name: str, vid: str) -> EmuResponse:
        if self.versions.get(vid) != f"{owner}/{name}":
            return _problem(404, "Not found", "The requested resource could not be found.")
        schema = {
            "components": {
                "schemas": {
                    "Output": {
                        "type": "array",
                        "items": {"type": "string", "format": "uri"},
                        "title": "Output",
                    }
                }
            }
        }
        return EmuResponse(
            200,
            json={
                "id": vid,
                "created_at": self._iso(0.0),
                "cog_version": "0.9.4",
                "openapi_schema": schema,
            },
        )

    @route("POST", r"/v1/files")
    def upload(self, request: EmuRequest) -> EmuResponse:
        if (denied := self._denied(request)) is not None:
            return denied
        part = _multipart_file(request.header("content-type") or "", request.body, "content")
        if part is None:
            return _problem(400, "Bad request", "missing multipart field 'content'")
        name, content_type, data = part
        file_id = f"f{next(self._ids):08d}emu"
        self.files[file_id] = {"name": name, "content_type": content_type, "data": data}
        return EmuResponse(201, json=self._file_json(file_id, request.header("host") or ""))

    def _file_json(self, file_id: str, host: str) -> dict[str, Any]:
        entry = self.files[file_id]
        data = entry["data"]
        return {
            "id": file_id,
            "name": entry["name"],
            "content_type": entry["content_type"],
            "size": len(data),
            "etag": hashlib.md5(data).hexdigest(),
            "metadata": {},
            "checksums": {
                "sha256": hashlib.sha256(data).hexdigest(),
                "md5": hashlib.md5(data).hexdigest(),
            },
            "created_at": self._iso(0.0),
            "expires_at": self._iso(24 * 3600.0),
            "urls": {"get": f"http://{host}/v1/files/{file_id}"},
        }

    @route("GET", r"/v1/files/(?P<file_id>\w+)")
    def get_file(self, request: EmuRequest, file_id: str) -> EmuResponse:
        if file_id not in self.files:
            return _problem(404, "Not found", "The requested resource could not be found.")
        return EmuResponse(200, json=self._file_json(file_id, request.header("host") or ""))

    @route("DELETE", r"/v1/files/(?P<file_id>\w+)")
    def delete_file(self, request: EmuRequest, file_id: str) -> EmuResponse:
        return (
            EmuResponse(204)
            if self.files.pop(file_id, None) is not None
            else _problem(404, "Not found", "The requested resource could not be found.")
        )

    @route("GET", r"/delivery/(?P<name>[\w.\-/]+)")
    def delivery(self, request: EmuRequest, name: str) -> EmuResponse:
        data = self.outputs.get(name)
        if data is None:
            return EmuResponse(404, body=b"Not found")
        return EmuResponse(200, body=data, headers={"content-type": _media.mime_type(data)})


def _multipart_file(content_type: str, body: bytes, field: str) -> tuple[str, str, bytes] | None:
    """(filename, content type, bytes) of multipart field ``field``."""
    match = re.search(r"boundary=\"?([^\";]+)", content_type)
    if match is None:
        return None
    for part in body.split(b"--" + match[1].encode()):
        head, _, data = part.partition(b"\r\n\r\n")
        if f'name="{field}"'.encode() not in head:
            continue
        name = re.search(rb'filename="([^"]*)"', head)
        kind = re.search(rb"Content-Type:\s*([^\r\n]+)", head, re.IGNORECASE)
        return (
            name[1].decode() if name else "file",
            kind[1].decode() if kind else "application/octet-stream",
            data.removesuffix(b"\r\n"),
        )
    return None
