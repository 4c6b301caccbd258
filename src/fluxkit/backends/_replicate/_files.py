"""Replicate's files API, request side (pure): ``POST /v1/files`` as multipart/form-data.

https://replicate.com/docs/topics/predictions/input-files: the form field is ``content`` (the
official SDK sends ``files={"content": (name, file, type)}``); the answer is a file object whose
``urls.get`` can be passed as a model input.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fluxkit._config import Secret
from fluxkit._core import HttpRequest, HttpResponse
from fluxkit._core._media import sniff_format
from fluxkit._exceptions import ResponseFormatError

__all__ = ["file_url", "multipart", "upload_request"]

_EXTENSIONS = {"jpeg": "jpg"}


def multipart(field: str, filename: str, data: bytes, content_type: str) -> tuple[bytes, str]:
    """One-file multipart/form-data body and its Content-Type header value."""
    import hashlib

    boundary = f"fluxkit-{hashlib.sha256(data).hexdigest()[:32]}"
    head = (
        f"--{boundary}\r\n"
        f'Content-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
        f"Content-Type: {content_type}\r\n\r\n"
    ).encode()
    return (
        head + data + f"\r\n--{boundary}--\r\n".encode(),
        f"multipart/form-data; boundary={boundary}",
    )


def upload_request(
    base_url: str, headers: Mapping[str, str | Secret], data: bytes, mime: str
) -> HttpRequest:
    fmt = sniff_format(data) or "bin"
    body, content_type = multipart(
        "content", f"fluxkit-input.{_EXTENSIONS.get(fmt, fmt)}", data, mime
    )
    # Uploading the same bytes twice costs storage, not a generation: safe to retry.
    return HttpRequest(
        "POST",
        f"{base_url}/v1/files",
        headers={**headers, "content-type": content_type},
        content=body,
        retry="idempotent",
        timeout=120.0,
    )


def file_url(response: HttpResponse, backend: str) -> str:
    """``urls.get`` of the created file."""
    body: Any = response.json()
    url = body.get("urls", {}).get("get") if isinstance(body, dict) else None
    if not isinstance(url, str) or not url:
        raise ResponseFormatError(
            "file upload answered without urls.get",
            backend=backend,
            body=body,
            status_code=response.status_code,
        )
    return url
