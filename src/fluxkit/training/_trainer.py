"""`Trainer` / `AsyncTrainer` and `TrainingJob`: one job model for fal, Replicate and local.

Hosted trainings are flows (``_fal``, ``_replicate``) run by `fluxkit._drivers`, so the money
rules hold: a training whose wait times out or is interrupted is cancelled at the provider, a
submission is never resent after a doubtful answer, and a JSON handle next to the dataset is
written before the paid call and again the moment the provider accepts it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import queue
import threading
import time
import zipfile
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import httpx

from fluxkit._config import Secret
from fluxkit._core import Flow, HttpRequest, send
from fluxkit._drivers import Deadline, FlowContext, arun_flow, run_flow
from fluxkit._events import Log, Submitted
from fluxkit._exceptions import (
    BudgetExceeded,
    DeadlineExceeded,
    InvalidRequestError,
    JobCancelledError,
    JobMayExistError,
    ProviderRejectedError,
)
from fluxkit._types import LoRA
from fluxkit._uploads import UploadCache
from fluxkit.training._events import SnapshotEvents
from fluxkit.training._hosted import HostedTrainer, follow, raise_for
from fluxkit.training._library import LoRALibrary
from fluxkit.training._model import (
    TERMINAL,
    StatusChanged,
    TrainingHandle,
    TrainingSnapshot,
    TrainingStatus,
    TrainingStep,
    handle_path_for,
)
from fluxkit.training._pricing import estimate_training

if TYPE_CHECKING:
    from fluxkit.batch._pricing import CostEstimate, PriceTable
    from fluxkit.training._local import LocalTrainingResult

__all__ = ["AsyncTrainer", "AsyncTrainingJob", "Trainer", "TrainingJob"]

BackendName = Literal["fal", "replicate", "local"]
_UPLOADS = UploadCache()
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
MIN_IMAGES = 4
_POLL = {"fal": 5.0, "replicate": 5.0}


def _fingerprint(parts: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


class _Config:
    """What Trainer and AsyncTrainer share: the provider, the library, prices, the Hub."""

    def __init__(
        self,
        backend: BackendName,
        *,
        api_key: str | Secret | None = None,
        base_url: str | None = None,
        model: str | None = None,
        destination: str | None = None,
        transport: httpx.BaseTransport | httpx.AsyncBaseTransport | None = None,
        library: LoRALibrary | str | os.PathLike[str] | None = None,
        poll_interval: float | None = None,
        prices: PriceTable | None = None,
        push_token: str | Secret | None = None,
        hub_endpoint: str | None = None,
        upload_cache: UploadCache | None = None,
        environ: Mapping[str, str] | None = None,
        rest_url: str | None = None,
        cdn_url: str | None = None,
        device: str = "cpu",
        request_timeout: float = 60.0,
    ) -> None:
        if backend not in ("fal", "replicate", "local"):
            raise InvalidRequestError("backend", backend, "fal | replicate | local")
        self.backend: BackendName = backend
        self.model = model
        self.transport = transport
        self.library = library if isinstance(library, LoRALibrary) else LoRALibrary(library)
        self.poll_interval = poll_interval if poll_interval is not None else _POLL.get(backend, 1)
        self.prices = prices
        self.push_token = push_token
        self.hub_endpoint = hub_endpoint
        self.device = device
        self.request_timeout = request_timeout
        cache = upload_cache if upload_cache is not None else _UPLOADS
        self.hosted: HostedTrainer | None = None
        if backend == "fal":
            from fluxkit.backends.fal import FalBackend
            from fluxkit.training._fal import FalTrainer

            fal = FalBackend(
                api_key=api_key,
                base_url=base_url,
                environ=environ,
                rest_url=rest_url,
                cdn_url=cdn_url,
            )
            assert fal.api_key is not None
            self.hosted = FalTrainer(
                api_key=fal.api_key,
                base_url=fal.base_url,
                rest_url=fal.rest_url,
                cdn_url=fal.cdn_url,
                model=model,
                upload_cache=cache,
            )
        elif backend == "replicate":
            from fluxkit.backends.replicate import ReplicateBackend
            from fluxkit.training._replicate import ReplicateTrainer

            rep = ReplicateBackend(api_key=api_key, base_url=base_url, environ=environ)
            assert rep.api_key is not None
            self.hosted = ReplicateTrainer(
                api_key=rep.api_key,
                base_url=rep.base_url,
                model=model,
                destination=destination,
                upload_cache=cache,
            )
        elif model is None:
            raise InvalidRequestError(
                "model", None, "a FLUX.1 diffusers folder or Hub id for local training"
            )

    @property
    def model_id(self) -> str:
        return self.hosted.model if self.hosted is not None else str(self.model)

    def estimate(self, steps: int, options: Mapping[str, Any] | None = None) -> CostEstimate:
        """The provider's list price of a training of ``steps`` steps, before it is sent."""
        return estimate_training(self.backend, self.model_id, steps, prices=self.prices)

    # -- planning a training (no I/O to providers) --------------------------------------------

    def plan(
        self,
        dataset: Any,
        trigger_word: str,
        steps: int,
        options: Mapping[str, Any],
        handle: str | os.PathLike[str] | None,
    ) -> tuple[Path, TrainingHandle, TrainingHandle | None]:
        """Where the handle goes, the fresh handle, and an existing one for this dataset."""
        source = _dataset_path(dataset)
        path = Path(handle) if handle is not None else handle_path_for(source, self.backend)
        destination = getattr(self.hosted, "destination", None)
        fresh = TrainingHandle(
            backend=self.backend,
            fingerprint=_fingerprint(
                {
                    "backend": self.backend,
                    "model": self.model_id,
                    "destination": destination,
                    "dataset": str(source),
                    "trigger": trigger_word,
                    "steps": steps,
                    "options": dict(options),
                }
            ),
            dataset=str(source),
            trigger_word=trigger_word,
            steps=steps,
            model=self.model_id,
            destination=destination,
            options={k: v for k, v in options.items() if not isinstance(v, Secret)},
        )
        existing = TrainingHandle.load(path) if path.exists() else None
        return path, fresh, existing

    def check_existing(
        self, path: Path, fresh: TrainingHandle, existing: TrainingHandle | None
    ) -> TrainingHandle | None:
        """The handle to resume instead of submitting, or None to submit. Never lets a second
        paid run start while one for this dataset may be running."""
        if existing is None or existing.status in ("failed", "canceled", "refused"):
            return None
        same = existing.fingerprint == fresh.fingerprint
        if existing.job_id is None and existing.status == "submitting":
            raise JobMayExistError(
                f"a previous submission from this dataset got no answer before the process "
                f"stopped ({path}); it may be running at {existing.backend}. Check the "
                f"provider's dashboard, then delete the handle to train again",
                backend=existing.backend,
            )
        if same:
            return existing
        if existing.status not in TERMINAL:
            raise InvalidRequestError(
                "dataset",
                existing.dataset,
                "one active training per dataset handle",
                reason=f"training {existing.job_id} ({existing.status}) was started from it "
                f"with other options; resume it with Trainer.resume({str(path)!r}), cancel it, "
                f"or pass handle= another path",
            )
        return None

    def budget(self, steps: int, options: Mapping[str, Any], max_cost: float | None) -> None:
        if max_cost is None:
            return
        cost = self.estimate(steps, options)
        if cost.usd is None or cost.usd > max_cost:
            raise BudgetExceeded(cost.usd, limit=max_cost, detail=cost.detail)

    def archive(self, dataset: Any, trigger_word: str) -> tuple[bytes, str, Any]:
        """The zip to upload, packed for this trainer when ``dataset`` is a photo folder (the
        dataset toolkit's checks: count, sizes, duplicates), and the dataset report."""
        path = _dataset_path(dataset)
        report: Any = dataset if hasattr(dataset, "output") else None
        if path.is_dir():
            from fluxkit.datasets import pack_dataset

            out = path.with_name(f"{path.name}.fluxkit-{self.backend}.zip")
            report = pack_dataset(
                path,
                target=self.backend,  # type: ignore[arg-type]
                trigger=trigger_word,
                out=out,
                overwrite=True,
            )
            if report.output is None:
                raise InvalidRequestError("dataset", str(path), "at least 4 usable images")
            path = report.output
        data = path.read_bytes()
        if not zipfile.is_zipfile(io.BytesIO(data)):
            raise InvalidRequestError("dataset", str(path), "a photo folder or a .zip archive")
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            images = [n for n in archive.namelist() if n.lower().endswith(_IMAGE_SUFFIXES)]
        if len(images) < MIN_IMAGES:
            raise InvalidRequestError(
                "dataset",
                str(path),
                f"an archive with at least {MIN_IMAGES} images",
                reason=f"it holds {len(images)}",
            )
        return data, hashlib.sha256(data).hexdigest(), report

    def finish(
        self,
        handle: TrainingHandle,
        handle_path: Path,
        files: Mapping[str, bytes],
        push: str | None,
        samples: Sequence[Any] = (),
    ) -> LoRA:
        """Keep the weights in the library (inspected), push them if asked, return the LoRA."""
        weights = files["lora.safetensors"]
        extra = {k: v for k, v in files.items() if k != "lora.safetensors"}
        record = {
            "backend": handle.backend,
            "job_id": handle.job_id,
            "model": handle.model,
            "trigger_word": handle.trigger_word,
            "steps": handle.steps,
            "dataset": handle.dataset,
            "options": handle.options,
        }
        path, info = self.library.add(weights, record, extra=extra)
        handle.lora_path, handle.lora_sha256 = (
            str(path),
            info.metadata.get("sha256") or hashlib.sha256(weights).hexdigest(),
        )
        handle.status = "succeeded"
        handle.save(handle_path)
        return self.publish(handle, handle_path, push, samples)

    def publish(
        self,
        handle: TrainingHandle,
        handle_path: Path,
        push: str | None,
        samples: Sequence[Any] = (),
    ) -> LoRA:
        assert handle.lora_path is not None
        target = push or handle.push
        if target:
            from fluxkit.hub import push_lora

            lora = push_lora(
                handle.lora_path,
                target,
                trigger_word=handle.trigger_word,
                token=self.push_token,
                endpoint=self.hub_endpoint,
                weight_name="lora.safetensors",
                samples=samples,
            )
            handle.push = target
            handle.save(handle_path)
            return lora
        return LoRA(handle.lora_path, trigger_words=(handle.trigger_word,))


