"""Reading ComfyUI's answers (pure): history entries, execution errors, images."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from fluxkit._core import HttpResponse
from fluxkit._exceptions import JobCancelledError, ResponseFormatError
from fluxkit.comfy._errors import ComfyExecutionError, XLabsIPAdapterIncompatibleError

__all__ = ["execution_failure", "history_entry", "image_size", "images_in_json", "terminal_state"]

XLABS_HINT = (
    "the XLabs IP-Adapter cannot sample on this ComfyUI: since ComfyUI 0.3.8 FLUX blocks get "
    "attn_mask/transformer_options and x-flux-comfyui's replacement block does not accept them "
    "(XLabs-AI/x-flux-comfyui issues #160, #180). Fix: run the server with fluxkit's "
    "compatibility patch (fluxkit.deploy.modal_comfyui ships it; the ComfyUI test kit has it as "
    "xflux_compat=True), or pin ComfyUI <= 0.3.7"
)
XLABS_DTYPE_HINT = (
    "the XLabs IP-Adapter computes in bf16 while ComfyUI runs FLUX in fp32 here (CPU): "
    "'Expected query, key, and value to have the same dtype'. Fix: fluxkit's compatibility "
    "patch casts the IP-Adapter to the model's dtype (fluxkit.deploy.modal_comfyui ships it)"
)


def history_entry(response: HttpResponse, prompt_id: str, backend: str) -> dict[str, Any] | None:
    """The history entry of ``prompt_id``; None while it is queued or running."""
    try:
        body = response.json()
    except ValueError:
        raise ResponseFormatError(
            f"/history answered non-JSON: {response.text[:200]!r}", backend=backend
        ) from None
    if not isinstance(body, dict):
        raise ResponseFormatError("/history answered no object", backend=backend)
    entry = body.get(prompt_id)
    return entry if isinstance(entry, dict) else None


def terminal_state(entry: dict[str, Any]) -> str | None:
    """``success``, ``error``, ``interrupted`` — or None when the entry is not final yet."""
    status = entry.get("status") or {}
    messages = status.get("messages") or []
    kinds = [m[0] for m in messages if isinstance(m, list | tuple) and m]
    if "execution_interrupted" in kinds:
        return "interrupted"
    if status.get("status_str") == "error" or "execution_error" in kinds:
        return "error"
    if status.get("status_str") == "success" or status.get("completed"):
        return "success"
    return "success" if entry.get("outputs") and not status else None


def execution_failure(
    data: dict[str, Any], *, backend: str, prompt_id: str
) -> ComfyExecutionError | JobCancelledError:
    """The typed error for an ``execution_error`` (or ``execution_interrupted``) message."""
    node, node_type = data.get("node_id"), data.get("node_type")
    text = str(data.get("exception_message") or "").strip()
    kind = data.get("exception_type")
    where = f"node {node} ({node_type})" if node else "the prompt"
    common: dict[str, Any] = {
        "backend": backend,
        "request_id": prompt_id,
        "node": None if node is None else str(node),
        "node_type": node_type,
        "exception_type": kind,
        "exception_message": text,
        "provider_message": text,
        "body": data,
        "logs": tuple(str(line) for line in (data.get("traceback") or ())),
    }
    if "unexpected keyword argument 'attn_mask'" in text:
        return XLabsIPAdapterIncompatibleError(f"{where} failed: {text} — {XLABS_HINT}", **common)
    if "same dtype" in text and "ipadapter" in " ".join(common["logs"]).lower():
        return XLabsIPAdapterIncompatibleError(
            f"{where} failed: {text} — {XLABS_DTYPE_HINT}", **common
        )
    return ComfyExecutionError(f"{where} failed: {kind}: {text}", **common)


def interrupted(data: dict[str, Any], *, backend: str, prompt_id: str) -> JobCancelledError:
    node = data.get("node_id")
    where = f" in node {node} ({data.get('node_type')})" if node else ""
    return JobCancelledError(
        f"the prompt was interrupted on the server{where} (POST /interrupt by someone)",
        backend=backend,
        request_id=prompt_id,
        body=data,
    )


def image_size(data: bytes) -> tuple[int, int, str]:
    """(width, height, format) of encoded image bytes."""
    if data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) >= 24:
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big"), "png"
    from io import BytesIO

    from PIL import Image

    with Image.open(BytesIO(data)) as image:
        return image.size[0], image.size[1], (image.format or "png").lower()


def _decode_image(value: Any) -> bytes | str | None:
    """Bytes from a data URI or bare base64; a URL string is returned as is."""
    if not isinstance(value, str):
        return None
    if value.startswith(("http://", "https://")):
        return value
    if value.startswith("data:"):
        value = value.split(",", 1)[1] if "," in value else ""
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


def images_in_json(body: Any, key: str | None) -> list[bytes | str]:
    """Images (bytes, or URLs to fetch) in a one-shot endpoint's JSON answer."""
    if not isinstance(body, dict):
        return []
    keys = [key] if key else ["image", "images", "output", "data"]
    found: list[bytes | str] = []
    for name in keys:
        value: Any = body
        for part in name.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        values = value if isinstance(value, list) else [value]
        for item in values:
            if isinstance(item, dict):
                item = item.get("url") or item.get("image") or item.get("b64_json")
            decoded = _decode_image(item)
            if decoded is not None:
                found.append(decoded)
        if found:
            return found
    return found
