"""Replicate's trainings and models API, emulated (mixed into ``ReplicateEmulator``).

=======  ===================================================  ====================================
GET      /v1/models/{owner}/{name}                            model + ``latest_version`` (schema)
POST     /v1/models                                           create (``owner, name, visibility,
                                                              hardware``); 409 when it exists
POST     /v1/models/{o}/{n}/versions/{v}/trainings            ``{destination, input}`` -> 201;
                                                              404 for a missing destination, 422
                                                              for input the schema refuses
GET      /v1/trainings[/{id}]                                 list / get (``logs`` grow: a tqdm
                                                              bar with ``loss``)
POST     /v1/trainings/{id}/cancel                            cancel
GET      /weights/{id}/trained_model.tar                      the weights (expire: ``weights_ttl``)
=======  ===================================================  ====================================
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fluxkit.testing._emulator import EmuRequest, EmuResponse, Script, route
from fluxkit.testing._jobs import EmulatedJob
from fluxkit.testing._training import (
    REPLICATE_TRAINER,
    REPLICATE_TRAINER_VERSION,
    REPLICATE_TRAINING_INPUT,
    flux_lora_bytes,
    training_log_lines,
    weights_tar,
)

__all__ = ["TrainingsRoutes"]

_STATUS = {
    "queued": "starting",
    "running": "processing",
    "completed": "succeeded",
    "failed": "failed",
    "cancelled": "canceled",
}
_KINDS: dict[str, tuple[type, ...]] = {
    "integer": (int,),
    "number": (int, float),
    "string": (str,),
    "boolean": (bool,),
}


def _problem(status: int, title: str, detail: str) -> EmuResponse:
    return EmuResponse(status, json={"title": title, "detail": detail, "status": status})


@dataclass
class _Training:
    job: EmulatedJob
    destination: str
    version: str


class TrainingsRoutes:
    """Training state and routes; the host emulator provides clock, script, lock and auth.

    Attributes:
        trainings: every training, by id. models: models that exist (``owner/name`` -> dict).
        trainings_cancelled: ids a cancel request stopped. training_lora: the LoRA the
        trainer outputs. weights_ttl: seconds the weights URL stays valid after success.
    """

    clock: Callable[[], float]
    script: Script
    _denied: Callable[[EmuRequest], EmuResponse | None]
    _iso: Callable[[float], str]

    def _init_trainings(self) -> None:
        self.trainings: dict[str, _Training] = {}
        self.trainings_cancelled: set[str] = set()
        self.models: dict[str, dict[str, Any]] = {
            REPLICATE_TRAINER: {"visibility": "public", "hardware": "gpu-h100"}
        }
        self.training_lora: bytes | None = None
        self.weights_ttl: float | None = None
        self._training_ids = 0

    def _model_json(self, name: str) -> dict[str, Any]:
        owner, short = name.split("/", 1)
        latest = None
        if name == REPLICATE_TRAINER:
            schema = {
                "components": {
                    "schemas": {
                        "TrainingInput": {"type": "object", "properties": REPLICATE_TRAINING_INPUT},
                        "TrainingOutput": {
                            "type": "object",
                            "required": ["weights"],
                            "properties": {"weights": {"type": "string", "format": "uri"}},
                        },
                    }
                }
            }
            latest = {
                "id": REPLICATE_TRAINER_VERSION,
                "openapi_schema": schema,
                "cog_version": "0.9.13",
                "created_at": "2024-10-15T00:00:00Z",
            }
        return {
            "owner": owner,
            "name": short,
            "url": f"https://replicate.com/{name}",
            "visibility": self.models[name].get("visibility", "private"),
            "latest_version": latest,
            "description": None,
            "run_count": 0,
        }

    @route("GET", r"/v1/models/(?P<owner>[\w.-]+)/(?P<name>[\w.-]+)")
    def get_model(self, request: EmuRequest, owner: str, name: str) -> EmuResponse:
        if (denied := self._denied(request)) is not None:
            return denied
        if f"{owner}/{name}" not in self.models:
            return _problem(404, "Not found", "The requested resource could not be found.")
        return EmuResponse(200, json=self._model_json(f"{owner}/{name}"))

    @route("POST", r"/v1/models")
    def create_model(self, request: EmuRequest) -> EmuResponse:
        if (denied := self._denied(request)) is not None:
            return denied
        body = request.json() or {}
        missing = [k for k in ("owner", "name", "visibility", "hardware") if not body.get(k)]
        if missing:
            return _problem(422, "Invalid input", f"missing: {', '.join(missing)}")
        name = f"{body['owner']}/{body['name']}"
        if name in self.models:
            return _problem(409, "Conflict", "A model with that name already exists")
        self.models[name] = {"visibility": body["visibility"], "hardware": body["hardware"]}
        return EmuResponse(201, json=self._model_json(name))

    @route(
        "POST",
        r"/v1/models/(?P<owner>[\w.-]+)/(?P<name>[\w.-]+)/versions/(?P<vid>\w+)/trainings",
    )
    def create_training(self, request: EmuRequest, owner: str, name: str, vid: str) -> EmuResponse:
        if (denied := self._denied(request)) is not None:
            return denied
        if f"{owner}/{name}" != REPLICATE_TRAINER or vid != REPLICATE_TRAINER_VERSION:
            return _problem(404, "Not found", "The requested resource could not be found.")
        body = request.json() or {}
        destination, given = body.get("destination"), body.get("input")
        if not isinstance(destination, str) or not isinstance(given, dict):
            return _problem(422, "Invalid input", "destination and input are required")
        if destination not in self.models:
            return _problem(
                404,
                "Not found",
                f"The destination model {destination} does not exist. Create it first.",
            )
        for key, value in given.items():
            spec = REPLICATE_TRAINING_INPUT.get(key)
            kinds = _KINDS.get(str(spec.get("type"))) if spec else None
            if spec is None or kinds is None or not isinstance(value, kinds):
                return _problem(422, "Input validation failed", f"- input.{key}: invalid")
            low, high = spec.get("minimum"), spec.get("maximum")
            if (low is not None and value < low) or (high is not None and value > high):
                return _problem(
                    422,
                    "Input validation failed",
                    f"- input.{key}: Must be between {low} and {high}",
                )
        self._training_ids += 1
        job = EmulatedJob(
            f"t{self._training_ids:08d}emu",
            given,
            self.clock(),
            self.script.queue_seconds,
            self.script.run_seconds,
            steps=int(given.get("steps", 1000)),
            failure=self.script.take_job_failure(),
        )
        self.trainings[job.id] = _Training(job, destination, vid)
        return EmuResponse(201, json=self._training_json(self.trainings[job.id], request))

    def _training_json(self, t: _Training, request: EmuRequest) -> dict[str, Any]:
        now, job = self.clock(), t.job
        state = job.state(now)
        status = _STATUS[state]
        host = request.header("host") or "replicate.emulator.fluxkit.local"
        url = f"http://{host}/v1/trainings/{job.id}"
        seen = min(now, job.cancelled_at) if job.cancelled_at is not None else now
        logs = (
            ""
            if state == "queued"
            else "\n".join(training_log_lines(job.step(seen - 1e-9), job.steps, style="ai-toolkit"))
        )
        output = None
        if status == "succeeded":
            output = {
                "version": f"{t.destination}:{job.id}",
                "weights": f"http://{host}/weights/{job.id}/trained_model.tar",
            }
        ended = {
            "succeeded": job.finished_at,
            "failed": job.finished_at,
            "canceled": job.cancelled_at,
        }.get(status)
        return {
            "id": job.id,
            "model": REPLICATE_TRAINER,
            "version": t.version,
            "destination": t.destination,
            "input": job.payload,
            "logs": logs,
            "error": job.failure if status == "failed" else None,
            "status": status,
            "source": "api",
            "created_at": self._iso(job.created),
            "started_at": self._iso(job.started_at) if state != "queued" else None,
            "completed_at": self._iso(ended) if ended is not None else None,
            "output": output,
            "metrics": {"predict_time": job.run_seconds} if status == "succeeded" else {},
            "urls": {"get": url, "cancel": f"{url}/cancel"},
        }

    @route("GET", r"/v1/trainings")
    def list_trainings(self, request: EmuRequest) -> EmuResponse:
        if (denied := self._denied(request)) is not None:
            return denied
        results = [self._training_json(t, request) for t in reversed(self.trainings.values())]
        return EmuResponse(200, json={"next": None, "previous": None, "results": results})

    @route("GET", r"/v1/trainings/(?P<tid>\w+)")
    def get_training(self, request: EmuRequest, tid: str) -> EmuResponse:
        if (denied := self._denied(request)) is not None:
            return denied
        if tid not in self.trainings:
            return _problem(404, "Not found", "The requested resource could not be found.")
        return EmuResponse(200, json=self._training_json(self.trainings[tid], request))

    @route("POST", r"/v1/trainings/(?P<tid>\w+)/cancel")
    def cancel_training(self, request: EmuRequest, tid: str) -> EmuResponse:
        if (denied := self._denied(request)) is not None:
            return denied
        t = self.trainings.get(tid)
        if t is None:
            return _problem(404, "Not found", "The requested resource could not be found.")
        now = self.clock()
        if t.job.state(now) in ("queued", "running"):
            t.job.cancelled_at = now
            self.trainings_cancelled.add(tid)
        return EmuResponse(200, json=self._training_json(t, request))

    @route("GET", r"/weights/(?P<tid>\w+)/trained_model\.tar")
    def trained_weights(self, request: EmuRequest, tid: str) -> EmuResponse:
        t = self.trainings.get(tid)
        now = self.clock()
        if t is None or t.job.state(now) != "completed":
            return EmuResponse(404, body=b"Not found")
        if self.weights_ttl is not None and now > t.job.finished_at + self.weights_ttl:
            return EmuResponse(404, body=b"Not found")  # an expired delivery URL
        lora = self.training_lora if self.training_lora is not None else flux_lora_bytes()
        return EmuResponse(
            200, body=weights_tar(lora), headers={"content-type": "application/x-tar"}
        )
