"""The RunPod handler: one job in, images (data URIs and/or S3 URLs), seeds and metrics out.

``handler`` is an ``async def`` (RunPod awaits it on its event loop); the pipeline runs in a
worker thread, so heartbeats and the stop channel keep being served, and when RunPod stops a job
(``/cancel``, an ``executionTimeout``) by cancelling its task, generation stops at the next
denoising step. ``stream_handler`` is the same job as an async generator: one
``{"step", "of"}`` item per step, then the result (``return_aggregate_stream`` keeps
``/status`` and ``/runsync`` working).

Nothing here imports runpod: progress goes through a callback, which the entry point
(``python -m fluxkit.worker``) wires to ``runpod.serverless.progress_update``.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING, Any

from fluxkit._events import Event, Step
from fluxkit._exceptions import FluxkitError, InvalidRequestError
from fluxkit._types import GenerationRequest, LoRA
from fluxkit.worker.loras import LoraFetchError, LoraStore
from fluxkit.worker.output import S3Uploader, S3UploadError, s3_target
from fluxkit.worker.redact import Redactor
from fluxkit.worker.schema import WorkerInput, WorkerInputError, parse_input, raw_secrets
from fluxkit.worker.settings import WorkerSettings

if TYPE_CHECKING:
    from fluxkit._generator import AsyncGenerator
    from fluxkit.worker._timed import TimedBackend

__all__ = ["Progress", "Worker", "default_worker", "handler", "stream_handler"]

Progress = Callable[[dict[str, Any], dict[str, Any]], None]
"""``progress(job, payload)``: ``runpod.serverless.progress_update`` in production."""


def _runpod_progress(job: dict[str, Any], payload: dict[str, Any]) -> None:
    import sys

    module = sys.modules.get("runpod.serverless")
    if module is not None and job.get("id") != "local_test":
        module.progress_update(job, payload)


class Worker:
    """A loaded base model and the per-request machinery around it.

    Example:
        ```python
        import asyncio
        from fluxkit.worker import Worker, WorkerSettings

        worker = Worker(WorkerSettings(model="/models/flux-dev"))
        worker.load()                                   # the cold start, once
        result = asyncio.run(worker.run({"id": "j1", "input": {"prompt": "a fox"}}))
        result["images"][0]["seed"]
        ```
    """

    def __init__(
        self, settings: WorkerSettings | None = None, *, progress: Progress | None = None
    ) -> None:
        self.settings = settings or WorkerSettings.from_env()
        self.progress = progress or _runpod_progress
        self.store = LoraStore(
            self.settings.lora_cache_dir,
            max_bytes=self.settings.lora_cache_bytes,
            hub_endpoint=self.settings.hub_endpoint,
        )
        self.cold_start: dict[str, float] = {}
        self._backend: TimedBackend | None = None
        self._generator: AsyncGenerator | None = None
        self._preloaded: tuple[LoRA, ...] = ()
        self._reported_load = False
        self.last_pipeline_seconds = 0.0

    # -- cold start -------------------------------------------------------------------------

    def load(self) -> dict[str, float]:
        """Load the base model (and preloaded LoRAs) now; returns the cold-start breakdown."""
        if self._backend is not None:
            return self.cold_start
        started = time.perf_counter()
        from fluxkit._generator import AsyncGenerator
        from fluxkit.worker._timed import TimedBackend

        settings = self.settings
        backend = TimedBackend(
            model=settings.model,
            device=settings.device,
            dtype=settings.dtype,
            offload=settings.offload,  # type: ignore[arg-type]
            vae_tiling=settings.vae_tiling,
            token=settings.hf_token.reveal() if settings.hf_token else None,
            max_loaded_loras=settings.max_loaded_loras,
            lora_cache_dir=settings.lora_cache_dir.parent / "resolver",
            ip_adapter=settings.ip_adapter,
            max_sequence_length=settings.max_sequence_length,
        )
        imported = time.perf_counter()
        pipe = backend.load()
        loaded = time.perf_counter()
        preloaded = self._preload(pipe, backend)
        done = time.perf_counter()
        self._backend = backend
        self._generator = AsyncGenerator(backend, timeout=None)
        self.cold_start = {
            "imports_s": imported - started,
            "pipeline_load_s": loaded - imported,
            "preloaded_loras_s": done - loaded,
            "preloaded_loras": float(len(preloaded)),
        }
        return self.cold_start

    def _preload(self, pipe: Any, backend: TimedBackend) -> list[LoRA]:
        settings = self.settings
        token = settings.hf_token.reveal() if settings.hf_token else None
        loras: list[LoRA] = []
        for index, item in enumerate(settings.loras):
            field = f"FLUXKIT_LORAS[{index}]"
            cached = self.store.fetch(LoRA(item.source), token=token, field=field)
            loras.append(LoRA(str(cached.path), scale=item.scale))
        if loras and settings.fuse_loras:
            names = []
            for index, lora in enumerate(loras):
                name = f"preloaded_{index}"
                pipe.load_lora_weights(lora.source, adapter_name=name)
                names.append(name)
            pipe.set_adapters(names, adapter_weights=[lora.scale for lora in loras])
            pipe.fuse_lora(adapter_names=names, lora_scale=1.0)
            pipe.unload_lora_weights()  # the fused deltas stay in the base weights
        elif loras:
            self._preloaded = tuple(loras)  # added to every request as active adapters
        return loras

    # -- a job ------------------------------------------------------------------------------

    async def run(self, job: Mapping[str, Any]) -> dict[str, Any]:
        """Run one job; returns the output, or ``{"error": message}`` (never a traceback).

        Raises:
            asyncio.CancelledError: RunPod stopped the job (generation stops at the next step).
        """
        async for item in self._run(dict(job), stream=False):
            if "images" in item or "error" in item:
                return item
        return {"error": "the job produced no result"}  # pragma: no cover - _run always ends so

    async def stream(self, job: Mapping[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """The job as a stream: ``{"step", "of"}`` per step, then the result (or error)."""
        async for item in self._run(dict(job), stream=True):
            yield item

    async def _run(self, job: dict[str, Any], *, stream: bool) -> AsyncIterator[dict[str, Any]]:
        secrets, key_ids = raw_secrets(job)
        redactor = Redactor(secrets, key_ids=key_ids)
        with redactor.logging():
            queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
            task = asyncio.ensure_future(self._job(job, redactor, queue, stream))
            try:
                while True:
                    getter = asyncio.ensure_future(queue.get())
                    done, _ = await asyncio.wait(
                        {getter, task}, return_when=asyncio.FIRST_COMPLETED
                    )
                    if getter in done:
                        yield getter.result()
                        continue
                    getter.cancel()
                    while not queue.empty():
                        yield queue.get_nowait()
                    yield redactor.scrub_value(task.result())
                    return
            finally:
                if not task.done():
                    task.cancel()
                    try:
                        await task
                    except BaseException:
                        pass

    async def _job(
        self,
        job: dict[str, Any],
        redactor: Redactor,
        queue: asyncio.Queue[dict[str, Any]],
        stream: bool,
    ) -> dict[str, Any]:
        started = time.perf_counter()
        metrics: dict[str, float] = {}
        try:
            job_input = parse_input(job.get("input"))
            if self._backend is None:
                cold = await asyncio.to_thread(self.load)
                metrics["load_s"] = sum(v for k, v in cold.items() if k.endswith("_s"))
            else:
                metrics["load_s"] = 0.0
            request, lora_fields = self._request(job_input)
            token = job_input.hf_token.get_secret_value() if job_input.hf_token else None
            if token is None and self.settings.lora_worker_token and self.settings.hf_token:
                token = self.settings.hf_token.reveal()
            fetch_started = time.perf_counter()
            cached = await asyncio.to_thread(
                self.store.fetch_all,
                list(zip(request.loras, lora_fields, strict=True)),
                token=token,
            )
            metrics["lora_fetch_s"] = time.perf_counter() - fetch_started
            loras = tuple(
                LoRA(str(item.path), scale=lora.scale)
                for item, lora in zip(cached, request.loras, strict=True)
            )
            request = request.evolve(loras=self._preloaded + loras)
            result = await self._generate(job, request, queue, stream, metrics)
            images = result.images
            output_mode = job_input.output or self.settings.output
            target = s3_target(self.settings.s3, job_input, job)
            if output_mode is None:
                output_mode = "s3" if target.configured else "base64"
            items: list[dict[str, Any]] = [
                {
                    "seed": image.seed,
                    "width": image.width,
                    "height": image.height,
                    "format": image.format,
                }
                for image in images
            ]
            warnings: list[str] = []
            encode_started = time.perf_counter()
            if output_mode in ("base64", "both"):
                for item, image in zip(items, images, strict=True):
                    mime = "image/jpeg" if image.format == "jpeg" else f"image/{image.format}"
                    item["image"] = f"data:{mime};base64,{base64.b64encode(image.data).decode()}"
            metrics["encode_s"] = time.perf_counter() - encode_started
            upload_started = time.perf_counter()
            if output_mode in ("s3", "both"):
                try:
                    urls = await asyncio.to_thread(self._upload, target, job, images)
                except S3UploadError as exc:
                    if output_mode == "s3":
                        return {"error": redactor.scrub(str(exc))}
                    warnings.append(redactor.scrub(str(exc)))
                else:
                    for item, url in zip(items, urls, strict=True):
                        item["url"] = url
            metrics["upload_s"] = time.perf_counter() - upload_started
            metrics["total_s"] = time.perf_counter() - started
            output: dict[str, Any] = {
                "images": items,
                "seeds": [image.seed for image in images],
                "metrics": {k: round(v, 4) for k, v in metrics.items()},
            }
            if warnings:
                output["warnings"] = warnings
            return output
        except (WorkerInputError, LoraFetchError) as exc:
            message = str(exc) if isinstance(exc, WorkerInputError) else f"invalid input: {exc}"
            return {"error": redactor.scrub(message)}
        except InvalidRequestError as exc:
            return {"error": redactor.scrub(f"invalid input: {exc}")}
        except FluxkitError as exc:
            return {"error": redactor.scrub(f"{type(exc).__name__}: {exc}")}
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug or an unexpected library error: a message, no traceback
            return {"error": redactor.scrub(f"worker error: {type(exc).__name__}: {exc}")}

    def _request(self, job_input: WorkerInput) -> tuple[GenerationRequest, list[str]]:
        limits = self.settings.limits
        loras = job_input.lora_list()
        if len(loras) > limits.max_loras:
            raise WorkerInputError("loras", f"at most {limits.max_loras} LoRAs on this worker")
        if job_input.n > limits.max_images:
            raise WorkerInputError("n", f"at most {limits.max_images} images per job")
        if job_input.steps is not None and job_input.steps > limits.max_steps:
            raise WorkerInputError("steps", f"at most {limits.max_steps} on this worker")
        if job_input.image is not None and not limits.img2img:
            raise WorkerInputError("image", "this worker does not take init images")
        if job_input.reference_image is not None and not limits.reference_image:
            raise WorkerInputError("reference_image", "this worker has no IP-Adapter")
        if job_input.model and job_input.model not in self._model_names():
            raise WorkerInputError(
                "model", f"this endpoint serves {self.settings.model} (deploy another for this one)"
            )
        fields: dict[str, Any] = {
            "prompt": job_input.prompt,
            "n": job_input.n,
            "output_format": job_input.output_format,
        }
        if job_input.size is not None:
            fields["size"] = job_input.size
        for name in (
            "width",
            "height",
            "steps",
            "guidance",
            "seed",
            "strength",
            "reference_strength",
        ):
            value = getattr(job_input, name)
            if value is not None:
                fields[name] = value
        for name in ("image", "reference_image"):
            value = getattr(job_input, name)
            if value is not None:
                fields[name] = (
                    value if value.startswith(("https://", "data:")) else base64.b64decode(value)
                )
        if job_input.extra:
            fields["extra"] = job_input.extra
        fields["loras"] = [
            LoRA(item.source, scale=item.scale, weight_name=item.weight_name) for item in loras
        ]
        request = GenerationRequest(**fields)
        side = max(request.width, request.height)
        if side > limits.max_side:
            raise WorkerInputError("size", f"sides up to {limits.max_side} on this worker")
        return request, [f"loras[{index}]" for index in range(len(loras))]

    def _model_names(self) -> set[str]:
        from fluxkit.backends.diffusers import MODEL_ALIASES

        model = self.settings.model
        return {model} | {alias for alias, target in MODEL_ALIASES.items() if target == model}

    async def _generate(
        self,
        job: dict[str, Any],
        request: GenerationRequest,
        queue: asyncio.Queue[dict[str, Any]],
        stream: bool,
        metrics: dict[str, float],
    ) -> Any:
        assert self._generator is not None and self._backend is not None

        def on_event(event: Event) -> None:
            if isinstance(event, Step):
                payload = {"step": event.i, "of": event.total, "image": event.job}
                if stream:
                    queue.put_nowait(payload)
                else:
                    self.progress(job, payload)

        backend = self._backend
        backend.reset_timings()
        started = time.perf_counter()
        result = await self._generator.generate(request, on_event=on_event)
        elapsed = time.perf_counter() - started
        metrics["lora_switch_s"] = backend.lora_switch_seconds
        metrics["inference_s"] = backend.pipeline_seconds
        metrics["generate_s"] = elapsed
        self.last_pipeline_seconds = backend.pipeline_seconds
        return result

    def _upload(self, target: Any, job: dict[str, Any], images: Any) -> list[str]:
        uploader = S3Uploader(target)
        job_id = str(job.get("id") or "job")
        return [
            uploader.upload(
                f"{job_id}/{index}-{image.seed}.{'jpg' if image.format == 'jpeg' else image.format}",
                image.data,
                image.format,
                {"seed": str(image.seed), "job-id": job_id},
            )
            for index, image in enumerate(images)
        ]


_DEFAULT: Worker | None = None


def default_worker() -> Worker:
    """The process's worker, configured from the environment on first use."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = Worker()
    return _DEFAULT


async def handler(job: dict[str, Any]) -> dict[str, Any]:
    """RunPod handler (``runpod.serverless.start({"handler": handler})``)."""
    return await default_worker().run(job)


async def stream_handler(job: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
    """Streaming RunPod handler; start it with ``return_aggregate_stream: True``."""
    async for item in default_worker().stream(job):
        yield item
