"""Per-request LoRAs on the worker: fetched with the request's own token, kept on disk by content
hash in a size-bounded LRU cache shared by all requests.

* ``hf://owner/repo[/file][@rev]`` (and ``owner/repo``): every request asks the Hub for the file's
  metadata **with its own token** (one ``HEAD``), so a private LoRA cached for one request is
  never served to a request that cannot read it; the content hash in the answer (``X-Linked-Etag``
  of LFS files) finds the cached copy, and only a miss downloads.
* ``https://`` URLs: downloaded once; the URL's hash points at the content hash.

Tokens are passed to huggingface_hub per call: never logged, written or kept.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, cast
from urllib.parse import urlsplit

from fluxkit._types import LoRA

__all__ = ["CachedLora", "LoraFetchError", "LoraStore"]

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_PICKLE_SUFFIXES = (".bin", ".ckpt", ".pt", ".pth", ".pkl", ".pickle")


class LoraFetchError(ValueError):
    """A per-request LoRA could not be fetched; ``field`` names it (``loras[1]``)."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


@dataclass(frozen=True)
class CachedLora:
    """A LoRA file in the cache: its path, content hash and whether this request downloaded it."""

    path: Path
    sha256: str
    downloaded: bool


class LoraStore:
    """Content-addressed LoRA files under ``root``, at most ``max_bytes`` (LRU by last use).

    Example:
        ```python
        store = LoraStore(Path("/runpod-volume/loras"), max_bytes=10 << 30)
        cached = store.fetch(fluxkit.LoRA("hf://me/private-lora"), token="hf_...", field="loras[0]")
        ```
    """

    def __init__(self, root: Path, *, max_bytes: int, hub_endpoint: str | None = None) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self.hub_endpoint = hub_endpoint
        self.blobs = root / "blobs"
        self.urls = root / "urls"
        self._lock = threading.Lock()
        self.hits = 0
        self.downloads = 0
        self.evictions = 0

    # -- public -----------------------------------------------------------------------------

    def fetch(self, lora: LoRA, *, token: str | None, field: str) -> CachedLora:
        """The cached file for ``lora``, downloading it if needed.

        Raises:
            LoraFetchError: not found, not readable with ``token``, unreachable, or not
                safetensors.
        """
        if lora.kind == "hf":
            cached = self._hub(lora, token, field)
        elif lora.kind == "url":
            cached = self._url(lora, field)
        else:
            raise LoraFetchError(
                field, "hf://owner/repo[/file], owner/repo or an https:// URL (no worker paths)"
            )
        self._touch(cached.path)
        return cached

    def fetch_all(
        self, loras: Iterable[tuple[LoRA, str]], *, token: str | None
    ) -> list[CachedLora]:
        """Fetch several, then trim the cache without evicting any of them."""
        found = [self.fetch(lora, token=token, field=field) for lora, field in loras]
        self.trim(keep={item.sha256 for item in found})
        return found

    def size(self) -> int:
        return sum(p.stat().st_size for p in self._blob_files())

    def trim(self, keep: set[str] = frozenset()) -> None:  # type: ignore[assignment]
        """Delete least recently used files until the cache fits ``max_bytes``."""
        with self._lock:
            files = sorted(self._blob_files(), key=lambda p: p.stat().st_mtime_ns)
            total = sum(p.stat().st_size for p in files)
            for path in files:
                if total <= self.max_bytes:
                    break
                if path.stem in keep:
                    continue
                size = path.stat().st_size
                path.unlink(missing_ok=True)
                total -= size
                self.evictions += 1

    # -- sources ----------------------------------------------------------------------------

    def _hub(self, lora: LoRA, token: str | None, field: str) -> CachedLora:
        from huggingface_hub import HfApi, get_hf_file_metadata, hf_hub_url

        from fluxkit.lora._hubfiles import choose_primary

        repo, revision = lora.repo_id or "", lora.revision
        filename = lora.filename
        try:
            if filename is None:
                files = HfApi(endpoint=self.hub_endpoint).list_repo_files(
                    repo, revision=revision, token=token or False
                )
                filename = choose_primary(files)
                if filename is None:
                    raise LoraFetchError(
                        field,
                        f"{repo} has no single .safetensors file to pick; name it "
                        "(hf://owner/repo/file.safetensors or weight_name)",
                    )
            _refuse_pickle(filename, field)
            url = hf_hub_url(repo, filename, revision=revision, endpoint=self.hub_endpoint)
            meta = get_hf_file_metadata(url, token=token or False, endpoint=self.hub_endpoint)
        except LoraFetchError:
            raise
        except Exception as exc:
            raise _hub_error(exc, repo, filename, field) from None
        etag = (meta.etag or "").strip('"').lower()
        if _SHA256.match(etag):
            blob = self._blob(etag)
            if blob.is_file():
                self.hits += 1
                return CachedLora(blob, etag, False)
        location = meta.location or url
        same_host = urlsplit(location).netloc == urlsplit(url).netloc
        headers = {"authorization": f"Bearer {token}"} if token and same_host else None
        sha = self._download(location, field, headers=headers, expected=etag or None)
        return CachedLora(self._blob(sha), sha, True)

    def _url(self, lora: LoRA, field: str) -> CachedLora:
        _refuse_pickle(lora.filename or "", field)
        pointer = self.urls / hashlib.sha256(lora.source.encode()).hexdigest()
        if pointer.is_file():
            sha = pointer.read_text().strip()
            if _SHA256.match(sha) and self._blob(sha).is_file():
                self.hits += 1
                return CachedLora(self._blob(sha), sha, False)
        if lora.source.startswith("data:"):
            from fluxkit._core._media import decode_data_uri

            data = decode_data_uri(lora.source)[0]
            sha = self._store_bytes(data, field)
        else:
            sha = self._download(lora.source, field)
        self.urls.mkdir(parents=True, exist_ok=True)
        pointer.write_text(sha)
        return CachedLora(self._blob(sha), sha, True)

    # -- storage ----------------------------------------------------------------------------

    def _blob(self, sha: str) -> Path:
        return self.blobs / f"{sha}.safetensors"

    def _blob_files(self) -> list[Path]:
        return list(self.blobs.glob("*.safetensors")) if self.blobs.is_dir() else []

    def _touch(self, path: Path) -> None:
        now = time.time_ns()
        try:
            os.utime(path, ns=(now, now))
        except OSError:
            pass

    def _download(
        self,
        url: str,
        field: str,
        *,
        headers: dict[str, str] | None = None,
        expected: str | None = None,
    ) -> str:
        from huggingface_hub.file_download import http_get

        self.blobs.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=self.blobs, suffix=".part", delete=False) as tmp:
            try:
                http_get(url, cast("BinaryIO", tmp), headers=headers, displayed_filename="LoRA")
            except Exception as exc:
                Path(tmp.name).unlink(missing_ok=True)
                status = getattr(getattr(exc, "response", None), "status_code", None)
                why = f"HTTP {status}" if isinstance(status, int) else type(exc).__name__
                raise LoraFetchError(field, f"download failed ({why})") from None
        return self._commit(Path(tmp.name), field, expected)

    def _store_bytes(self, data: bytes, field: str) -> str:
        self.blobs.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=self.blobs, suffix=".part", delete=False) as tmp:
            tmp.write(data)
        return self._commit(Path(tmp.name), field, None)

    def _commit(self, part: Path, field: str, expected: str | None) -> str:
        try:
            with part.open("rb") as handle:
                head = handle.read(8)
                handle.seek(0)
                sha = hashlib.file_digest(handle, "sha256").hexdigest()
            if head[:2] == b"PK" or head[:1] == b"\x80" or len(head) < 8:
                raise LoraFetchError(field, "not a .safetensors file (pickle or truncated)")
            if expected and _SHA256.match(expected) and sha != expected:
                raise LoraFetchError(field, "download corrupted (content hash mismatch)")
        except BaseException:
            part.unlink(missing_ok=True)
            raise
        os.replace(part, self._blob(sha))  # atomic: a concurrent reader never sees half a file
        self.downloads += 1
        return sha


def _refuse_pickle(name: str, field: str) -> None:
    if name.lower().split("?")[0].endswith(_PICKLE_SUFFIXES):
        raise LoraFetchError(field, f"{name}: pickle formats can run code when loaded; refused")


def _hub_error(exc: Exception, repo: str, filename: str | None, field: str) -> LoraFetchError:
    kind = type(exc).__name__
    status: Any = getattr(getattr(exc, "response", None), "status_code", None)
    if kind in ("RepositoryNotFoundError", "GatedRepoError") or status in (401, 403):
        return LoraFetchError(
            field, f"{repo} not found or not readable (a private or gated repo needs hf_token)"
        )
    if kind in ("EntryNotFoundError", "RemoteEntryNotFoundError") or status == 404:
        return LoraFetchError(field, f"{filename} not found in {repo}")
    if kind == "OfflineModeIsEnabled":
        return LoraFetchError(field, "HF_HUB_OFFLINE is set on the worker; Hub LoRAs need network")
    return LoraFetchError(field, f"the Hub could not be reached for {repo} ({kind})")