def _dataset_path(dataset: Any) -> Path:
    output = getattr(dataset, "output", None)
    if output is not None:
        return Path(output).absolute()
    if isinstance(dataset, str | os.PathLike):
        path = Path(dataset).expanduser().absolute()
        if not path.exists():
            raise InvalidRequestError("dataset", str(dataset), "an existing folder or archive")
        return path
    raise InvalidRequestError("dataset", dataset, "a photo folder, a .zip or a DatasetReport")


def _options(
    steps: int,
    rank: int | None,
    learning_rate: float | None,
    trigger: str,
    extra: Mapping[str, Any],
    backend: str,
) -> dict[str, Any]:
    options: dict[str, Any] = {"trigger_word": trigger, "steps": steps}
    if rank is not None:
        if backend == "fal":
            raise InvalidRequestError("rank", rank, "not set (fal's trainers choose the rank)")
        options["rank"] = rank
    if learning_rate is not None:
        options["learning_rate"] = learning_rate
    options.update(extra)
    return options


# -- the sync side --------------------------------------------------------------------------------


class TrainingJob:
    """One training, hosted or local. Obtain from `Trainer.train`, `Trainer.job` or
    `Trainer.resume`.

    Attributes:
        id: the provider's training id (the output folder for local trainings).
        handle_path: the JSON handle that lets a later process pick this training up.
        events: every event seen so far (`StatusChanged`, `TrainingStep`, ``Log``, ...).
        logs: the log lines seen so far.
    """

    def __init__(
        self, trainer: Trainer, handle: TrainingHandle, handle_path: Path, push: str | None = None
    ) -> None:
        self._trainer = trainer
        self.handle = handle
        self.handle_path = handle_path
        self.push = push
        self.samples: Sequence[Any] = ()
        self.dataset_report: Any = None
        """The `fluxkit.datasets.DatasetReport` of the packed photos (None for a given zip)."""
        """Images for the Hub model card's gallery when the LoRA is pushed."""
        self.events: list[Any] = []
        self.logs: list[str] = []
        self.snapshot = TrainingSnapshot(_status_of(handle))
        self.lora: LoRA | None = None
        self._tracker = SnapshotEvents(handle.job_id)
        self._listeners: list[Callable[[Any], None]] = []

    @property
    def id(self) -> str | None:
        return self.handle.job_id

    @property
    def status(self) -> TrainingStatus:
        return self.snapshot.status

    @property
    def step(self) -> int:
        return self._tracker.step

    @property
    def loss(self) -> float | None:
        return self._tracker.loss

    @property
    def elapsed(self) -> float:
        """Seconds since the training was submitted."""
        return max(0.0, time.time() - self.handle.created_at)

    @property
    def cost(self) -> CostEstimate:
        """Cost so far where the provider reports it (Replicate's GPU seconds), else the list
        price of the run (fal bills per step)."""
        from fluxkit.training._pricing import actual_cost

        return actual_cost(
            self.handle.backend,
            self.handle.model,
            self.handle.steps,
            run_seconds=self.snapshot.run_seconds,
            prices=self._trainer._config.prices,
        )

    def _record(self, event: Any) -> None:
        self.events.append(event)
        if isinstance(event, Log):
            self.logs.append(event.message)
        if isinstance(event, StatusChanged):
            self.snapshot = TrainingSnapshot(event.status, step=self.step)
        if isinstance(event, TrainingStep):
            self._tracker.step, self._tracker.loss = event.step, event.loss or self._tracker.loss
        for listener in self._listeners:
            listener(event)

    def _note_status(self, snapshot: TrainingSnapshot) -> None:
        self.snapshot = snapshot
        if self.handle.status != snapshot.status and self.handle.status != "succeeded":
            self.handle.status = snapshot.status
            self.handle.error = snapshot.error
            self.handle.save(self.handle_path)

    def _context(
        self, timeout: float | None, on_event: Callable[[Any], None] | None
    ) -> FlowContext:
        def forward(event: Any) -> None:
            if isinstance(event, Submitted):
                return  # announced when the training was submitted
            self._record(event)
            if on_event is not None:
                on_event(event)

        return FlowContext(self.handle.backend, deadline=Deadline.after(timeout), on_event=forward)

    def refresh(self) -> TrainingStatus:
        """Ask the provider once; returns the status."""
        if self._trainer._config.hosted is None:  # a finished local training
            return self.status
        hosted = self._hosted()
        assert self.id is not None
        snapshot: TrainingSnapshot = self._trainer._run(
            hosted.snapshot(self.id), FlowContext(hosted.name)
        )
        for event in self._tracker.events(snapshot):
            self._record(event)
        self._note_status(snapshot)
        return snapshot.status

    def wait(
        self, timeout: float | None = None, on_event: Callable[[Any], None] | None = None
    ) -> LoRA:
        """Follow the training to its end and return the LoRA (downloaded at once into the
        library, inspected, pushed when ``push=`` was given).

        Raises:
            DeadlineExceeded: ``timeout`` passed; the training was cancelled at the provider.
            JobFailedError, JobCancelledError: the training failed or was cancelled.
            ResultUnavailableError: it succeeded but its weights could not be downloaded.
        """
        if self.lora is not None:
            return self.lora
        if self.handle.lora_path and Path(self.handle.lora_path).exists():
            self.snapshot = TrainingSnapshot("succeeded")
            self.lora = self._trainer._config.publish(
                self.handle, self.handle_path, self.push, self.samples
            )
            return self.lora
        hosted = self._hosted()
        assert self.id is not None
        ctx = self._context(timeout, on_event)
        try:
            final = self._trainer._run(
                follow(
                    hosted,
                    self.id,
                    poll_interval=self._trainer._config.poll_interval,
                    raise_on_failure=False,
                ),
                ctx,
            )
        except (DeadlineExceeded, JobCancelledError):
            self._settle()
            raise
        self._note_status(final)
        raise_for(hosted.name, self.id, final)
        _note_version(self.handle, final)
        files = self._trainer._run(hosted.weights(self.id, final), FlowContext(hosted.name))
        self.lora = self._trainer._config.finish(
            self.handle, self.handle_path, files, self.push, self.samples
        )
        return self.lora

    def stream(self, timeout: float | None = None) -> Iterator[Any]:
        """Events as they come while the training runs; ends after the last one. The LoRA is
        then in `lora` (errors are raised here)."""
        events: queue.Queue[Any] = queue.Queue()
        done = object()
        failure: list[BaseException] = []

        def work() -> None:
            try:
                self.wait(timeout, on_event=events.put)
            except BaseException as exc:  # re-raised in the caller's thread
                failure.append(exc)
            finally:
                events.put(done)

        thread = threading.Thread(target=work, name="fluxkit-training-stream", daemon=True)
        thread.start()
        try:
            while (event := events.get()) is not done:
                yield event
        finally:
            thread.join()
        if failure:
            raise failure[0]

    def cancel(self) -> bool:
        """Cancel the training at the provider; True when the provider acknowledged it."""
        hosted = self._hosted()
        assert self.id is not None
        answer = self._trainer._run(
            _send_once(hosted.cancel_request(self.id)), FlowContext(hosted.name)
        )
        self._settle()
        return bool(answer.ok)

    def _settle(self) -> None:
        """After a cancel: record what the provider says now, not what was asked. fal stops
        only queued requests; a running one goes on (and is billed), and its handle must keep
        saying so, or training the dataset again would pay for a second run."""
        try:
            self.refresh()
        except Exception:  # best effort: the handle keeps its last known state
            return

    def _hosted(self) -> HostedTrainer:
        hosted = self._trainer._config.hosted
        assert hosted is not None
        return hosted

    def __repr__(self) -> str:
        return (
            f"TrainingJob(backend={self.handle.backend!r}, id={self.id!r}, "
            f"status={self.status!r}, step={self.step})"
        )


