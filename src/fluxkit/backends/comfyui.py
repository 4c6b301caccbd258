"""The ``comfyui`` backend: any ComfyUI server — your GPU, RunPod, or Modal behind proxy auth.

```python
import fluxkit

gen = fluxkit.Generator("comfyui", base_url="http://127.0.0.1:8188")   # or $COMFYUI_URL
result = gen.generate("portrait of tok person", seed=7, reference_image="face.jpg")
```

fluxkit builds the FLUX graph itself (`fluxkit.comfy`), or binds the request onto your
exported workflow (``workflow=`` + ``mapping=``), checks it against the server's
``/object_info`` — every model and LoRA file it names must be on the server — uploads input
images once per content hash (``/upload/image``), queues one prompt per image with a
client-chosen ``prompt_id`` (``POST /prompt``), follows it, and fetches the images (``/view``).

**How progress is followed.** The flow (pure, like every backend's) polls
``/history/{prompt_id}``; that answer is the truth. ComfyUI's websocket is a push channel a flow
cannot express as a request, so it runs *beside* the flow as a driver-side event source
(`WebsocketEvents`: a daemon thread that files each
message under its ``prompt_id``). The flow reads that mailbox between short ``Wait`` steps:
``progress`` becomes `fluxkit.Step`, ``execution_start`` `fluxkit.Started`, and a
terminal message makes it fetch ``/history`` at once instead of at the next poll. If the socket
is missing (no ``websockets`` package, a proxy that refuses upgrades) or drops mid-run, the
flow keeps polling (``/history`` and ``/queue``) and only latency changes. This keeps the money
rules in the drivers, works the same in sync, asyncio and trio, and keeps flows testable with a
scripted mailbox.

**Money rules.** The ``prompt_id`` is chosen before the submission, so it is known even when the
answer to ``POST /prompt`` is lost: the flow announces it (``Accepted``) before sending, with a
cancel request that fits the prompt's state — ``POST /queue {"delete": [id]}`` while queued,
``POST /interrupt {"prompt_id": id}`` (which interrupts only that prompt) once it runs. A
deadline, a cancelled task or Ctrl-C sends it. The submission is ``retry="submit"``: resent only
after a provable refusal (429/503/connection refused); a 502/504 or a drop after sending raises
`fluxkit.JobMayExistError` carrying the ``prompt_id`` — look it up in ``/queue`` and
``/history/{prompt_id}`` before submitting again (a resent prompt would run twice).

**Modal.** ``modal_key=``/``modal_secret=`` (or ``$MODAL_KEY``/``$MODAL_SECRET``) send Modal's
proxy-auth headers (``Modal-Key``/``Modal-Secret``) on every request and the websocket; other
headers go in ``headers=``. Redirects are followed (Modal answers ``303`` after 150 s).
``endpoint=FLUX_IPADAPTER_FACEID`` talks to a one-shot JSON service instead of the native API.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fluxkit._capabilities import Capabilities
from fluxkit._config import Secret
from fluxkit._core import Flow, HttpRequest, HttpResponse, PollSchedule, Wait, send
from fluxkit._core._errors import error_from_response
from fluxkit._core._wire import Accepted
from fluxkit._events import Log, Queued, Started, Step
from fluxkit._exceptions import (
    InvalidRequestError,
    JobCancelledError,
    ResponseFormatError,
    ResultUnavailableError,
)
from fluxkit._uploads import UploadCache
from fluxkit.backends._base import Call, CallOutput, HttpBackend, ImageOutput
from fluxkit.backends._comfyui._answers import (
    execution_failure,
    history_entry,
    image_size,
    images_in_json,
    interrupted,
    terminal_state,
)
from fluxkit.backends._comfyui._socket import EventSource, NoEvents, WebsocketEvents
from fluxkit.comfy._errors import WorkflowRejectedError
from fluxkit.comfy._flux import FluxModels, IPAdapter, flux_graph
from fluxkit.comfy._graph import Graph
from fluxkit.comfy._mapping import JsonEndpoint, WorkflowMapping, bind_json, bind_workflow
from fluxkit.comfy._validate import (
    ObjectInfo,
    check_graph,
    model_references,
    problems_from_response,
    validate_graph,
)

if TYPE_CHECKING:
    from fluxkit._images import InputImage
    from fluxkit._types import GenerationRequest

__all__ = ["CAPABILITIES", "MODEL_ALIASES", "ComfyUIBackend", "backend_class"]

DEFAULT_URL = "http://127.0.0.1:8188"
URL_ENV = "COMFYUI_URL"
MODAL_KEY_ENV = ("MODAL_KEY", "MODAL_PROXY_KEY")
MODAL_SECRET_ENV = ("MODAL_SECRET", "MODAL_PROXY_SECRET")

# One queued prompt per image: each image gets its own seed and regenerates alone (a batch of
# n draws one noise tensor from one seed, so image i of it is not reproducible alone).
_CAPS = Capabilities(
    max_loras=16,
    img2img=True,
    reference_image=True,
    max_images_per_call=1,
    seeds_per_image=True,
    max_steps=100,
    default_steps=28,
    default_guidance=3.5,
    local_loras=True,
    lora_scale=(-100.0, 100.0),
    output_formats=("png",),
    notes="LoRAs and models are files on the server (checked before submit); one prompt per image",
)
CAPABILITIES: Mapping[str, Capabilities] = {"*": _CAPS}
MODEL_ALIASES: Mapping[str, str] = {}

_EXTRA = {
    "negative_prompt": "text for the KSampler's negative input (used when cfg > 1)",
    "cfg": "KSampler cfg (1.0 for FLUX dev; > 1 enables true CFG and the negative prompt)",
    "sampler": "KSampler sampler_name (default euler)",
    "scheduler": "KSampler scheduler (default simple)",
    "comfy_loras": "[(file name in models/loras, strength), ...]: LoRAs only on the server",
    "filename_prefix": "SaveImage prefix (default fluxkit/flux)",
}


def _env(environ: Mapping[str, str], names: Sequence[str]) -> str | None:
    for name in names:
        if environ.get(name):
            return environ[name]
    return None


def _prompt_id(call: Call) -> str:
    """A fresh id, or one derived from the call's idempotency key (the same key, the same id)."""
    if call.idempotency_key is not None:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"fluxkit:{call.idempotency_key}"))
    return str(uuid.uuid4())


