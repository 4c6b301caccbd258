"""A ComfyUI server emulator (HTTP + websocket) for offline tests and fault scripting.

It speaks the native API the ``comfyui`` backend uses — ``/object_info``, ``/models``,
``/upload/image``, ``/prompt`` (validated by :func:`fluxkit.comfy.validate_graph` against
ComfyUI 0.8.0's recorded ``/object_info``, shipped in ``fluxkit/testing/data``), ``/history``,
``/queue``, ``/interrupt``, ``/view`` — and, on a loopback port, ``/ws`` with the real message
order (``execution_start``, ``executing``, ``progress``, ``executed``, ``execution_success``).

```python
from fluxkit.testing import ComfyUIEmulator

emu = ComfyUIEmulator()
emu.script.run_seconds = 0.2
with emu.serve() as url:                       # HTTP + websocket on 127.0.0.1
    gen = fluxkit.Generator("comfyui", base_url=url, models=FluxModels.tiny())
    gen.generate("a fox", seed=1)
```

Faults the real server cannot do on demand: ``drop_sockets()`` / ``script.ws_drop_at_step``
(the socket dies mid-run), ``script.queue_seconds`` (a slow queue), ``script.fail_next(503)``
(5xx), ``fail_prompt(...)`` (an ``execution_error``), ``stock_xlabs=True`` (IP-Adapter graphs
fail in ``KSampler`` with the ``attn_mask`` error, as on a stock ComfyUI >= 0.3.8).
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import json
import struct
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from fluxkit._uploads import UploadCache
from fluxkit.comfy._flux import FluxModels
from fluxkit.comfy._validate import MODEL_FOLDERS, ObjectInfo, validate_graph
from fluxkit.testing._emulator import (
    Emulator,
    EmuRequest,
    EmuResponse,
    _emu_request,
    _LoopbackServer,
    route,
)
from fluxkit.testing._render import render_fake_image

__all__ = ["ComfyUIEmulator", "recorded_object_info"]

RECORDED = "comfyui-0.8.0-object_info.json.gz"
XLABS_ERROR = "DoubleStreamBlock.forward() got an unexpected keyword argument 'attn_mask'\n"


def recorded_object_info() -> dict[str, Any]:
    """ComfyUI 0.8.0's ``GET /object_info`` (with the XLabs nodes), recorded from the real server."""
    data = resources.files("fluxkit.testing").joinpath("data", RECORDED).read_bytes()
    loaded: dict[str, Any] = json.loads(gzip.decompress(data))
    return loaded


def _default_models() -> dict[str, list[str]]:
    tiny, dev = FluxModels.tiny(), FluxModels()
    return {
        "diffusion_models": [tiny.unet, dev.unet],
        "text_encoders": [
            "tiny-clip_l.safetensors",
            "t5xxl_fp16.safetensors",
            "clip_l.safetensors",
        ],
        "vae": [tiny.vae, dev.vae, "pixel_space"],
        "loras": ["tiny-lora-diffusers.safetensors", "tiny-lora-kohya.safetensors"],
        "clip_vision": [tiny.clip_vision, dev.clip_vision],
        "xlabs/ipadapters": [tiny.ipadapter, dev.ipadapter],
        "checkpoints": [],
    }


@dataclass
class _Job:
    prompt_id: str
    number: int
    graph: dict[str, Any]
    client_id: str
    submitted: float
    start: float | None = None
    end: float | None = None
    steps: int = 1
    sent_steps: int = 0
    state: str = "pending"  # pending | running | done
    failure: tuple[str, str, str] | None = None  # (node id, node type, message)
    interrupted: bool = False
    outputs: dict[str, Any] = field(default_factory=dict)


