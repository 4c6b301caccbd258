"""The safetensors header: 8-byte little-endian length, then that many bytes of JSON.

Only the header is read, never tensor data, so inspecting a 170 MB LoRA costs one small read
(or two HTTP Range requests for a Hub file).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fluxkit._exceptions import InvalidRequestError

__all__ = [
    "MAX_HEADER_BYTES",
    "PickleFormatError",
    "SafetensorsHeader",
    "TensorEntry",
    "header_length",
    "parse_header",
    "sniff_pickle",
]

# The safetensors reference implementation refuses headers above 100 MB; so do we, which also
# bounds what a hostile file can make us allocate.
MAX_HEADER_BYTES = 100_000_000

_PICKLE_SUFFIXES = (".bin", ".ckpt", ".pt", ".pth", ".pkl", ".pickle")
_DTYPE_BYTES = {
    "F64": 8,
    "F32": 4,
    "F16": 2,
    "BF16": 2,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
    "I64": 8,
    "I32": 4,
    "I16": 2,
    "I8": 1,
    "U8": 1,
    "BOOL": 1,
    "U16": 2,
    "U32": 4,
    "U64": 8,
}
_PICKLE_REASON = (
    "pickle files (.bin/.ckpt/.pt) can execute arbitrary code when loaded; fluxkit reads only "
    "safetensors. Convert it once in a trusted environment, e.g. "
    "safetensors.torch.save_file(torch.load(path, weights_only=True), 'lora.safetensors')"
)


class PickleFormatError(InvalidRequestError):
    """The file is a pickle (PyTorch ``.bin``/``.ckpt``/``.pt``), which fluxkit refuses to load."""

    def __init__(self, source: str) -> None:
        super().__init__("path", source, "a .safetensors file", reason=_PICKLE_REASON)


@dataclass(frozen=True)
class TensorEntry:
    """One tensor as the header describes it (no data)."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    offsets: tuple[int, int]

    @property
    def nbytes(self) -> int:
        return self.offsets[1] - self.offsets[0]


@dataclass(frozen=True)
class SafetensorsHeader:
    """A parsed header: tensors by name, the ``__metadata__`` strings and the data start."""

    tensors: Mapping[str, TensorEntry]
    metadata: Mapping[str, str]
    data_start: int


def sniff_pickle(source: str, first_bytes: bytes) -> bool:
    """True when the name or the first bytes say "pickle" (raw protocol 2+ or torch's zip)."""
    if source.lower().split("?")[0].endswith(_PICKLE_SUFFIXES):
        return True
    return first_bytes[:1] == b"\x80" or first_bytes[:4] == b"PK\x03\x04"


def header_length(source: str, first8: bytes, file_size: int | None) -> int:
    """The JSON header length from the first 8 bytes, validated against the file size.

    Raises:
        PickleFormatError: the bytes are a pickle.
        InvalidRequestError: not a safetensors file.
    """
    if sniff_pickle(source, first8):
        raise PickleFormatError(source)
    if len(first8) < 8:
        raise _not_safetensors(source, "shorter than the 8-byte header length")
    (length,) = struct.unpack("<Q", first8[:8])
    if length < 2 or length > MAX_HEADER_BYTES:
        raise _not_safetensors(source, f"header length {length} is not plausible")
    if file_size is not None and 8 + length > file_size:
        raise _not_safetensors(source, "truncated: the header runs past the end of the file")
    return int(length)


def parse_header(source: str, raw: bytes, file_size: int | None = None) -> SafetensorsHeader:
    """Parse the JSON header bytes (without the 8-byte prefix).

    Example:
        ```python
        from fluxkit.lora._header import parse_header

        header = parse_header("x", b'{"a":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}}')
        header.tensors["a"].shape      # (2,)
        ```
    """
    try:
        document = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise _not_safetensors(source, "the header is not UTF-8 JSON") from None
    if not isinstance(document, dict):
        raise _not_safetensors(source, "the header is not a JSON object")
    metadata_raw = document.pop("__metadata__", None) or {}
    if not isinstance(metadata_raw, dict):
        raise _not_safetensors(source, "__metadata__ is not an object")
    metadata = {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in metadata_raw.items()}
    data_start = 8 + len(raw)
    data_size = None if file_size is None else file_size - data_start
    tensors: dict[str, TensorEntry] = {}
    for name, entry in document.items():
        tensors[name] = _tensor(source, name, entry, data_size)
    return SafetensorsHeader(tensors=tensors, metadata=metadata, data_start=data_start)


def _tensor(source: str, name: str, entry: Any, data_size: int | None) -> TensorEntry:
    if not isinstance(entry, dict):
        raise _not_safetensors(source, f"tensor {name!r} has no descriptor")
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if (
        not isinstance(dtype, str)
        or not isinstance(shape, list)
        or not all(isinstance(d, int) and d >= 0 for d in shape)
        or not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(isinstance(o, int) for o in offsets)
        or not 0 <= offsets[0] <= offsets[1]
    ):
        raise _not_safetensors(source, f"tensor {name!r} has a malformed descriptor")
    if data_size is not None and offsets[1] > data_size:
        raise _not_safetensors(source, f"tensor {name!r} points past the end of the file")
    return TensorEntry(name, dtype, tuple(shape), (offsets[0], offsets[1]))


def dtype_size(dtype: str) -> int | None:
    """Bytes per element of a safetensors dtype, or None if unknown."""
    return _DTYPE_BYTES.get(dtype)


def decode_scalar(dtype: str, data: bytes) -> float | None:
    """A scalar tensor's value (kohya ``.alpha``), or None for dtypes we do not decode."""
    formats = {"F32": "<f", "F64": "<d", "F16": "<e", "I64": "<q", "I32": "<i"}
    if dtype == "BF16" and len(data) == 2:
        return float(struct.unpack("<f", b"\x00\x00" + data)[0])
    fmt = formats.get(dtype)
    if fmt is None or len(data) != struct.calcsize(fmt):
        return None
    return float(struct.unpack(fmt, data)[0])


def _not_safetensors(source: str, reason: str) -> InvalidRequestError:
    return InvalidRequestError("path", source, "a .safetensors LoRA file", reason=reason)