class ComfyUIBackend(HttpBackend):
    """A ComfyUI server's native API (or a one-shot JSON endpoint in front of one).

    Args:
        base_url: the server (default ``$COMFYUI_URL``, else ``http://127.0.0.1:8188``).
        api_key: sent as ``Authorization: Bearer`` when given (a gateway in front of ComfyUI).
        headers: more headers for every request and the websocket.
        modal_key, modal_secret: Modal proxy-auth token (default ``$MODAL_KEY``/``$MODAL_SECRET``).
        models: model file names on this server (`fluxkit.comfy.FluxModels`); ``model=``
            overrides the diffusion model file.
        workflow: your API-format graph (mapping, JSON text or path) instead of fluxkit's own.
        mapping: where the request goes in ``workflow`` (default: ``WorkflowMapping.detect``).
        endpoint: a one-shot `fluxkit.comfy.JsonEndpoint` instead of the native API.
        websocket: follow progress over ``/ws`` (default True; False polls ``/history`` only).
        ip_scale: IP-Adapter strength when the request gives no ``reference_strength``.
        check_models: verify model/LoRA files and the graph against ``/object_info`` first.
        inspect_loras: for LoRAs given as local files, check with `fluxkit.lora` that
            they are FLUX LoRAs before sending (ComfyUI never fails on a LoRA whose keys match
            nothing: it logs ``lora key not loaded`` and runs without it).
        upload_cache: where uploaded inputs are remembered (default: one per process).
        poll: the ``/history`` polling schedule when the websocket is not there.
    """

    name = "comfyui"
    env_vars = ()
    default_base_url = DEFAULT_URL
    capabilities_table = CAPABILITIES
    model_aliases = MODEL_ALIASES
    default_model = ""

    def __init__(
        self,
        *,
        api_key: str | Secret | None = None,
        base_url: str | None = None,
        model: str | None = None,
        environ: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        modal_key: str | Secret | None = None,
        modal_secret: str | Secret | None = None,
        models: FluxModels | None = None,
        workflow: Graph | Mapping[str, Any] | str | Path | None = None,
        mapping: WorkflowMapping | None = None,
        endpoint: JsonEndpoint | None = None,
        websocket: bool = True,
        ip_scale: float = 0.8,
        check_models: bool = True,
        inspect_loras: bool = True,
        upload_cache: UploadCache | None = None,
        poll: PollSchedule | None = None,
        client_id: str | None = None,
    ) -> None:
        import os

        env = os.environ if environ is None else environ
        base_url = base_url or env.get(URL_ENV) or DEFAULT_URL
        super().__init__(api_key=None, base_url=base_url, model=model, environ=environ)
        self.api_key = (
            api_key if isinstance(api_key, Secret) or api_key is None else Secret(api_key)
        )
        self.models = models or FluxModels()
        self.endpoint = endpoint
        self.workflow: Graph | None = None
        self.mapping: WorkflowMapping | None = None
        if workflow is not None:
            self.workflow = workflow if isinstance(workflow, Graph) else Graph.from_api(workflow)
            self.mapping = mapping or WorkflowMapping.detect(self.workflow)
        elif mapping is not None:
            raise InvalidRequestError("mapping", mapping, "a mapping together with workflow=")
        self.ip_scale = ip_scale
        self.check_models = check_models
        self.inspect_loras = inspect_loras
        self.upload_cache = upload_cache if upload_cache is not None else _shared_uploads()
        self.poll = poll or PollSchedule(initial=0.05, factor=1.5, ceiling=1.0)
        self.tick = 0.02
        """Seconds between mailbox reads while the websocket is open."""
        self.history_every = 2.0
        """Seconds between safety-net ``/history`` polls while the websocket is open."""
        self.client_id = client_id or f"fluxkit-{uuid.uuid4().hex}"
        self._headers: dict[str, str | Secret] = dict(headers or {})
        key = modal_key or _env(env, MODAL_KEY_ENV)
        secret = modal_secret or _env(env, MODAL_SECRET_ENV)
        if bool(key) != bool(secret):
            raise InvalidRequestError(
                "modal_key" if not key else "modal_secret",
                "<missing>",
                "both Modal-Key and Modal-Secret (a proxy-auth token pair), or neither",
            )
        if key and secret:
            self._headers["Modal-Key"] = key if isinstance(key, Secret) else Secret(key)
            self._headers["Modal-Secret"] = secret if isinstance(secret, Secret) else Secret(secret)
        if self.api_key is not None:
            self._headers["Authorization"] = self.api_key.prefixed("Bearer ")
        self.events: EventSource = (
            WebsocketEvents(self.base_url, self.client_id, self._headers)
            if websocket and endpoint is None
            else NoEvents()
        )
        self.object_info = ObjectInfo({})
        self._fresh: set[str] = set()  # classes re-read for missing files during this call

    # -- models ------------------------------------------------------------------------------

    def resolve_model(self, request: GenerationRequest) -> str:
        """The diffusion model file: ``model=`` of the request, of the backend, else ``models``."""
        return request.model or self.model or self.models.unet

    def capabilities(self, model: str) -> Capabilities:
        return _CAPS

    def close(self) -> None:
        if isinstance(self.events, WebsocketEvents):
            self.events.close()

    def __repr__(self) -> str:
        return f"ComfyUIBackend(base_url={self.base_url!r}, headers={sorted(self._headers)!r})"

    # -- requests (pure) ---------------------------------------------------------------------

    def _get(self, path: str, params: Mapping[str, str] | None = None, **kw: Any) -> HttpRequest:
        return HttpRequest(
            "GET", f"{self.base_url}{path}", headers=self._headers, params=params, **kw
        )

    def _post(self, path: str, body: Any, **kw: Any) -> HttpRequest:
        return HttpRequest("POST", f"{self.base_url}{path}", headers=self._headers, json=body, **kw)

    def cancel_queued(self, prompt_id: str) -> HttpRequest:
        """``POST /queue {"delete": [prompt_id]}``: removes it if still pending."""
        return self._post("/queue", {"delete": [prompt_id]}, retry="never", raise_for_status=False)

    def cancel_running(self, prompt_id: str) -> HttpRequest:
        """``POST /interrupt {"prompt_id": ...}``: interrupts it only if it is the running one."""
        return self._post(
            "/interrupt", {"prompt_id": prompt_id}, retry="never", raise_for_status=False
        )

    def deduplicates(self) -> bool:
        """With an idempotency key the prompt id is derived from it, and the flow looks it up
        (queue, history) before queueing: a resend finds the first. Not for one-shot endpoints."""
        return self.endpoint is None

    # -- the flow ----------------------------------------------------------------------------

    def flow(self, call: Call) -> Flow[CallOutput]:
        if self.endpoint is not None:
            return (yield from self._oneshot(call, self.endpoint))
        request = call.request
        extra = _checked_extra(request)
        loras = self._loras(request, extra)
        self._precheck(request, extra, loras)
        names: dict[str, str] = {}
        for field in ("image", "reference_image"):
            image = getattr(request, field)
            if image is not None:
                names[field] = yield from self._upload(image, field)
        graph, outputs, seed = self.graph_for(call, names, loras, extra)
        if self.check_models:
            yield from self._check(graph, set(names.values()))
        prompt_id = _prompt_id(call)
        if call.idempotency_key is not None:
            # The id follows from the key: if an earlier submission with this key reached the
            # server (a crash, a dropped answer), it is in the queue or the history — collect
            # it instead of queueing the graph a second time.
            seen = yield from self._known(prompt_id)
            if seen:
                return (yield from self._collect(prompt_id, call, outputs, seed))
        self.events.watch(prompt_id)
        try:
            for _ in range(100):  # give a fresh socket up to ~1 s to open: it then sees it all
                if not self.events.connecting:
                    break
                yield Wait(0.01)
            # The id is ours, so it is known before the answer: announce it first, so a
            # cancellation during the submission still reaches the server.
            yield Accepted(prompt_id, self.cancel_queued(prompt_id))
            body = {"prompt": graph.to_api(), "client_id": self.client_id, "prompt_id": prompt_id}
            answer = yield from send(
                self._post("/prompt", body, retry="submit", raise_for_status=False, timeout=60.0)
            )
            if not answer.ok:
                raise self._refusal(answer, prompt_id)
            position = (answer.json() or {}).get("number")
            yield Queued(position if isinstance(position, int) else None, prompt_id)
            entry = yield from self._follow(prompt_id, call)
        finally:
            self.events.unwatch(prompt_id)
        images = yield from self._fetch(entry, outputs, seed, prompt_id)
        return CallOutput(images, request_id=prompt_id)

    def follow(self, call: Call, request_id: str) -> Flow[CallOutput]:
        """Collect a prompt queued earlier (by its ``prompt_id``): nothing is queued again.

        The graph is rebuilt (uploads are content-addressed, so nothing is re-sent) only to
        know which outputs and seed to read back.
        """
        if self.endpoint is not None:
            return (yield from super().follow(call, request_id))
        request = call.request
        extra = _checked_extra(request)
        loras = self._loras(request, extra)
        names: dict[str, str] = {}
        for field in ("image", "reference_image"):
            image = getattr(request, field)
            if image is not None:
                names[field] = yield from self._upload(image, field)
        _, outputs, seed = self.graph_for(call, names, loras, extra)
        return (yield from self._collect(request_id, call, outputs, seed))

    def _collect(
        self, prompt_id: str, call: Call, outputs: set[str] | None, seed: int | None
    ) -> Flow[CallOutput]:
        self.events.watch(prompt_id)
        try:
            yield Accepted(prompt_id, self.cancel_queued(prompt_id))
            entry = yield from self._follow(prompt_id, call)
        finally:
            self.events.unwatch(prompt_id)
        images = yield from self._fetch(entry, outputs, seed, prompt_id)
        return CallOutput(images, request_id=prompt_id)

    def _known(self, prompt_id: str) -> Flow[bool]:
        """Whether the server has this prompt: queued, running or in its history."""
        answer = yield from send(self._get(f"/history/{prompt_id}"))
        if history_entry(answer, prompt_id, self.name) is not None:
            return True
        return (yield from self._queue_place(prompt_id)) is not None

    def graph_for(
        self,
        call: Call,
        names: Mapping[str, str],
        loras: Sequence[tuple[str, float]],
        extra: Mapping[str, Any],
    ) -> tuple[Graph, set[str] | None, int | None]:
        """The graph for ``call`` (pure): ``(graph, output node ids or None for all, seed)``."""
        request = call.request
        seed = call.seeds[0]
        reference = names.get("reference_image")
        strength = request.reference_strength
        if self.workflow is None:
            models = self.models
            if call.model and call.model != models.unet:
                from dataclasses import replace

                models = replace(models, unet=call.model)
            built = flux_graph(
                request.prompt,
                width=request.width,
                height=request.height,
                steps=request.steps or _CAPS.default_steps,
                guidance=request.guidance if request.guidance is not None else 3.5,
                seed=seed,
                loras=list(loras),
                negative_prompt=str(extra.get("negative_prompt", "")),
                cfg=float(extra.get("cfg", 1.0)),
                sampler=str(extra.get("sampler", "euler")),
                scheduler=str(extra.get("scheduler", "simple")),
                image=names.get("image"),
                strength=request.strength if request.strength is not None else 0.75,
                ip_adapter=None
                if reference is None
                else IPAdapter(reference, strength if strength is not None else self.ip_scale),
                models=models,
                filename_prefix=str(extra.get("filename_prefix", "fluxkit/flux")),
            )
            return built.graph, {built.save_node}, seed
        assert self.mapping is not None
        values = self._values(request, names, loras, extra, seed)
        graph = bind_workflow(self.workflow, self.mapping, values)
        return (
            graph,
            ({self.mapping.output} if self.mapping.output else None),
            (seed if self.mapping.seed else None),
        )

    def _values(
        self,
        request: GenerationRequest,
        names: Mapping[str, str],
        loras: Sequence[tuple[str, float]],
        extra: Mapping[str, Any],
        seed: int,
    ) -> dict[str, Any]:
        assert self.mapping is not None
        always = {
            "prompt": request.prompt,
            "seed": seed,
            "width": request.width,
            "height": request.height,
            "steps": request.steps,
            "guidance": request.guidance,
        }
        # fields every request carries (defaults filled) go where the mapping places them;
        # the graph keeps its own value elsewhere
        values = {k: v for k, v in always.items() if k == "prompt" or getattr(self.mapping, k)}
        asked = {
            "image": names.get("image"),
            "strength": request.strength if request.image is not None else None,
            "reference_image": names.get("reference_image"),
            "reference_strength": request.reference_strength
            if request.reference_image is not None
            else None,
            "negative_prompt": extra.get("negative_prompt"),
            "cfg": extra.get("cfg"),
            "filename_prefix": extra.get("filename_prefix"),
            "loras": list(loras),
        }
        if request.reference_image is not None and request.reference_strength is None:
            asked["reference_strength"] = self.ip_scale if self.mapping.reference_strength else None
        values.update({k: v for k, v in asked.items() if v is not None and v != []})
        return values

    def _precheck(
        self,
        request: GenerationRequest,
        extra: Mapping[str, Any],
        loras: Sequence[tuple[str, float]],
    ) -> None:
        """Refuse, before any request, what the user's graph has no place for."""
        if self.workflow is None or self.mapping is None:
            return
        wanted = {
            "image": request.image,
            "reference_image": request.reference_image,
            "loras": loras or None,
            "negative_prompt": extra.get("negative_prompt"),
            "cfg": extra.get("cfg"),
        }
        bound = set(self.mapping.bound())
        for name, value in wanted.items():
            if value is not None and name not in bound:
                raise InvalidRequestError(
                    name,
                    "<given>",
                    f"a WorkflowMapping that says where {name} goes in your workflow",
                    reason="the workflow has no place for it",
                )
        if not self.mapping.prompt:
            raise InvalidRequestError("mapping.prompt", None, "the node input taking the prompt")

    def _loras(
        self, request: GenerationRequest, extra: Mapping[str, Any]
    ) -> list[tuple[str, float]]:
        """Server file names: a local file's, hf:// file's or URL's base name, plus comfy_loras."""
        found: list[tuple[str, float]] = []
        for index, lora in enumerate(request.loras):
            name = lora.filename or Path(lora.source).name
            if not name or not name.endswith(".safetensors"):
                raise InvalidRequestError(
                    f"loras[{index}].source",
                    lora.source,
                    "a .safetensors file name as the server lists it in models/loras/",
                )
            if lora.kind == "path" and self.inspect_loras:
                _inspect_local_lora(lora.source, index)
            found.append((name, lora.scale))
        for index, item in enumerate(extra.get("comfy_loras") or ()):
            try:
                name, strength = (item, 1.0) if isinstance(item, str) else (str(item[0]), item[1])
                found.append((name, float(strength)))
            except (TypeError, ValueError, IndexError):
                raise InvalidRequestError(
                    f"extra.comfy_loras[{index}]", item, "a file name or (file name, strength)"
                ) from None
        return found

    def _refusal(self, answer: HttpResponse, prompt_id: str) -> Exception:
        try:
            body = answer.json()
        except ValueError:
            body = answer.text
        if answer.status_code == 400 and isinstance(body, dict) and "error" in body:
            problems = problems_from_response(body)
            error = body.get("error") or {}
            shown = "; ".join(str(p) for p in problems[:5]) or error.get("message", "")
            return WorkflowRejectedError(
                f"the server refused the graph: {shown}",
                problems=problems,
                backend=self.name,
                status_code=400,
                provider_message=str(error.get("message", "")),
                body=body,
                request_id=prompt_id,
            )
        return error_from_response(self.name, answer, request_id=prompt_id)

    # -- object_info and model files ----------------------------------------------------------

    def _check(self, graph: Graph, uploaded: set[str]) -> Flow[None]:
        api = graph.to_api()
        classes = sorted({str(n.get("class_type")) for n in api.values()})
        missing = [c for c in classes if c not in self.object_info]
        if missing:
            yield from self._read_info(missing)
        problems = validate_graph(graph, self.object_info, uploaded=uploaded)
        if problems:
            # Model folders change while the server runs: re-read the classes whose file
            # names were not found before calling anything missing.
            stale = {
                cls
                for node, cls, name, _file, _folder in model_references(graph)
                for p in problems
                if p.node == node and p.input == name
            }
            if stale:
                yield from self._read_info(sorted(stale))
        check_graph(graph, self.object_info, uploaded=uploaded, base_url=self.base_url)

    def _read_info(self, classes: Sequence[str]) -> Flow[None]:
        for class_type in classes:
            answer = yield from send(
                self._get(f"/object_info/{class_type}", raise_for_status=False)
            )
            if answer.status_code == 404:
                continue  # unknown class: the validator names it (invalid_prompt)
            if not answer.ok:
                raise error_from_response(self.name, answer)
            body = answer.json()
            if isinstance(body, dict):
                self.object_info.update(body)

    # -- uploads -------------------------------------------------------------------------------

    def _upload(self, image: InputImage, field: str) -> Flow[str]:
        if image.data is None:
            raise InvalidRequestError(
                field,
                image.url,
                "a local file, bytes or a PIL image (ComfyUI loads inputs from its input/ "
                "folder; fluxkit uploads them)",
            )
        namespace = hashlib.sha256(self.base_url.encode()).hexdigest()[:16]
        key = UploadCache.key(f"comfyui-{namespace}", image)
        while True:
            cached = self.upload_cache.get(key)
            if cached is not None:
                return cached
            if self.upload_cache.claim(key):
                break
            yield Wait(0.01)  # another call uploads the same bytes right now
        try:
            ext = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}.get(
                image.mime, "png"
            )
            filename = f"fluxkit-{image.sha256[:24]}.{ext}"
            content, content_type = multipart(
                {"overwrite": "true", "type": "input"}, "image", filename, image.data, image.mime
            )
            headers = dict(self._headers, **{"content-type": content_type})
            answer = yield from send(
                HttpRequest(
                    "POST",
                    f"{self.base_url}/upload/image",
                    headers=headers,
                    content=content,
                    retry="idempotent",  # content-addressed name + overwrite: safe to resend
                    timeout=120.0,
                )
            )
            body = answer.json()
            if not isinstance(body, dict) or "name" not in body:
                raise ResponseFormatError(f"/upload/image answered {body!r}", backend=self.name)
            name = str(body["name"])
            if body.get("subfolder"):
                name = f"{body['subfolder']}/{name}"
            self.upload_cache.put(key, name)
        finally:
            self.upload_cache.release(key)
        return name

    # -- following a prompt --------------------------------------------------------------------

    def _follow(self, prompt_id: str, call: Call) -> Flow[dict[str, Any]]:
        intervals = self.poll.intervals()
        since_history = self.history_every  # the first look is a /history poll
        started = finished = False
        absent = 0
        while True:
            for message in self.events.take(prompt_id):
                kind, data = message.get("type"), message.get("data") or {}
                if kind in ("execution_start", "executing") and not started:
                    if kind == "executing" and data.get("node") is None:
                        finished = True
                        continue
                    started = True
                    yield Started(prompt_id)
                    yield Accepted(prompt_id, self.cancel_running(prompt_id))
                elif kind == "progress":
                    yield Step(int(data.get("value", 0)), int(data.get("max", 0)))
                elif kind == "execution_cached" and data.get("nodes"):
                    yield Log(f"cached on the server: nodes {', '.join(map(str, data['nodes']))}")
                elif kind == "execution_error":
                    raise execution_failure(data, backend=self.name, prompt_id=prompt_id)
                elif kind == "execution_interrupted":
                    raise interrupted(data, backend=self.name, prompt_id=prompt_id)
                elif kind in ("execution_success",) or (
                    kind == "executing" and data.get("node") is None
                ):
                    finished = True
            live = self.events.alive
            if finished or not live or since_history >= self.history_every:
                since_history = 0.0
                answer = yield from send(self._get(f"/history/{prompt_id}"))
                entry = history_entry(answer, prompt_id, self.name)
                state = None if entry is None else terminal_state(entry)
                if entry is not None and state is not None:
                    return self._settle(entry, state, prompt_id)
                if entry is None and not live and not started:
                    where = yield from self._queue_place(prompt_id)
                    if where == "running":
                        started = True
                        yield Started(prompt_id)
                        yield Accepted(prompt_id, self.cancel_running(prompt_id))
                    elif isinstance(where, int):
                        yield Queued(where, prompt_id)
                    elif where is None:
                        absent += 1
                        if absent >= 3:
                            raise JobCancelledError(
                                "the prompt left the queue without a history entry (deleted "
                                "on the server with POST /queue)",
                                backend=self.name,
                                request_id=prompt_id,
                            )
                elif entry is None and not live and started:
                    where = yield from self._queue_place(prompt_id)
                    absent = absent + 1 if where is None else 0
                    if absent >= 3:
                        raise JobCancelledError(
                            "the prompt left the queue without a history entry",
                            backend=self.name,
                            request_id=prompt_id,
                        )
            delay = self.tick if (live and not finished) else next(intervals)
            if finished:
                delay = self.tick  # the history entry follows the message within milliseconds
            yield Wait(delay)
            since_history += delay

    def _queue_place(self, prompt_id: str) -> Flow[str | int | None]:
        """``"running"``, the 0-based position among pending prompts, or None (not queued)."""
        answer = yield from send(self._get("/queue"))
        body = answer.json() or {}
        for item in body.get("queue_running") or []:
            if len(item) > 1 and item[1] == prompt_id:
                return "running"
        pending = sorted(
            (item for item in body.get("queue_pending") or [] if len(item) > 1),
            key=lambda item: item[0],
        )
        for position, item in enumerate(pending):
            if item[1] == prompt_id:
                return position
        return None

    def _settle(self, entry: dict[str, Any], state: str, prompt_id: str) -> dict[str, Any]:
        if state == "success":
            return entry
        messages = (entry.get("status") or {}).get("messages") or []
        for kind, data in reversed([m for m in messages if len(m) == 2]):
            if kind == "execution_error":
                raise execution_failure(data, backend=self.name, prompt_id=prompt_id)
            if kind == "execution_interrupted":
                raise interrupted(data, backend=self.name, prompt_id=prompt_id)
        raise ComfyExecutionErrorFallback(prompt_id, self.name)

    def _fetch(
        self,
        entry: dict[str, Any],
        outputs: set[str] | None,
        seed: int | None,
        prompt_id: str,
    ) -> Flow[list[ImageOutput]]:
        files = []
        for node_id, output in sorted((entry.get("outputs") or {}).items(), key=_node_order):
            if outputs is not None and node_id not in outputs:
                continue
            for image in output.get("images") or []:
                if image.get("type", "output") == "output":
                    files.append(image)
        if not files:
            raise ResponseFormatError(
                "the prompt finished without output images (does the graph save any?)",
                backend=self.name,
                request_id=prompt_id,
                body=entry.get("outputs"),
            )
        images: list[ImageOutput] = []
        for file in files:
            params = {
                "filename": str(file.get("filename")),
                "subfolder": str(file.get("subfolder", "")),
                "type": str(file.get("type", "output")),
            }
            answer = yield from send(self._get("/view", params, raise_for_status=False))
            if not answer.ok:
                urls = [
                    f"{self.base_url}/view?filename={f.get('filename')}"
                    f"&subfolder={f.get('subfolder', '')}&type={f.get('type', 'output')}"
                    for f in files[len(images) :]
                ]
                raise ResultUnavailableError(
                    f"/view answered {answer.status_code} for {params['filename']}; the image "
                    "is on the server",
                    urls=urls,
                    backend=self.name,
                    request_id=prompt_id,
                    status_code=answer.status_code,
                )
            width, height, fmt = image_size(answer.content)
            images.append(ImageOutput(seed, width, height, fmt, data=answer.content))
        return images

    # -- one-shot JSON endpoints ---------------------------------------------------------------

    def _oneshot(self, call: Call, endpoint: JsonEndpoint) -> Flow[CallOutput]:
        request = call.request
        extra = _checked_extra(request)
        values: dict[str, Any] = {
            "prompt": request.prompt,
            "width": request.width,
            "height": request.height,
            "steps": request.steps,
            "guidance": request.guidance,
            "seed": call.seeds[0],
            "strength": request.strength if request.image is not None else None,
            "reference_strength": request.reference_strength
            if request.reference_strength is not None
            else (self.ip_scale if request.reference_image is not None else None),
            "negative_prompt": extra.get("negative_prompt"),
        }
        if request.loras or extra.get("comfy_loras"):
            values["loras"] = [list(x) for x in self._loras(request, extra)]
        for field in ("image", "reference_image"):
            image = getattr(request, field)
            if image is None:
                continue
            if image.data is None:
                values[field] = image.url
            elif endpoint.image_encoding == "data_uri":
                values[field] = image.data_uri()
            else:
                import base64

                values[field] = base64.b64encode(image.data).decode()
        # fields every request carries are sent only where the endpoint takes them
        for name in ("width", "height", "steps", "guidance", "seed"):
            if name not in endpoint.mapping:
                values.pop(name)
        try:
            body = bind_json(endpoint, values)
        except ValueError as exc:
            raise InvalidRequestError(
                endpoint.path, "<request>", f"fields {sorted(endpoint.mapping)}", reason=str(exc)
            ) from None
        answer = yield from send(
            HttpRequest(
                "POST",
                f"{self.base_url}{endpoint.path}",
                headers=self._headers,
                json=body,
                retry="submit",
                raise_for_status=False,
                timeout=900.0,
                submit_grace=False,  # nothing to cancel: a late answer helps no one
            )
        )
        if not answer.ok:
            raise error_from_response(self.name, answer)
        seed = call.seeds[0] if "seed" in endpoint.mapping else None
        ctype = answer.header("content-type") or ""
        found: list[bytes | str]
        if ctype.startswith("image/"):
            found = [answer.content]
        else:
            try:
                found = images_in_json(answer.json(), endpoint.result)
            except ValueError:
                found = []
        if not found:
            raise ResponseFormatError(
                f"{endpoint.path} answered no image ({ctype or 'no content-type'})",
                backend=self.name,
                body=answer.text[:500],
            )
        images = []
        for item in found:
            if isinstance(item, str):
                fetched = yield from send(HttpRequest("GET", item, headers=self._headers))
                item = fetched.content
            width, height, fmt = image_size(item)
            images.append(ImageOutput(seed, width, height, fmt, data=item))
        return CallOutput(images)