class ComfyUIEmulator(Emulator):
    """A ComfyUI 0.8.0 server in-process (``transport()``) or on loopback (``serve()``).

    Attributes:
        models: folder -> file names the server "has" (combos of loader inputs follow it).
        stock_xlabs: IP-Adapter graphs fail in KSampler like a stock ComfyUI >= 0.3.8.
        uploads: how many ``/upload/image`` requests arrived.
    """

    backend = "comfyui"
    base_url = "http://comfyui.emulator.local"

    def __init__(
        self,
        *,
        object_info: Mapping[str, Any] | None = None,
        models: Mapping[str, list[str]] | None = None,
        stock_xlabs: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(clock=clock)
        self.info = ObjectInfo(dict(object_info) if object_info else recorded_object_info())
        self.models = {k: list(v) for k, v in (models or _default_models()).items()}
        self.stock_xlabs = stock_xlabs
        self.script.run_seconds = 0.05
        self.script.steps = 3
        self.jobs: dict[str, _Job] = {}
        self.history: dict[str, Any] = {}
        self.inputs: dict[str, bytes] = {}
        self.files: dict[str, bytes] = {}
        self.uploads = 0
        self.ws_drop_at_step: int | None = None
        self._prompt_failures: list[tuple[str, str]] = []
        self._listeners: dict[str, list[Callable[[str | None], None]]] = {}
        self._counter = 0
        self._sync_models()

    def _sync_models(self) -> None:
        for (class_type, name), folder in MODEL_FOLDERS.items():
            if folder in self.models:
                self.info.set_combo(class_type, name, self.models[folder])

    def add_model(self, folder: str, filename: str) -> None:
        """Put a file in a models folder (its loaders' combos list it from now on)."""
        self.models.setdefault(folder, []).append(filename)
        self._sync_models()

    def fail_prompt(self, node_type: str = "KSampler", message: str = "scripted failure") -> None:
        """The next prompt that runs ends in ``execution_error`` in its ``node_type`` node."""
        self._prompt_failures.append((node_type, message))

    def drop_sockets(self) -> None:
        """Close every open websocket now (a proxy or network drop mid-run)."""
        for listeners in list(self._listeners.values()):
            for push in list(listeners):
                push(None)

    # -- websocket plumbing ------------------------------------------------------------------

    def _listen(self, client_id: str, push: Callable[[str | None], None]) -> None:
        with self.lock:
            self._listeners.setdefault(client_id, []).append(push)
            push(
                json.dumps(
                    {
                        "type": "status",
                        "data": {
                            "status": {"exec_info": {"queue_remaining": self._remaining()}},
                            "sid": client_id,
                        },
                    }
                )
            )

    def _unlisten(self, client_id: str, push: Callable[[str | None], None]) -> None:
        with self.lock:
            listeners = self._listeners.get(client_id, [])
            if push in listeners:
                listeners.remove(push)

    def _send(self, job: _Job, kind: str, data: dict[str, Any]) -> None:
        text = json.dumps({"type": kind, "data": dict(data, prompt_id=job.prompt_id)})
        for push in list(self._listeners.get(job.client_id, [])):
            push(text)

    def _remaining(self) -> int:
        return sum(1 for j in self.jobs.values() if j.state != "done")

    # -- the queue, driven by the clock -------------------------------------------------------

    def advance(self) -> None:
        """Move the queue to the current time (called on every request and by the ticker)."""
        with self.lock:
            now = self.clock()
            free_at = 0.0
            for job in sorted(self.jobs.values(), key=lambda j: j.number):
                if job.state == "done":
                    free_at = max(free_at, job.end or 0.0)
                    continue
                if job.state == "pending":
                    start = max(job.submitted + self.script.queue_seconds, free_at)
                    if now < start:
                        return
                    self._start(job, start)
                self._run(job, now)
                if job.state != "done":
                    return
                free_at = job.end or now

    def _start(self, job: _Job, at: float) -> None:
        job.state, job.start = "running", at
        job.end = at + self.script.run_seconds
        sampler = next((n for n in job.graph.values() if "steps" in n.get("inputs", {})), None)
        job.steps = int(sampler["inputs"]["steps"]) if sampler else 1
        job.steps = min(job.steps, self.script.steps)
        self._send(job, "execution_start", {"timestamp": int(at * 1000)})
        failing = self._prompt_failures.pop(0) if self._prompt_failures else None
        if self.stock_xlabs and any(
            n["class_type"] == "ApplyFluxIPAdapter" for n in job.graph.values()
        ):
            failing = ("KSampler", XLABS_ERROR)
        if failing is not None:
            node = next((nid for nid, n in job.graph.items() if n["class_type"] == failing[0]), "0")
            job.failure = (node, failing[0], failing[1])

    def _run(self, job: _Job, now: float) -> None:
        assert job.start is not None and job.end is not None
        span = max(1e-9, job.end - job.start)
        due = job.steps if now >= job.end else int(job.steps * (now - job.start) / span)
        if job.interrupted:
            return self._finish(job, now, "interrupted")
        while job.sent_steps < due and job.failure is None:
            job.sent_steps += 1
            if job.sent_steps == 1:
                self._send(job, "executing", {"node": self._sampler(job), "display_node": None})
            self._send(
                job,
                "progress",
                {"value": job.sent_steps, "max": job.steps, "node": self._sampler(job)},
            )
            if self.ws_drop_at_step == job.sent_steps:
                self.ws_drop_at_step = None
                self.drop_sockets()
        if now >= job.end:
            self._finish(job, now, "error" if job.failure else "success")

    def _sampler(self, job: _Job) -> str | None:
        return next((nid for nid, n in job.graph.items() if "steps" in n.get("inputs", {})), None)

    def _finish(self, job: _Job, now: float, how: str) -> None:
        job.state, job.end = "done", min(job.end or now, now)
        stamp: dict[str, Any] = {"timestamp": int(now * 1000)}
        messages: list[Any] = [["execution_start", dict(stamp, prompt_id=job.prompt_id)]]
        if how == "success":
            for nid, node in job.graph.items():
                if self.info.is_output(node["class_type"]):
                    name = f"fluxkit_{len(self.files) + 1:05d}_.png"
                    self.files[name] = self._render(job)
                    image = {"filename": name, "subfolder": "", "type": "output"}
                    job.outputs[nid] = {"images": [image]}
                    self._send(
                        job,
                        "executed",
                        {"node": nid, "display_node": nid, "output": job.outputs[nid]},
                    )
            kind, data = "execution_success", dict(stamp)
        elif how == "error":
            assert job.failure is not None
            node, node_type, message = job.failure
            kind, data = (
                "execution_error",
                dict(
                    stamp,
                    node_id=node,
                    node_type=node_type,
                    executed=[],
                    exception_message=message,
                    exception_type="TypeError",
                    traceback=[],
                    current_inputs={},
                    current_outputs={},
                ),
            )
        else:
            kind, data = (
                "execution_interrupted",
                dict(stamp, node_id=self._sampler(job), node_type="KSampler", executed=[]),
            )
        self._send(job, kind, data)
        self._send(job, "executing", {"node": None})
        messages.append([kind, dict(data, prompt_id=job.prompt_id)])
        self.history[job.prompt_id] = {
            "prompt": [job.number, job.prompt_id, job.graph, {"client_id": job.client_id}, []],
            "outputs": job.outputs,
            "status": {
                "status_str": "success" if how == "success" else "error",
                "completed": how == "success",
                "messages": messages,
            },
            "meta": {},
        }

    def _render(self, job: _Job) -> bytes:
        width = height = 64
        seed = 0
        for node in job.graph.values():
            inputs = node.get("inputs", {})
            if isinstance(inputs.get("width"), int):
                width, height = inputs["width"], inputs.get("height", width)
            for key in ("seed", "noise_seed"):
                if isinstance(inputs.get(key), int):
                    seed = inputs[key]
        prompt = next(
            (
                n["inputs"]["text"]
                for n in job.graph.values()
                if n["class_type"] == "CLIPTextEncode"
            ),
            "",
        )
        import io

        image = render_fake_image(str(prompt), seed, width, height)
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return buffer.getvalue()

    # -- routes ------------------------------------------------------------------------------

    def handle(self, request: EmuRequest) -> Any:
        self.advance()
        return super().handle(request)

    @route("GET", r"/system_stats")
    def system_stats(self, request: EmuRequest) -> EmuResponse:
        return EmuResponse(
            json={"system": {"comfyui_version": "0.8.0", "os": "emulator"}, "devices": []}
        )

    @route("GET", r"/object_info")
    def object_info(self, request: EmuRequest) -> EmuResponse:
        return EmuResponse(json=self.info.data)

    @route("GET", r"/object_info/(?P<class_type>[^/]+)")
    def object_info_one(self, request: EmuRequest, class_type: str) -> EmuResponse:
        spec = self.info.spec(class_type)
        return EmuResponse(json={} if spec is None else {class_type: spec})

    @route("GET", r"/models/(?P<folder>.+)")
    def model_folder(self, request: EmuRequest, folder: str) -> EmuResponse:
        if folder not in self.models:
            return EmuResponse(404, body=b"404: Not Found")
        return EmuResponse(json=sorted(self.models[folder]))

    @route("POST", r"/upload/image")
    def upload(self, request: EmuRequest) -> EmuResponse:
        self.uploads += 1
        parts = _multipart(request)
        if "image" not in parts:
            return EmuResponse(400, body=b"no image")
        filename, data = parts["image"]
        name = filename
        if (
            name in self.inputs
            and self.inputs[name] != data
            and parts.get("overwrite", ("", b""))[1] not in (b"true", b"1")
        ):
            stem, _, ext = name.rpartition(".")
            name = f"{stem} (1).{ext}"
        self.inputs[name] = data
        subfolder = parts.get("subfolder", ("", b""))[1].decode()
        return EmuResponse(json={"name": name, "subfolder": subfolder, "type": "input"})

    @route("POST", r"/prompt")
    def prompt(self, request: EmuRequest) -> EmuResponse:
        body = request.json() or {}
        if "prompt" not in body:
            return EmuResponse(
                400,
                json={
                    "error": {
                        "type": "no_prompt",
                        "message": "No prompt provided",
                        "details": "No prompt provided",
                        "extra_info": {},
                    },
                    "node_errors": {},
                },
            )
        graph = body["prompt"]
        problems = validate_graph(graph, self.info, uploaded=set(self.inputs))
        if problems:
            if problems[0].type in ("invalid_prompt", "prompt_no_outputs"):
                p = problems[0]
                error = {
                    "type": p.type,
                    "message": p.message,
                    "details": p.details,
                    "extra_info": {},
                }
                return EmuResponse(400, json={"error": error, "node_errors": {}})
            node_errors: dict[str, Any] = {}
            for p in problems:
                entry = node_errors.setdefault(
                    str(p.node), {"errors": [], "dependent_outputs": [], "class_type": p.class_type}
                )
                entry["errors"].append(
                    {
                        "type": p.type,
                        "message": p.message,
                        "details": p.details,
                        "extra_info": {"input_name": p.input},
                    }
                )
            error = {
                "type": "prompt_outputs_failed_validation",
                "message": "Prompt outputs failed validation",
                "details": "",
                "extra_info": {},
            }
            return EmuResponse(400, json={"error": error, "node_errors": node_errors})
        prompt_id = str(body.get("prompt_id") or uuid.uuid4())
        self._counter += 1
        self.jobs[prompt_id] = _Job(
            prompt_id, self._counter, graph, str(body.get("client_id", "")), self.clock()
        )
        return EmuResponse(
            json={"prompt_id": prompt_id, "number": self._counter, "node_errors": {}}
        )

    @route("GET", r"/prompt")
    def prompt_info(self, request: EmuRequest) -> EmuResponse:
        return EmuResponse(json={"exec_info": {"queue_remaining": self._remaining()}})

    @route("GET", r"/history/(?P<prompt_id>[^/]+)")
    def history_one(self, request: EmuRequest, prompt_id: str) -> EmuResponse:
        entry = self.history.get(prompt_id)
        return EmuResponse(json={} if entry is None else {prompt_id: entry})

    @route("GET", r"/queue")
    def queue(self, request: EmuRequest) -> EmuResponse:
        def item(j: _Job) -> list[Any]:
            return [j.number, j.prompt_id, j.graph, {"client_id": j.client_id}, []]

        running = [item(j) for j in self.jobs.values() if j.state == "running"]
        pending = [item(j) for j in self.jobs.values() if j.state == "pending"]
        return EmuResponse(json={"queue_running": running, "queue_pending": pending})

    @route("POST", r"/queue")
    def queue_edit(self, request: EmuRequest) -> EmuResponse:
        body = request.json() or {}
        for prompt_id in body.get("delete") or []:
            job = self.jobs.get(prompt_id)
            if job is not None and job.state == "pending":
                del self.jobs[prompt_id]
        if body.get("clear"):
            for prompt_id in [p for p, j in self.jobs.items() if j.state == "pending"]:
                del self.jobs[prompt_id]
        return EmuResponse(200)

    @route("POST", r"/interrupt")
    def interrupt(self, request: EmuRequest) -> EmuResponse:
        wanted = (request.json() or {}).get("prompt_id") if request.body else None
        for job in self.jobs.values():
            if job.state == "running" and wanted in (None, job.prompt_id):
                job.interrupted = True
        self.advance()
        return EmuResponse(200)

    @route("GET", r"/view")
    def view(self, request: EmuRequest) -> EmuResponse:
        name = request.query.get("filename", "")
        store = self.inputs if request.query.get("type") == "input" else self.files
        if name not in store:
            return EmuResponse(404, body=b"404: Not Found")
        return EmuResponse(body=store[name], headers={"content-type": "image/png"})

    # -- loopback with websocket --------------------------------------------------------------

    @contextmanager
    def serve(self, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
        """HTTP and ``/ws`` on a real loopback port; yields ``http://127.0.0.1:PORT``."""
        server = _ComfyLoopback(self, host, port)
        server.start()
        try:
            yield server.url
        finally:
            server.stop()

    def _generator_options(self, options: dict[str, Any]) -> dict[str, Any]:
        options.setdefault("transport", self.transport())
        options.setdefault("base_url", self.base_url)
        options.setdefault("websocket", False)  # in-process: no socket to open
        options.setdefault("models", FluxModels.tiny())
        options.setdefault("upload_cache", UploadCache())  # this emulator's files only
        return options


def _multipart(request: EmuRequest) -> dict[str, tuple[str, bytes]]:
    ctype = request.header("content-type") or ""
    boundary = ctype.split("boundary=")[-1].strip('"').encode()
    found: dict[str, tuple[str, bytes]] = {}
    for part in request.body.split(b"--" + boundary):
        head, sep, data = part.partition(b"\r\n\r\n")
        if not sep:
            continue
        text = head.decode("latin-1")
        name = text.split('name="')[1].split('"')[0] if 'name="' in text else ""
        filename = text.split('filename="')[1].split('"')[0] if 'filename="' in text else ""
        found[name] = (filename, data.removesuffix(b"\r\n"))
    return found


_WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def _frame(text: str) -> bytes:
    payload = text.encode()
    size = len(payload)
    if size < 126:
        head = struct.pack("!BB", 0x81, size)
    elif size < 65536:
        head = struct.pack("!BBH", 0x81, 126, size)
    else:
        head = struct.pack("!BBQ", 0x81, 127, size)
    return head + payload


class _ComfyLoopback(_LoopbackServer):
    """The emulator's loopback server, plus ComfyUI's ``/ws`` (RFC 6455, text frames)."""

    emulator: ComfyUIEmulator

    def _run(self) -> None:
        self._tick_task: asyncio.Task[None] | None = None

        def begin() -> None:
            self._tick_task = self.loop.create_task(self._ticker())

        self.loop.call_soon(begin)
        super()._run()

    def _shutdown(self) -> None:
        if self._tick_task is not None:
            self._tick_task.cancel()
        super()._shutdown()

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(0.005)
            self.emulator.advance()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        if b"upgrade: websocket" in head.lower() and head.startswith(b"GET /ws"):
            await self._websocket(head, reader, writer)
            return
        # plain HTTP: hand the bytes already read to the h11 loop of the base class
        replay = asyncio.StreamReader()
        replay.feed_data(head)

        async def pump() -> None:
            try:
                while True:
                    chunk = await reader.read(65536)
                    if not chunk:
                        replay.feed_eof()
                        return
                    replay.feed_data(chunk)
            except (ConnectionError, asyncio.CancelledError):
                replay.feed_eof()

        task = asyncio.ensure_future(pump())
        try:
            await super()._connection(replay, writer)
        finally:
            task.cancel()

    async def _websocket(
        self, head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        lines = head.decode("latin-1").split("\r\n")
        target = lines[0].split(" ")[1]
        request = _emu_request("GET", target, {}, b"")
        headers = {
            k.strip().lower(): v.strip()
            for k, _, v in (line.partition(":") for line in lines[1:] if ":" in line)
        }
        self.emulator.log.append(EmuRequest("GET", "/ws", request.query, headers))
        key = headers.get("sec-websocket-key", "")
        accept = base64.b64encode(hashlib.sha1((key + _WS_GUID).encode()).digest()).decode()
        writer.write(
            (
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Accept: {accept}\r\n\r\n"
            ).encode()
        )
        queue: asyncio.Queue[str | None] = asyncio.Queue()

        def push(text: str | None) -> None:
            self.loop.call_soon_threadsafe(queue.put_nowait, text)

        client_id = request.query.get("clientId", "")
        self.emulator._listen(client_id, push)
        reading = asyncio.ensure_future(self._read_frames(reader, queue))
        try:
            while True:
                text = await queue.get()
                if text is None:
                    break
                writer.write(_frame(text))
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self.emulator._unlisten(client_id, push)
            reading.cancel()
            writer.close()

    @staticmethod
    async def _read_frames(reader: asyncio.StreamReader, queue: asyncio.Queue[str | None]) -> None:
        try:
            while True:
                first, second = await reader.readexactly(2)
                size = second & 0x7F
                if size == 126:
                    size = struct.unpack("!H", await reader.readexactly(2))[0]
                elif size == 127:
                    size = struct.unpack("!Q", await reader.readexactly(8))[0]
                if second & 0x80:
                    await reader.readexactly(4)  # the client's mask: payloads are not read
                await reader.readexactly(size)
                if first & 0x0F == 0x8:  # close
                    queue.put_nowait(None)
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            queue.put_nowait(None)
