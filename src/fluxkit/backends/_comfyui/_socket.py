"""The websocket as a driver-side event source.

A flow cannot hold a socket, and ComfyUI's ``/ws`` is a push channel, not a request. So the
websocket lives *beside* the flow: one daemon thread per backend reads ``/ws?clientId=...`` and
files each message under its ``prompt_id`` in a mailbox. A flow reads its mailbox as plain data
(``take(prompt_id)``) between ``Wait`` steps — the same way it reads an ``HttpResponse`` — and
never blocks on it. ``/history/{prompt_id}`` stays the source of truth: the socket only makes the
flow look sooner (and brings ``progress`` steps); when it is missing, refused or drops mid-run,
the flow falls back to polling and loses nothing but latency.

The thread works the same under sync, asyncio and trio callers (it never touches their loop),
and a test can hand a flow any object with ``watch``/``take``/``alive``/``unwatch`` instead.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from typing import Any, Protocol

from fluxkit._config import Secret

__all__ = ["EventSource", "NoEvents", "WebsocketEvents"]


class EventSource(Protocol):
    """What a flow needs from a progress channel."""

    @property
    def alive(self) -> bool: ...

    @property
    def connecting(self) -> bool: ...

    def watch(self, prompt_id: str) -> None: ...

    def take(self, prompt_id: str) -> list[dict[str, Any]]: ...

    def unwatch(self, prompt_id: str) -> None: ...


class NoEvents:
    """No websocket: the flow polls ``/history`` only."""

    alive = False
    connecting = False

    def watch(self, prompt_id: str) -> None:
        return None

    def take(self, prompt_id: str) -> list[dict[str, Any]]:
        return []

    def unwatch(self, prompt_id: str) -> None:
        return None


class WebsocketEvents:
    """ComfyUI's ``/ws`` read by a daemon thread, messages filed per ``prompt_id``.

    Connects on the first `watch`, reconnects (backing off to 5 s) while prompts are
    watched, and closes after ``idle_close`` seconds with none. Needs the ``websockets``
    package (``pip install "fluxkit[comfyui]"``); without it `alive` stays False.

    Attributes:
        drops: how many times an open socket was lost (a fault the flow survives).
    """

    def __init__(
        self,
        url: str,
        client_id: str,
        headers: Mapping[str, str | Secret] | None = None,
        *,
        open_timeout: float = 5.0,
        idle_close: float = 30.0,
    ) -> None:
        scheme, rest = url.split("://", 1)
        ws_scheme = "wss" if scheme == "https" else "ws"
        self.url = f"{ws_scheme}://{rest.rstrip('/')}/ws?clientId={client_id}"
        self.client_id = client_id
        self._headers = dict(headers or {})
        self._open_timeout = open_timeout
        self._idle_close = idle_close
        self._lock = threading.Lock()
        self._mail: dict[str, list[dict[str, Any]]] = {}
        self._state = "idle"  # idle | connecting | open | down | unavailable | closed
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._socket: Any = None
        self.drops = 0
        self.connects = 0

    @property
    def alive(self) -> bool:
        return self._state == "open"

    @property
    def connecting(self) -> bool:
        return self._state in ("idle", "connecting")

    def watch(self, prompt_id: str) -> None:
        with self._lock:
            self._mail.setdefault(prompt_id, [])
            if self._state in ("idle", "closed") or (
                self._thread is not None and not self._thread.is_alive()
            ):
                self._start()

    def take(self, prompt_id: str) -> list[dict[str, Any]]:
        with self._lock:
            box = self._mail.get(prompt_id)
            if not box:
                return []
            self._mail[prompt_id] = []
            return box

    def unwatch(self, prompt_id: str) -> None:
        with self._lock:
            self._mail.pop(prompt_id, None)

    def close(self) -> None:
        self._stop.set()
        socket = self._socket
        if socket is not None:
            try:
                socket.close()
            except Exception:
                pass
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2)
        self._state = "closed"

    def kill_connection(self) -> None:
        """Drop the current socket (tests and benchmarks: a mid-run drop)."""
        socket = self._socket
        if socket is not None:
            socket.close()

    # -- the thread ------------------------------------------------------------------------

    def _start(self) -> None:
        try:
            import websockets.sync.client  # noqa: F401
        except ImportError:
            self._state = "unavailable"
            return
        self._stop.clear()
        self._state = "connecting"
        self._thread = threading.Thread(target=self._run, name="fluxkit-comfyui-ws", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        from websockets.sync.client import connect

        backoff = 0.2
        idle = 0.0
        while not self._stop.is_set():
            headers = {
                k: v.reveal() if isinstance(v, Secret) else v for k, v in self._headers.items()
            }
            try:
                self._state = "connecting"
                with connect(
                    self.url,
                    additional_headers=headers,
                    open_timeout=self._open_timeout,
                    max_size=None,
                    compression=None,
                ) as socket:
                    self._socket = socket
                    self._state = "open"
                    self.connects += 1
                    backoff = 0.2
                    while not self._stop.is_set():
                        try:
                            message = socket.recv(timeout=1.0)
                        except TimeoutError:
                            with self._lock:
                                idle = 0.0 if self._mail else idle + 1.0
                            if idle >= self._idle_close:
                                self._state = "idle"
                                return
                            continue
                        if isinstance(message, str):
                            self._file(message)
            except Exception:
                pass
            finally:
                self._socket = None
            if self._stop.is_set():
                break
            if self._state == "open":
                self.drops += 1
            self._state = "down"
            with self._lock:
                if not self._mail:
                    self._state = "idle"
                    return
            self._stop.wait(backoff)
            backoff = min(5.0, backoff * 2)

    def _file(self, text: str) -> None:
        try:
            message = json.loads(text)
        except ValueError:
            return
        if not isinstance(message, dict):
            return
        data = message.get("data")
        prompt_id = data.get("prompt_id") if isinstance(data, dict) else None
        if prompt_id is None:
            return
        with self._lock:
            box = self._mail.get(str(prompt_id))
            if box is not None:
                box.append(message)