def _note_version(handle: TrainingHandle, snapshot: TrainingSnapshot) -> None:
    """Replicate: the destination's new version (``owner/name:id``), runnable there as is."""
    version = snapshot.output.get("version") if isinstance(snapshot.output, dict) else None
    if isinstance(version, str) and version:
        handle.options["provider_version"] = version


def _kept(handle: TrainingHandle) -> bool:
    """Whether the handle's LoRA is already in the library (nothing to download)."""
    return bool(handle.lora_path) and Path(str(handle.lora_path)).exists()


def _send_once(request: HttpRequest) -> Flow[Any]:
    return (yield from send(request))


def _status_of(handle: TrainingHandle) -> TrainingStatus:
    if handle.status in ("queued", "starting", "running", "succeeded", "failed", "canceled"):
        return handle.status  # type: ignore[return-value]
    return "queued"


class LocalTrainingJob(TrainingJob):
    """A local training running in a worker thread (`wait`, `cancel`, `stream` as hosted)."""

    def __init__(
        self,
        trainer: Trainer,
        handle: TrainingHandle,
        handle_path: Path,
        push: str | None,
        config: Any,
        dataset: Path,
    ) -> None:
        super().__init__(trainer, handle, handle_path, push)
        self.config = config
        self.dataset = dataset
        self.result: LocalTrainingResult | None = None
        self._cancel = threading.Event()
        self._failure: BaseException | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        from fluxkit.training._local import train_local

        def work() -> None:
            try:
                self.result = train_local(
                    self.config, self.dataset, emit=self._record, cancel=self._cancel
                )
            except BaseException as exc:
                self._failure = exc
                status = "canceled" if isinstance(exc, JobCancelledError) else "failed"
                self._note_status(TrainingSnapshot(status, error=str(exc)))  # type: ignore[arg-type]

        self._thread = threading.Thread(target=work, name="fluxkit-local-training", daemon=True)
        self._thread.start()

    def refresh(self) -> TrainingStatus:
        return self.status

    def wait(
        self, timeout: float | None = None, on_event: Callable[[Any], None] | None = None
    ) -> LoRA:
        if self.lora is not None:
            return self.lora
        if on_event is not None:
            for event in list(self.events):
                on_event(event)
            self._listeners.append(on_event)
        try:
            assert self._thread is not None
            self._thread.join(timeout)
            if self._thread.is_alive():
                self._cancel.set()
                self._thread.join()
                raise DeadlineExceeded(
                    timeout or 0.0, backend="local", request_id=self.id, cancelled=True, local=True
                )
        finally:
            if on_event is not None:
                self._listeners.remove(on_event)
        if self._failure is not None:
            raise self._failure
        assert self.result is not None
        files = {"lora.safetensors": self.result.lora_path.read_bytes()}
        self.lora = self._trainer._config.finish(
            self.handle, self.handle_path, files, self.push, self.samples
        )
        self.snapshot = TrainingSnapshot("succeeded", step=self.config.steps)
        return self.lora

    def cancel(self) -> bool:
        self._cancel.set()
        if self._thread is not None:
            self._thread.join()
        return True


