"""The generation record: what made an image, embedded in the file and read back.

PNG carries it in an ``iTXt`` chunk named ``fluxkit``; JPEG and WebP carry it in EXIF
(``UserComment``) and in XMP (``fluxkit:record``). The record is versioned (``record_version``) so
later fluxkit versions keep reading older files.
"""

from __future__ import annotations

import io
import json
import os
import struct
import zlib
from collections.abc import Mapping
from html import escape, unescape
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from fluxkit._core import _media
from fluxkit._files import atomic_write, atomic_write_free_name

if TYPE_CHECKING:
    from PIL import Image

    from fluxkit._results import GeneratedImage

__all__ = [
    "RECORD_VERSION",
    "read_record",
    "write_atomic",
    "write_image",
    "write_image_free_name",
]

RECORD_VERSION = 1
_KEY = "fluxkit"
_EXIF_USER_COMMENT = 0x9286
_EXIF_IFD = 0x8769
_XMP_NS = "https://fluxkit.dev/ns/1.0/"
_FORMATS = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".webp": "webp"}


def write_atomic(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path``, replacing it, so readers see the old file or the new one.

    Kept for callers that own their files (the upload cache); see `fluxkit._files`.
    """
    return atomic_write(path, data, overwrite=True)


def _xmp(record_json: str) -> bytes:
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
        'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        f'<rdf:Description rdf:about="" xmlns:fluxkit="{_XMP_NS}" '
        f'fluxkit:record="{escape(record_json, quote=True)}"/>'
        '</rdf:RDF></x:xmpmeta><?xpacket end="w"?>'
    ).encode()


def _exif_bytes(image: Image.Image, record_json: str) -> bytes:
    exif = image.getexif()
    # EXIF UserComment: 8-byte charset prefix, then the text.
    exif.get_ifd(_EXIF_IFD)[_EXIF_USER_COMMENT] = b"UNICODE\x00" + record_json.encode("utf-16-be")
    return exif.tobytes()


def encode_with_record(
    image: Image.Image, fmt: str, record: Mapping[str, Any], *, source_format: str | None = None
) -> bytes:
    """Encode ``image`` as ``fmt`` with ``record`` embedded."""
    from PIL import PngImagePlugin

    record_json = json.dumps(dict(record), sort_keys=True, ensure_ascii=False)
    buffer = io.BytesIO()
    if fmt == "png":
        info = PngImagePlugin.PngInfo()
        info.add_itxt(_KEY, record_json)
        image.save(buffer, format="PNG", pnginfo=info)
    elif fmt == "jpeg":
        rgb = image if image.mode in ("RGB", "L") else image.convert("RGB")
        # "keep" reuses the source's quantisation tables: re-saving a provider JPEG loses nothing
        # visible; other sources get a high fixed quality.
        quality: Any = "keep" if source_format == "jpeg" and image.format == "JPEG" else 95
        rgb.save(
            buffer,
            format="JPEG",
            quality=quality,
            exif=_exif_bytes(rgb, record_json),
            xmp=_xmp(record_json),
        )
    elif fmt == "webp":
        lossless = source_format == "png"
        image.save(
            buffer,
            format="WEBP",
            quality=95,
            lossless=lossless,
            exif=_exif_bytes(image, record_json),
            xmp=_xmp(record_json),
        )
    else:
        raise ValueError(f"unsupported format {fmt!r}; use png, jpeg or webp")
    return buffer.getvalue()


def _encode(image: GeneratedImage, fmt: str | None) -> bytes:
    fmt = (fmt or image.format).lower()
    fmt = "jpeg" if fmt == "jpg" else fmt
    if fmt not in ("png", "jpeg", "webp"):
        raise ValueError(f"unsupported format {fmt!r}; use png, jpeg or webp")
    record = {"record_version": RECORD_VERSION, **image.record}
    data = image.data
    if fmt == "png" and data.startswith(_PNG_SIGNATURE):
        spliced = _splice_png_record(data, record)
        if spliced is not None:
            return spliced
    pil = _media.open_image(data)
    return encode_with_record(pil, fmt, record, source_format=image.format)


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _splice_png_record(data: bytes, record: Mapping[str, Any]) -> bytes | None:
    """The PNG with the record's ``iTXt`` chunk put right after ``IHDR``, pixels untouched.

    A PNG that is already PNG needs no decode and re-encode to carry a record (which costs
    ~10 ms at 256x256 and grows with the image): chunks are spliced. Any earlier fluxkit
    record chunk is dropped. None when the file is not a well-formed chunk sequence; the
    caller then re-encodes.
    """
    record_json = json.dumps(dict(record), sort_keys=True, ensure_ascii=False).encode()
    body = _KEY.encode() + b"\0\0\0\0\0" + record_json  # uncompressed, no language
    chunk = struct.pack(">I", len(body)) + b"iTXt" + body
    chunk += struct.pack(">I", zlib.crc32(b"iTXt" + body) & 0xFFFFFFFF)
    parts = [_PNG_SIGNATURE]
    offset = len(_PNG_SIGNATURE)
    first = True
    while offset + 12 <= len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind = data[offset + 4 : offset + 8]
        end = offset + 12 + length
        if end > len(data):
            return None
        piece = data[offset:end]
        if first:
            if kind != b"IHDR":
                return None
            parts.extend((piece, chunk))
            first = False
        elif not (
            kind in _TEXT_CHUNKS
            and data[offset + 8 : offset + 8 + len(_KEY) + 1] == _KEY.encode() + b"\0"
        ):
            parts.append(piece)
        offset = end
        if kind == b"IEND":
            return b"".join(parts)
    return None


def write_image(
    image: GeneratedImage, path: Path, *, format: str | None = None, overwrite: bool = False
) -> Path:
    """Encode ``image`` with its record and write it atomically to ``path``.

    Raises:
        OutputExistsError: ``path`` exists and ``overwrite`` is False (checked before encoding,
            and again, atomically, when the file takes its name).
    """
    if not overwrite and os.path.lexists(path):
        from fluxkit._exceptions import OutputExistsError

        raise OutputExistsError(path)
    data = _encode(image, format or _FORMATS.get(path.suffix.lower()))
    return atomic_write(path, data, overwrite=overwrite)


def write_image_free_name(image: GeneratedImage, folder: Path, stem: str, suffix: str) -> Path:
    """Write ``image`` to ``folder/stem+suffix``, or the first free ``stem-N+suffix``."""
    data = _encode(image, _FORMATS.get(suffix.lower()))
    return atomic_write_free_name(folder, stem, suffix, data)


def read_record(source: str | os.PathLike[str] | bytes) -> dict[str, Any] | None:
    """The generation record embedded by ``GeneratedImage.save()``, or None if there is none.

    Example:
        ```python
        import fluxkit

        result = fluxkit.Generator("fake").generate("a lighthouse", seed=3)
        path = result.images[0].save("lighthouse.png")
        fluxkit.read_record(path)["seed"]   # 3
        ```
    """
    # Metadata only: the pixels are never decoded, so a 144 MP file costs its headers, not GBs.
    handle = io.BytesIO(source) if isinstance(source, bytes) else Path(source).open("rb")  # noqa: SIM115
    with handle:
        if handle.read(8) == _PNG_SIGNATURE:
            text = _png_text(handle, _KEY)
        else:
            handle.seek(0)
            text = _pil_record(handle)
    if text is None:
        return None
    try:
        record = json.loads(text)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_TEXT_CHUNKS = (b"tEXt", b"zTXt", b"iTXt")
_MAX_TEXT = 16 * 1024 * 1024  # a record is a few KB; a bigger chunk is not ours (or a zip bomb)


def _png_text(handle: BinaryIO, key: str) -> str | None:
    """The text chunk named ``key``, walking the chunks and seeking past the image data.

    Pillow only parses text chunks before the first ``IDAT`` without decoding; a record written
    after the pixels (other tools do) would otherwise need the whole image decoded.
    """
    wanted = key.encode("latin-1")
    while True:
        header = handle.read(8)
        if len(header) < 8:
            return None
        length, kind = int.from_bytes(header[:4], "big"), header[4:]
        if kind == b"IEND":
            return None
        if kind not in _TEXT_CHUNKS or length > _MAX_TEXT:
            handle.seek(length + 4, io.SEEK_CUR)  # data and CRC
            continue
        body = handle.read(length)
        handle.seek(4, io.SEEK_CUR)
        keyword, _, rest = body.partition(b"\0")
        if keyword != wanted:
            continue
        try:
            return _chunk_text(kind, rest)
        except (ValueError, zlib.error):
            return None


def _chunk_text(kind: bytes, rest: bytes) -> str:
    if kind == b"tEXt":
        return rest.decode("latin-1")
    if kind == b"zTXt":
        return _inflate(rest[1:]).decode("latin-1")
    # iTXt: compression flag, method, language\0, translated keyword\0, UTF-8 text
    compressed = rest[:1] == b"\1"
    text = rest[2:].split(b"\0", 2)[-1]
    return (_inflate(text) if compressed else text).decode("utf-8")


def _inflate(data: bytes) -> bytes:
    inflater = zlib.decompressobj()
    out = inflater.decompress(data, _MAX_TEXT)
    if inflater.unconsumed_tail:
        raise ValueError("text chunk inflates past the limit")
    return out


def _pil_record(handle: BinaryIO) -> str | None:
    """EXIF or XMP record of a JPEG/WebP, read from the headers Pillow parses on open."""
    import warnings

    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            # no pixels are decoded here, so the size of the image is no danger
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(handle)
    except (UnidentifiedImageError, Image.DecompressionBombError):
        return None
    with image:
        return _record_from_exif(image) or _record_from_xmp(image)


def _record_from_exif(image: Image.Image) -> str | None:
    comment = image.getexif().get_ifd(_EXIF_IFD).get(_EXIF_USER_COMMENT)
    if not isinstance(comment, bytes) or len(comment) < 8:
        return None
    charset, body = comment[:8], comment[8:]
    if charset.startswith(b"UNICODE"):
        # Some writers use little-endian despite the spec; JSON starts with "{" either way.
        return body.decode("utf-16-le" if body[:1] == b"{" else "utf-16-be", errors="replace")
    return body.decode("utf-8", errors="replace")


def _record_from_xmp(image: Image.Image) -> str | None:
    raw = image.info.get("xmp")
    if not raw:
        return None
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else str(raw)
    marker = 'fluxkit:record="'
    start = text.find(marker)
    if start < 0:
        return None
    end = text.find('"', start + len(marker))
    return unescape(text[start + len(marker) : end])
