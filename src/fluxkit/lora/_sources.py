"""Byte ranges of a LoRA file: from disk, or from the Hub with HTTP ``Range`` requests.

Both sources answer ``read(start, length)`` so the inspector never cares where the file is and
never reads more than the header (and, when cheap, the kohya ``.alpha`` scalars).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Protocol
from urllib.parse import quote

from fluxkit._config import Secret, resolve_secret
from fluxkit._core import Flow, HttpRequest, HttpResponse, send
from fluxkit._exceptions import (
    AuthenticationError,
    InvalidRequestError,
    ProviderRejectedError,
    ProviderUnavailableError,
)

if TYPE_CHECKING:
    import httpx

    from fluxkit._drivers import FlowOutcome

__all__ = ["ByteSource", "HubSource", "LocalSource", "hub_endpoint", "open_source"]

_DEFAULT_ENDPOINT = "https://huggingface.co"
_TIMEOUT = 30.0


class ByteSource(Protocol):
    """Random access to a file's bytes."""

    name: str
    size: int | None

    def read(self, start: int, length: int) -> bytes: ...

    def close(self) -> None: ...


def hub_endpoint(endpoint: str | None = None) -> str:
    """The Hub base URL: the argument, else ``HF_ENDPOINT``, else ``https://huggingface.co``."""
    return (endpoint or os.environ.get("HF_ENDPOINT") or _DEFAULT_ENDPOINT).rstrip("/")


class LocalSource:
    """A file on disk."""

    def __init__(self, path: Path) -> None:
        self.name = str(path)
        try:
            self._handle = path.open("rb")
        except FileNotFoundError:
            raise InvalidRequestError(
                "path", str(path), "an existing .safetensors file", reason="no such file"
            ) from None
        except IsADirectoryError:
            raise InvalidRequestError(
                "path", str(path), "a .safetensors file", reason="is a directory"
            ) from None
        self.size: int | None = os.fstat(self._handle.fileno()).st_size

    def read(self, start: int, length: int) -> bytes:
        self._handle.seek(start)
        return self._handle.read(length)

    def close(self) -> None:
        self._handle.close()


class HubSource:
    """A file in a Hub repo, read with ``Range`` requests (redirects to the CDN followed).

    Each read is a one-request flow run by `fluxkit._drivers.run_flow`: the drivers are
    the only code that sends HTTP, so retries and errors are the same as everywhere else.
    """

    def __init__(
        self, repo_id: str, filename: str, *, revision: str, client: httpx.Client, endpoint: str
    ) -> None:
        self.name = f"hf://{repo_id}/{filename}"
        self.size: int | None = None
        self._client = client
        self._url = f"{endpoint}/{repo_id}/resolve/{quote(revision, safe='')}/{quote(filename)}"

    def read(self, start: int, length: int) -> bytes:
        if length <= 0:
            return b""
        response = run_hub_flow(self._client, get_flow(self._url, start, length))
        raise_for_hub_status(response, self.name)
        total = (response.header("content-range") or "").rpartition("/")[2]
        if total.isdigit():
            self.size = int(total)
        if response.status_code == 200:
            # a server that ignores Range sends the whole file: keep only what was asked
            if self.size is None:
                self.size = len(response.content)
            return response.content[start : start + length]
        return response.content[:length]

    def close(self) -> None:
        self._client.close()


def get_flow(url: str, start: int | None = None, length: int | None = None) -> Flow[HttpResponse]:
    """One ``GET`` (a byte range when ``start``/``length`` are given); the answer as is."""
    headers = (
        {} if start is None or length is None else {"Range": f"bytes={start}-{start + length - 1}"}
    )
    return (
        yield from send(
            HttpRequest("GET", url, headers=headers, retry="idempotent", raise_for_status=False)
        )
    )


def run_hub_flow(client: httpx.Client, flow: Flow[HttpResponse]) -> HttpResponse:
    """Run a Hub flow with the blocking driver (the Hub is read outside any generation)."""
    from fluxkit._drivers import FlowContext, run_flow

    outcome: FlowOutcome[HttpResponse] = run_flow(flow, client, FlowContext(backend="hub"))
    return outcome.value


def raise_for_hub_status(response: HttpResponse | httpx.Response, name: str) -> None:
    """Map a Hub error status to fluxkit's errors (the token is never part of the message)."""
    status = response.status_code
    if status < 400:
        return
    if status in (401, 403):
        raise AuthenticationError(
            f"access to {name} was refused; pass token= or set HF_TOKEN for private repos",
            backend="hub",
            status_code=status,
        )
    if status == 404:
        raise ProviderRejectedError(
            f"{name} not found", backend="hub", status_code=status, field="source"
        )
    if status >= 500:
        raise ProviderUnavailableError(
            f"the Hub failed reading {name}", backend="hub", status_code=status
        )
    raise ProviderRejectedError(
        f"the Hub refused reading {name}", backend="hub", status_code=status
    )


def open_source(
    source: str | os.PathLike[str],
    *,
    token: str | Secret | None = None,
    endpoint: str | None = None,
    transport: httpx.BaseTransport | None = None,
) -> ByteSource:
    """A ``ByteSource`` for a local path or an ``hf://owner/repo[/file][@rev]`` reference."""
    text = os.fspath(source)
    if not text.startswith("hf://"):
        return LocalSource(Path(text).expanduser())
    from fluxkit._types import LoRA
    from fluxkit.lora._hubfiles import pick_weight_file

    ref = LoRA(text)
    assert ref.repo_id is not None
    import httpx

    secret = resolve_secret(
        token,
        env_vars=("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"),
        backend="hub",
        argument_name="token",
        required=False,
    )
    headers = {"Authorization": f"Bearer {secret.reveal()}"} if secret else {}
    client = httpx.Client(
        headers=headers, follow_redirects=True, timeout=_TIMEOUT, transport=transport
    )
    base = hub_endpoint(endpoint)
    revision = ref.revision or "main"
    try:
        filename = ref.filename or pick_weight_file(client, base, ref.repo_id, revision)
    except BaseException:
        client.close()
        raise
    return HubSource(ref.repo_id, filename, revision=revision, client=client, endpoint=base)