class Trainer:
    """Train a FLUX LoRA on fal, Replicate or this machine; one job model for all three.

    Example:
        ```python
        from fluxkit.training import Trainer

        trainer = Trainer("fal")                              # FAL_KEY from the environment
        job = trainer.train("photos/", trigger_word="tok", steps=1000, max_cost=3.0)
        lora = job.wait()                                     # fluxkit.LoRA, weights kept locally
        ```

    Args:
        backend: ``"fal"``, ``"replicate"`` or ``"local"``.
        api_key: the provider's key (else ``FAL_KEY`` / ``REPLICATE_API_TOKEN``).
        model: fal: ``fast`` (``fal-ai/flux-lora-fast-training``, default) or ``portrait``
            (``fal-ai/flux-lora-portrait-trainer``); Replicate: the trainer (default
            ``ostris/flux-dev-lora-trainer``); local: a FLUX.1 diffusers folder or Hub id.
        destination: Replicate only: ``owner/name`` the new versions go to (created, private,
            when missing).
        transport: an httpx transport (emulators, proxies): the one seam.
        library: where trained LoRAs are kept (a `LoRALibrary` or a folder).
        poll_interval: seconds between status reads (default 5).
        prices: a `fluxkit.batch.PriceTable` for estimates (default: the packaged one).
        push_token: Hugging Face token for ``push=`` (else ``HF_TOKEN``).
        hub_endpoint: Hugging Face endpoint for ``push=`` (else the Hub).
        upload_cache: where uploaded dataset archives are remembered.
        environ: environment to read credentials from (default ``os.environ``).
        rest_url: fal only: the storage REST root.
        cdn_url: fal only: the CDN root.
        device: local only: ``cpu``, ``cuda``, ...
        request_timeout: per-request read timeout in seconds.
    """

    def __init__(
        self,
        backend: BackendName,
        *,
        api_key: str | Secret | None = None,
        base_url: str | None = None,
        model: str | None = None,
        destination: str | None = None,
        transport: httpx.BaseTransport | httpx.AsyncBaseTransport | None = None,
        library: LoRALibrary | str | os.PathLike[str] | None = None,
        poll_interval: float | None = None,
        prices: PriceTable | None = None,
        push_token: str | Secret | None = None,
        hub_endpoint: str | None = None,
        upload_cache: UploadCache | None = None,
        environ: Mapping[str, str] | None = None,
        rest_url: str | None = None,
        cdn_url: str | None = None,
        device: str = "cpu",
        request_timeout: float = 60.0,
    ) -> None:
        self._config = _Config(
            backend,
            api_key=api_key,
            base_url=base_url,
            model=model,
            destination=destination,
            transport=transport,
            library=library,
            poll_interval=poll_interval,
            prices=prices,
            push_token=push_token,
            hub_endpoint=hub_endpoint,
            upload_cache=upload_cache,
            environ=environ,
            rest_url=rest_url,
            cdn_url=cdn_url,
            device=device,
            request_timeout=request_timeout,
        )
        transport = self._config.transport
        self._client = httpx.Client(
            transport=transport if isinstance(transport, httpx.BaseTransport) else None,
            timeout=self._config.request_timeout,
            follow_redirects=True,
        )

    @property
    def backend(self) -> str:
        return self._config.backend

    def _run(self, flow: Any, ctx: FlowContext) -> Any:
        return run_flow(flow, self._client, ctx).value

    def estimate(self, steps: int = 1000) -> CostEstimate:
        """The list price of a ``steps``-step training here (before anything is sent)."""
        return self._config.estimate(steps)

    def train(
        self,
        dataset: Any,
        *,
        trigger_word: str,
        steps: int = 1000,
        rank: int | None = None,
        learning_rate: float | None = None,
        max_cost: float | None = None,
        push: str | None = None,
        samples: Sequence[Any] = (),
        handle: str | os.PathLike[str] | None = None,
        on_event: Callable[[Any], None] | None = None,
        **options: Any,
    ) -> TrainingJob:
        """Start a training (or pick up the one this dataset's handle names) and return its job.

        Before anything is paid for: options are validated (Replicate: against the trainer's
        published input schema), the dataset is packed and checked, the price is estimated
        and compared with ``max_cost``, and a handle is written next to the dataset.

        Args:
            dataset: a photo folder, a packed ``.zip`` or a `fluxkit.datasets.DatasetReport`.
            trigger_word: the word that will call the subject up.
            steps: training steps.
            rank: LoRA rank where the trainer takes it (Replicate ``lora_rank``, local).
            learning_rate: where the trainer takes it (fal portrait, Replicate, local).
            max_cost: refuse (`BudgetExceeded`) when the estimate is above it or unknown.
            push: ``owner/name`` on the Hugging Face Hub to push the LoRA to on success
                (a private repo with a model card).
            samples: images for the card's gallery (paths or ``(path, prompt)`` pairs).
            handle: where the resume handle lives (default: beside the dataset).
            on_event: called with every event of the submission.
            options: provider fields (``is_style=True``, ``create_masks=False``, ...).

        Raises:
            BudgetExceeded: the estimate is above ``max_cost``; nothing was sent.
            JobMayExistError: a previous submission from this dataset has no known outcome.
        """
        if not isinstance(steps, int) or steps < 1:
            raise InvalidRequestError("steps", steps, "an integer >= 1")
        if not trigger_word or not isinstance(trigger_word, str):
            raise InvalidRequestError("trigger_word", trigger_word, "a non-empty string")
        config = self._config
        fields = _options(steps, rank, learning_rate, trigger_word, options, config.backend)
        path, fresh, existing = config.plan(dataset, trigger_word, steps, fields, handle)
        fresh.push = push
        resume = config.check_existing(path, fresh, existing)
        if resume is not None:
            resumed = self._job_for(resume, path, push)
            resumed.samples = samples
            return resumed
        config.budget(steps, fields, max_cost)
        if config.backend == "local":
            local = self._train_local(dataset, fresh, path, push, fields)
            local.samples = samples
            return local
        hosted = config.hosted
        assert hosted is not None
        archive, sha, report = config.archive(dataset, trigger_word)
        body = self._run(hosted.prepare(archive, sha, fields), FlowContext(hosted.name))
        fresh.options["archive_sha256"] = sha
        fresh.save(path)  # before the paid call: a crash now is seen as "submitting"
        job = TrainingJob(self, fresh, path, push)
        job.samples = samples
        job.dataset_report = report

        def accepted(event: Any) -> None:
            if isinstance(event, Submitted):
                fresh.job_id, fresh.status = event.request_id, "queued"
                fresh.save(path)  # the moment the id is known
                job._tracker.request_id = event.request_id
            if on_event is not None:
                on_event(event)

        try:
            self._run(hosted.submit(body), FlowContext(hosted.name, on_event=accepted))
        except ProviderRejectedError as exc:
            fresh.status, fresh.error = "refused", str(exc)
            fresh.save(path)
            raise
        job.snapshot = TrainingSnapshot("queued")
        return job

    def _train_local(
        self,
        dataset: Any,
        handle: TrainingHandle,
        path: Path,
        push: str | None,
        fields: Mapping[str, Any],
    ) -> TrainingJob:
        from fluxkit.training._local import LocalTrainingConfig

        source = _dataset_path(dataset)
        out = source.with_name(f"{source.name}.fluxkit-local-{handle.fingerprint[:12]}")
        extra = {k: v for k, v in fields.items() if k not in ("trigger_word", "steps")}
        known = set(LocalTrainingConfig.__dataclass_fields__) - {
            "model",
            "output_dir",
            "trigger_word",
            "steps",
            "device",
        }
        for key, value in extra.items():
            if key not in known:
                raise InvalidRequestError(
                    key, value, ", ".join(sorted(known)), reason="not a local training option"
                )
        config = LocalTrainingConfig(
            model=self._config.model_id,
            output_dir=str(out),
            trigger_word=handle.trigger_word,
            steps=handle.steps,
            device=self._config.device,
            **extra,
        )
        handle.job_id, handle.status = str(out), "starting"
        handle.save(path)
        job = LocalTrainingJob(self, handle, path, push, config, source)
        job.start()
        return job

    def _job_for(self, handle: TrainingHandle, path: Path, push: str | None) -> TrainingJob:
        if handle.backend != self._config.backend:
            raise InvalidRequestError("handle", str(path), f"a {self._config.backend} handle")
        if handle.backend == "local":
            if handle.lora_path and Path(handle.lora_path).exists():
                job = TrainingJob(self, handle, path, push)
                return job
            # resume from the newest checkpoint of the same output folder
            return self._train_local(
                handle.dataset,
                handle,
                path,
                push or handle.push,
                dict(handle.options),
            )
        return TrainingJob(self, handle, path, push or handle.push)

    def job(
        self, job_id: str, *, trigger_word: str = "TOK", steps: int = 1000, push: str | None = None
    ) -> TrainingJob:
        """A training this provider accepted earlier, by id (nothing is submitted)."""
        if self._config.hosted is None:
            raise InvalidRequestError(
                "job_id",
                job_id,
                "a hosted training id (use resume() with the handle for local trainings)",
            )
        handle = TrainingHandle(
            backend=self.backend,
            fingerprint="",
            dataset="",
            trigger_word=trigger_word,
            steps=steps,
            model=self._config.model_id,
            status="queued",
            job_id=job_id,
        )
        path = self._config.library.root / "jobs" / f"{self.backend}-{job_id}.json"
        return TrainingJob(self, handle, path, push)

    def resume(self, handle: str | os.PathLike[str]) -> TrainingJob:
        """Pick up the training a handle names: follow it, or collect its finished LoRA.
        Never submits a new paid training."""
        path = Path(handle)
        loaded = TrainingHandle.load(path)
        if loaded.job_id is None:
            raise JobMayExistError(
                f"{path} records a submission with no known outcome; check the provider",
                backend=loaded.backend,
            )
        return self._job_for(loaded, path, None)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Trainer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- the async side -------------------------------------------------------------------------------