class ComfyExecutionErrorFallback(ResponseFormatError):
    """A failed history entry without an ``execution_error`` message."""

    def __init__(self, prompt_id: str, backend: str) -> None:
        super().__init__(
            "the prompt failed without an execution_error message",
            backend=backend,
            request_id=prompt_id,
        )


def _node_order(item: tuple[str, Any]) -> tuple[int, str]:
    key = item[0]
    return (int(key), "") if key.isdigit() else (1 << 30, key)


def _checked_extra(request: GenerationRequest) -> dict[str, Any]:
    extra = dict(request.extra)
    unknown = sorted(set(extra) - set(_EXTRA))
    if unknown:
        raise InvalidRequestError(
            f"extra.{unknown[0]}",
            extra[unknown[0]],
            "; ".join(f"{k}: {v}" for k, v in _EXTRA.items()),
            reason="not a comfyui option",
        )
    return extra


def _inspect_local_lora(path: str, index: int) -> None:
    """A local LoRA file must be a FLUX LoRA (ComfyUI would silently skip unmatched keys)."""
    from fluxkit.lora import inspect_lora
    from fluxkit.lora._family import FLUX1_FAMILIES

    family = inspect_lora(path).base_model
    if family not in FLUX1_FAMILIES and family != "unknown":
        raise InvalidRequestError(
            f"loras[{index}].source",
            path,
            "a FLUX LoRA (ComfyUI logs 'lora key not loaded' and runs without it otherwise)",
            reason=f"inspection says it is for {family}",
        )


def multipart(
    fields: Mapping[str, str], file_field: str, filename: str, data: bytes, mime: str
) -> tuple[bytes, str]:
    """A ``multipart/form-data`` body (pure; the boundary is derived from the content)."""
    boundary = "fluxkit-" + hashlib.sha256(data).hexdigest()[:32]
    parts = []
    for name, value in fields.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        )
    parts.append(
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{file_field}"; '
            f'filename="{filename}"\r\nContent-Type: {mime}\r\n\r\n'
        ).encode()
        + data
        + b"\r\n"
    )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


_SHARED_UPLOADS: UploadCache | None = None


def _shared_uploads() -> UploadCache:
    global _SHARED_UPLOADS
    if _SHARED_UPLOADS is None:
        _SHARED_UPLOADS = UploadCache()
    return _SHARED_UPLOADS


def _json_dumps(value: Any) -> str:  # pragma: no cover - debugging aid
    return json.dumps(value, indent=1)


backend_class = ComfyUIBackend
