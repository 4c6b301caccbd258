"""Content-addressed upload cache: an input image used in 100 requests is uploaded once.

Keys are SHA-256 hashes of the image bytes (plus the provider name), values the URL the provider
gave back. Entries expire (provider storage does); an optional directory keeps them across
processes, written atomically as one small JSON file per key.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

from fluxkit._core import Wait
from fluxkit._images import InputImage

__all__ = ["DEFAULT_INLINE_LIMIT", "UploadCache", "image_reference"]

DEFAULT_INLINE_LIMIT = 256 * 1024
"""Images up to this many bytes travel inline as data URIs; larger ones are uploaded."""


class UploadCache:
    """Maps ``(provider, sha256)`` to an uploaded URL until it expires.

    Attributes:
        hits, uploads: counters, for tests and benchmarks.
    """

    def __init__(
        self,
        directory: str | Path | None = None,
        *,
        ttl: float = 6 * 3600,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.directory = Path(directory).expanduser() if directory is not None else None
        self.ttl = ttl
        self.clock = clock
        self.hits = 0
        self.uploads = 0
        self._entries: dict[str, tuple[str, float]] = {}
        self._in_flight: set[str] = set()
        self._lock = threading.Lock()

    def claim(self, key: str) -> bool:
        """Reserve the upload of ``key``; False when another flow is uploading it now."""
        with self._lock:
            if key in self._in_flight:
                return False
            self._in_flight.add(key)
            return True

    def release(self, key: str) -> None:
        with self._lock:
            self._in_flight.discard(key)

    @staticmethod
    def key(provider: str, image: InputImage) -> str:
        return f"{provider}-{image.sha256}"

    def get(self, key: str) -> str | None:
        with self._lock:
            entry = self._entries.get(key) or self._load(key)
            if entry is None or entry[1] <= self.clock():
                self._entries.pop(key, None)
                return None
            self._entries[key] = entry
            self.hits += 1
            return entry[0]

    def put(self, key: str, url: str) -> None:
        expires = self.clock() + self.ttl
        with self._lock:
            self.uploads += 1
            self._entries[key] = (url, expires)
            if self.directory is not None:
                from fluxkit._record import write_atomic

                payload = json.dumps({"url": url, "expires": expires}).encode()
                write_atomic(self.directory / f"{key}.json", payload)

    def _load(self, key: str) -> tuple[str, float] | None:
        if self.directory is None:
            return None
        path = self.directory / f"{key}.json"
        try:
            data = json.loads(path.read_text())
            return str(data["url"]), float(data["expires"])
        except (OSError, ValueError, KeyError):
            return None


def image_reference(
    image: InputImage,
    *,
    provider: str,
    cache: UploadCache,
    upload: Callable[[InputImage], Generator[Any, Any, str]] | None,
    inline_limit: int = DEFAULT_INLINE_LIMIT,
) -> Generator[Any, Any, str]:
    """Sub-flow: the string a provider should receive for ``image``.

    A URL is passed through; small images go inline as data URIs; larger ones are uploaded with
    the provider's ``upload`` sub-flow, once per content hash.
    """
    if image.url is not None:
        return image.url
    assert image.data is not None
    if upload is None or len(image.data) <= inline_limit:
        return image.data_uri()
    key = cache.key(provider, image)
    while True:
        cached = cache.get(key)
        if cached is not None:
            return cached
        if cache.claim(key):
            break
        # Another call is uploading the same bytes: wait for its URL rather than pay twice.
        yield Wait(0.01)
    try:
        url = yield from upload(image)
        cache.put(key, url)
    finally:
        cache.release(key)
    return url