class AsyncTrainingJob:
    """The async face of a `TrainingJob`: ``await job.wait()``, ``await job.cancel()``."""

    def __init__(self, trainer: AsyncTrainer, job: TrainingJob) -> None:
        self._trainer = trainer
        self.job = job

    def __getattr__(self, name: str) -> Any:
        return getattr(self.job, name)

    async def refresh(self) -> TrainingStatus:
        job = self.job
        if isinstance(job, LocalTrainingJob):
            return job.status
        hosted = job._hosted()
        assert job.id is not None
        snapshot: TrainingSnapshot = await self._trainer._run(
            hosted.snapshot(job.id), FlowContext(hosted.name)
        )
        for event in job._tracker.events(snapshot):
            job._record(event)
        job._note_status(snapshot)
        return snapshot.status

    async def wait(
        self,
        timeout: float | None = None,  # noqa: ASYNC109 - the same deadline as TrainingJob.wait
        on_event: Callable[[Any], None] | None = None,
    ) -> LoRA:
        """As `TrainingJob.wait`; a cancelled task cancels the training at the provider."""
        import anyio.to_thread

        job = self.job
        if isinstance(job, LocalTrainingJob) or job.lora is not None or _kept(job.handle):
            return await anyio.to_thread.run_sync(job.wait, timeout, on_event)
        hosted = job._hosted()
        assert job.id is not None
        try:
            final = await self._trainer._run(
                follow(
                    hosted,
                    job.id,
                    poll_interval=self._trainer._config.poll_interval,
                    raise_on_failure=False,
                ),
                job._context(timeout, on_event),
            )
        except (DeadlineExceeded, JobCancelledError):
            await self._settle()
            raise
        job._note_status(final)
        raise_for(hosted.name, job.id, final)
        _note_version(job.handle, final)
        files = await self._trainer._run(hosted.weights(job.id, final), FlowContext(hosted.name))
        job.lora = await anyio.to_thread.run_sync(
            self._trainer._config.finish,
            job.handle,
            job.handle_path,
            files,
            job.push,
            job.samples,
        )
        return job.lora

    async def stream(
        self,
        timeout: float | None = None,  # noqa: ASYNC109 - the same deadline as TrainingJob.wait
    ) -> AsyncIterator[Any]:
        import anyio

        send_stream, receive_stream = anyio.create_memory_object_stream[Any](1000)
        failure: list[BaseException] = []

        async def work() -> None:
            async with send_stream:
                try:
                    await self.wait(timeout, on_event=send_stream.send_nowait)
                except Exception as exc:
                    failure.append(exc)

        async with anyio.create_task_group() as group:
            group.start_soon(work)
            async with receive_stream:
                async for event in receive_stream:
                    yield event
        if failure:
            raise failure[0]

    async def cancel(self) -> bool:
        import anyio.to_thread

        job = self.job
        if isinstance(job, LocalTrainingJob):
            return await anyio.to_thread.run_sync(job.cancel)
        hosted = job._hosted()
        assert job.id is not None
        answer = await self._trainer._run(
            _send_once(hosted.cancel_request(job.id)), FlowContext(hosted.name)
        )
        await self._settle()
        return bool(answer.ok)

    async def _settle(self) -> None:
        try:
            await self.refresh()
        except Exception:  # best effort, as TrainingJob._settle
            return


class AsyncTrainer:
    """`Trainer` for async code: hosted flows on ``httpx.AsyncClient``, the local loop in a
    worker thread.

    Example:
        ```python
        from fluxkit.training import AsyncTrainer

        async with AsyncTrainer("replicate", destination="me/tok-lora") as trainer:
            job = await trainer.train("photos/", trigger_word="tok", steps=1000)
            lora = await job.wait()
        ```
    """

    def __init__(self, backend: BackendName, **config: Any) -> None:
        """Takes `Trainer`'s arguments."""
        self._sync = Trainer(backend, **config)
        self._config = self._sync._config
        transport = self._config.transport
        self._client = httpx.AsyncClient(
            transport=transport if isinstance(transport, httpx.AsyncBaseTransport) else None,
            timeout=self._config.request_timeout,
            follow_redirects=True,
        )

    async def _run(self, flow: Any, ctx: FlowContext) -> Any:
        return (await arun_flow(flow, self._client, ctx)).value

    def estimate(self, steps: int = 1000) -> CostEstimate:
        return self._sync.estimate(steps)

    async def train(self, dataset: Any, **kwargs: Any) -> AsyncTrainingJob:
        """As `Trainer.train`: uploads and the submission run on the async client."""
        import anyio.to_thread

        config = self._config
        if config.backend == "local":
            job = await anyio.to_thread.run_sync(lambda: self._sync.train(dataset, **kwargs))
            return AsyncTrainingJob(self, job)
        trigger_word = kwargs.pop("trigger_word")
        steps = kwargs.pop("steps", 1000)
        push, handle_arg = kwargs.pop("push", None), kwargs.pop("handle", None)
        samples = kwargs.pop("samples", ())
        max_cost, on_event = kwargs.pop("max_cost", None), kwargs.pop("on_event", None)
        fields = _options(
            steps,
            kwargs.pop("rank", None),
            kwargs.pop("learning_rate", None),
            trigger_word,
            kwargs,
            config.backend,
        )
        path, fresh, existing = config.plan(dataset, trigger_word, steps, fields, handle_arg)
        fresh.push = push
        resume = config.check_existing(path, fresh, existing)
        if resume is not None:
            return AsyncTrainingJob(self, self._sync._job_for(resume, path, push))
        config.budget(steps, fields, max_cost)
        hosted = config.hosted
        assert hosted is not None
        archive, sha, report = await anyio.to_thread.run_sync(config.archive, dataset, trigger_word)
        body = await self._run(hosted.prepare(archive, sha, fields), FlowContext(hosted.name))
        fresh.options["archive_sha256"] = sha
        fresh.save(path)
        job = TrainingJob(self._sync, fresh, path, push)
        job.samples = samples
        job.dataset_report = report

        def accepted(event: Any) -> None:
            if isinstance(event, Submitted):
                fresh.job_id, fresh.status = event.request_id, "queued"
                fresh.save(path)
            if on_event is not None:
                on_event(event)

        try:
            await self._run(hosted.submit(body), FlowContext(hosted.name, on_event=accepted))
        except ProviderRejectedError as exc:
            fresh.status, fresh.error = "refused", str(exc)
            fresh.save(path)
            raise
        job.snapshot = TrainingSnapshot("queued")
        return AsyncTrainingJob(self, job)

    def job(self, job_id: str, **kwargs: Any) -> AsyncTrainingJob:
        return AsyncTrainingJob(self, self._sync.job(job_id, **kwargs))

    def resume(self, handle: str | os.PathLike[str]) -> AsyncTrainingJob:
        return AsyncTrainingJob(self, self._sync.resume(handle))

    async def aclose(self) -> None:
        await self._client.aclose()
        self._sync.close()

    async def __aenter__(self) -> AsyncTrainer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
