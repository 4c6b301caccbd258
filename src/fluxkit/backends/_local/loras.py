"""LoRA files for the local backend: fetch, verify, identify, and keep recently used ones loaded.

* `LoraResolver` turns a `LoRA` into a verified local ``.safetensors``
  file with its content hash. Hub files live in the Hugging Face cache; URL downloads are stored
  by content hash under the fluxkit cache. Resolutions are memoised, so a LoRA used again costs a
  ``stat()``, not a read or a network round trip.
* `AdapterCache` keeps up to ``capacity`` adapters loaded in the pipeline (LRU), keyed by
  content hash, and activates a request's LoRAs with their scales through ``set_adapters``.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import tempfile
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fluxkit._exceptions import ConfigurationError, InvalidRequestError
from fluxkit._types import LoRA
from fluxkit.backends._local.noise import fold_library_logs
from fluxkit.lora._hubfiles import choose_primary

__all__ = ["AdapterCache", "LoRALoadError", "LoraFile", "LoraResolver", "detect_format"]

_PICKLE_SUFFIXES = (".bin", ".ckpt", ".pt", ".pth", ".pkl", ".pickle")
_MAX_HEADER = 100 * 1024 * 1024  # safetensors caps its JSON header at 100 MB too
_ALLOWED = "a FLUX.1 LoRA in .safetensors (diffusers/peft, kohya/sd-scripts or XLabs keys)"


class LoRALoadError(InvalidRequestError):
    """A LoRA file could not be applied to the model. Names the file and its detected format.

    Attributes:
        path: the local file that was read.
        format: the key layout fluxkit detected (``"diffusers"``, ``"kohya"``, ``"xlabs"``, ...).
    """

    def __init__(self, field: str, lora: LoRA, path: Path, fmt: str, reason: str) -> None:
        self.path = path
        self.format = fmt
        super().__init__(field, lora.source, _ALLOWED, reason=f"{path} [format: {fmt}]: {reason}")


@dataclass(frozen=True)
class LoraFile:
    """A verified local LoRA file: where it is, what it holds, and its detected key layout."""

    path: Path
    sha256: str
    format: str


def detect_format(keys: Sequence[str]) -> str:
    """The key layout of a LoRA state dict, named as people know it (for messages and logs).

    Mirrors the checks diffusers' ``FluxLoraLoaderMixin.lora_state_dict`` makes before
    converting, so the name matches the converter that will run.

    Example:
        ```python
        detect_format(["lora_unet_double_blocks_0_img_attn_qkv.lora_down.weight"])  # 'kohya'
        ```
    """
    if any(".lora_down.weight" in key for key in keys):
        return "kohya"
    if any("processor" in key for key in keys):
        return "xlabs"
    if any("query_norm.scale" in key for key in keys):
        return "bfl-control"
    if any("base_model" in key for key in keys):
        return "peft (base_model.model.*)"
    if not any("lora" in key for key in keys):
        return "not a LoRA (no lora keys)"
    if any(key.startswith(("transformer.", "text_encoder.")) for key in keys):
        return "diffusers"
    if any(key.startswith(("transformer_blocks.", "single_transformer_blocks.")) for key in keys):
        return "peft without the 'transformer.' prefix"
    return "unknown"


def _read_header(path: Path) -> dict[str, Any]:
    """The safetensors JSON header, or ValueError saying what the file is instead."""
    with path.open("rb") as handle:
        head = handle.read(8)
        if head[:2] == b"PK" or head[:1] == b"\x80":
            raise ValueError("it is a PyTorch pickle checkpoint, not safetensors")
        if len(head) < 8:
            raise ValueError("file too short to be safetensors")
        (size,) = struct.unpack("<Q", head)
        if size > _MAX_HEADER:
            raise ValueError("not a safetensors file (bad header length)")
        try:
            header = json.loads(handle.read(size))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise ValueError("not a safetensors file (unreadable header)") from None
    if not isinstance(header, dict):
        raise ValueError("not a safetensors file (header is not a mapping)")
    return header


def _sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def default_cache_dir() -> Path:
    """``$FLUXKIT_CACHE_DIR``, else ``$XDG_CACHE_HOME/fluxkit``, else ``~/.cache/fluxkit``."""
    explicit = os.environ.get("FLUXKIT_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "fluxkit"


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


class LoraResolver:
    """LoRA reference -> verified local file with content hash, memoised per source."""

    def __init__(self, cache_dir: Path, *, token: str | None = None) -> None:
        self.cache_dir = cache_dir
        self._token = token
        # (source, weight_name) -> (path, stat signature, file); a changed file is re-read.
        self._memo: dict[tuple[str, str | None], tuple[tuple[int, int], LoraFile]] = {}

    def resolve(self, lora: LoRA, field: str) -> LoraFile:
        if (lora.filename or "").lower().endswith(_PICKLE_SUFFIXES):
            raise _pickle_refused(lora, field, lora.filename or "")
        key = (lora.source, lora.weight_name)
        memo = self._memo.get(key)
        if memo is not None:
            try:
                stat = memo[1].path.stat()
                if (stat.st_size, stat.st_mtime_ns) == memo[0]:
                    return memo[1]
            except OSError:
                pass  # the cached file vanished: fetch again
        path = self._fetch(lora, field)
        if path.suffix.lower() in _PICKLE_SUFFIXES:
            raise _pickle_refused(lora, field, path.name)
        try:
            header = _read_header(path)
        except (OSError, ValueError) as exc:
            raise LoRALoadError(field, lora, path, "unreadable", str(exc)) from None
        fmt = detect_format([k for k in header if k != "__metadata__"])
        stat = path.stat()
        file = LoraFile(path, _sha256(path), fmt)
        self._memo[key] = ((stat.st_size, stat.st_mtime_ns), file)
        return file

    def _fetch(self, lora: LoRA, field: str) -> Path:
        if lora.kind == "path":
            return self._local(lora, field)
        if lora.kind == "hf":
            return self._hub(lora, field)
        return self._url(lora, field)

    def _local(self, lora: LoRA, field: str) -> Path:
        path = Path(lora.source)
        if path.is_dir():
            names = (
                [lora.weight_name]
                if lora.weight_name
                else _pick_weight(sorted(p.name for p in path.glob("*.safetensors")), lora, field)
            )
            path = path / names[0]
        if not path.is_file():
            raise InvalidRequestError(
                field, lora.source, "an existing .safetensors file", reason="no such file"
            )
        return path

    def _hub(self, lora: LoRA, field: str) -> Path:
        try:
            from huggingface_hub import HfApi, hf_hub_download
        except ImportError as exc:  # pragma: no cover - a dependency of diffusers
            from fluxkit._exceptions import MissingDependencyError

            raise MissingDependencyError(
                "hf:// LoRAs", extra="local", package="huggingface_hub"
            ) from exc
        repo, revision = lora.repo_id or "", lora.revision
        filename = lora.filename
        try:
            if filename is None:
                files = HfApi().list_repo_files(repo, revision=revision, token=self._token)
                filename = _pick_weight(
                    [f for f in files if f.endswith(".safetensors")], lora, field
                )[0]
            return Path(hf_hub_download(repo, filename, revision=revision, token=self._token))
        except Exception as exc:
            mapped = _hub_error(exc, repo, filename, field, lora)
            if mapped is exc:
                raise
            raise mapped from exc

    def _url(self, lora: LoRA, field: str) -> Path:
        # Content-addressed: blobs/<sha256>.safetensors, plus urls/<sha256(url)> -> content hash.
        blobs, index = self.cache_dir / "loras" / "blobs", self.cache_dir / "loras" / "urls"
        pointer = index / hashlib.sha256(lora.source.encode()).hexdigest()
        if pointer.is_file():
            blob = blobs / f"{pointer.read_text().strip()}.safetensors"
            if blob.is_file():
                return blob
        if lora.source.startswith("data:"):
            from fluxkit._core._media import decode_data_uri

            chunks: Iterable[bytes] = [decode_data_uri(lora.source)[0]]
        elif _offline():
            raise ConfigurationError(
                f"LoRA {lora.source} is not in the fluxkit cache ({blobs}) and HF_HUB_OFFLINE "
                "is set: download it once with network access, or pass a local path"
            )
        else:
            chunks = _download(lora, field)
        blobs.mkdir(parents=True, exist_ok=True)
        index.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        with tempfile.NamedTemporaryFile(dir=blobs, delete=False, suffix=".part") as tmp:
            try:
                for chunk in chunks:  # streamed: a 300 MB LoRA never sits in memory
                    digest.update(chunk)
                    tmp.write(chunk)
            except BaseException:
                Path(tmp.name).unlink(missing_ok=True)
                raise
        blob = blobs / f"{digest.hexdigest()}.safetensors"
        os.replace(tmp.name, blob)  # atomic: concurrent processes never see half a file
        pointer.write_text(digest.hexdigest())
        return blob


def _pickle_refused(lora: LoRA, field: str, name: str) -> InvalidRequestError:
    return InvalidRequestError(
        field,
        lora.source,
        "a .safetensors file",
        reason=f"{name} is a pickle format, which can execute code when loaded; convert it to "
        "safetensors (safetensors.torch.save_file(torch.load(f, weights_only=True), out))",
    )


def _download(lora: LoRA, field: str) -> Iterator[bytes]:
    """The bytes at ``lora.source``, spooled to disk by huggingface_hub's downloader.

    huggingface_hub streams, retries and resumes; fluxkit sends no HTTP of its own outside its
    drivers. The spool keeps a 300 MB LoRA out of memory; no Hub token is sent to other hosts.
    """
    from huggingface_hub.file_download import http_get

    with tempfile.TemporaryFile() as spool:
        try:
            http_get(lora.source, spool, displayed_filename=lora.filename or "LoRA")
        except Exception as exc:  # HfHubHTTPError (a status) or a transport error
            status = getattr(getattr(exc, "response", None), "status_code", None)
            if isinstance(status, int) and status >= 400:
                raise InvalidRequestError(
                    field, lora.source, "a downloadable .safetensors URL", reason=f"HTTP {status}"
                ) from exc
            raise ConfigurationError(f"could not download LoRA {lora.source}: {exc}") from exc
        spool.seek(0)
        while chunk := spool.read(1 << 20):
            yield chunk


def _pick_weight(names: list[str], lora: LoRA, field: str) -> list[str]:
    """The one LoRA file of a repo/directory, by `fluxkit.lora._hubfiles.choose_primary`:
    the same rule as ``fluxkit.lora`` and the hosted backends, so a source means one file
    everywhere."""
    primary = choose_primary(names)
    if primary is not None:
        return [primary]
    found = ", ".join(names[:8]) or "no .safetensors files"
    raise InvalidRequestError(
        field,
        lora.source,
        "a source naming one .safetensors file (or weight_name=...)",
        reason=f"cannot tell which file to load: {found}",
    )


def _hub_error(
    exc: Exception, repo: str, filename: str | None, field: str, lora: LoRA
) -> Exception:
    kind = type(exc).__name__
    page = f"https://huggingface.co/{repo}"
    if kind == "GatedRepoError":
        return ConfigurationError(
            f"LoRA repo {repo} is gated: accept its terms at {page} and set HF_TOKEN (or token=)"
        )
    if kind == "RepositoryNotFoundError":
        return InvalidRequestError(
            field,
            lora.source,
            "an existing Hub repo",
            reason=f"{repo} not found (private? set HF_TOKEN)",
        )
    if kind in ("EntryNotFoundError", "RemoteEntryNotFoundError"):
        return InvalidRequestError(
            field,
            lora.source,
            "a file that exists in the repo",
            reason=f"{filename} not found in {repo}",
        )
    if kind == "LocalEntryNotFoundError" or isinstance(exc, OSError):
        return ConfigurationError(
            f"LoRA {lora.source} is not in the Hugging Face cache and the Hub cannot be reached "
            f"(HF_HUB_OFFLINE={os.environ.get('HF_HUB_OFFLINE', '')!r}): run "
            f"`hf download {repo} {filename or ''}`".rstrip()
            + " with network access"
        )
    return exc


@dataclass
class LoraStats:
    """Counters for tests and benchmarks: what switching LoRAs actually cost."""

    loads: int = 0  # adapters read from disk into the model
    hits: int = 0  # requests served by an adapter already loaded
    evictions: int = 0
    hotswaps: int = 0


class AdapterCache:
    """Adapters loaded in a pipeline, least recently used first; at most ``capacity`` kept.

    Adapters are keyed by content hash, so the same file reached through two sources loads once.
    With ``hotswap`` (the pipeline had ``enable_lora_hotswap`` before its first LoRA), an
    evicted adapter's slot is refilled in place — no new modules, so a compiled model is not
    recompiled — falling back to delete + load when the shapes or targets differ.
    """

    def __init__(self, capacity: int, *, hotswap: bool = False) -> None:
        if capacity < 1:
            raise ConfigurationError(f"max_loaded_loras={capacity}; it must be at least 1")
        self.capacity = capacity
        self.hotswap = hotswap
        self.stats = LoraStats()
        self._loaded: OrderedDict[str, str] = OrderedDict()  # sha256 -> adapter name
        self._counter = 0
        self._enabled = True

    @property
    def loaded(self) -> list[str]:
        """Content hashes of the loaded adapters, least recently used first."""
        return list(self._loaded)

    def activate(
        self, pipe: Any, items: Sequence[tuple[LoRA, LoraFile, str]], log: Callable[[str], None]
    ) -> None:
        """Load what is missing, then make exactly ``items`` active with their scales."""
        weights: dict[str, float] = {}
        keep = {file.sha256 for _, file, _ in items}
        for lora, file, field in items:
            name = self._ensure(pipe, lora, file, field, keep, log)
            weights[name] = weights.get(name, 0.0) + lora.scale  # same file twice: add scales
        if not weights:
            if self._loaded and self._enabled:
                pipe.disable_lora()  # exact base model; cheaper than weight 0 on every adapter
                self._enabled = False
            return
        if not self._enabled:
            pipe.enable_lora()
            self._enabled = True
        pipe.set_adapters(list(weights), adapter_weights=list(weights.values()))

    def clear(self) -> None:
        self._loaded.clear()

    def _ensure(
        self,
        pipe: Any,
        lora: LoRA,
        file: LoraFile,
        field: str,
        keep: set[str],
        log: Callable[[str], None],
    ) -> str:
        name = self._loaded.get(file.sha256)
        if name is not None:
            self._loaded.move_to_end(file.sha256)
            self.stats.hits += 1
            return name
        victim = self._victim(keep)
        if victim is not None and self.hotswap:
            slot = self._loaded.pop(victim)
            try:
                pipe.load_lora_weights(str(file.path), adapter_name=slot, hotswap=True)
            except Exception as exc:  # different targets/ranks: start the slot afresh
                log(f"hotswap into {slot} refused ({type(exc).__name__}); reloading")
                self._delete(pipe, slot)
            else:
                self._loaded[file.sha256] = slot
                self.stats.hotswaps += 1
                self.stats.loads += 1
                return slot
        elif victim is not None:
            self._delete(pipe, self._loaded.pop(victim))
        name = self._load(pipe, lora, file, field)
        self._loaded[file.sha256] = name
        log(f"loaded LoRA {file.path.name} [{file.format}] as {name}")
        return name

    def _victim(self, keep: set[str]) -> str | None:
        if len(self._loaded) < self.capacity:
            return None
        return next((sha for sha in self._loaded if sha not in keep), None)

    def _delete(self, pipe: Any, name: str) -> None:
        pipe.delete_adapters(name)
        self.stats.evictions += 1

    def _load(self, pipe: Any, lora: LoRA, file: LoraFile, field: str) -> str:
        self._counter += 1
        name = f"fluxkit_{self._counter}"
        fold_library_logs()  # "No LoRA keys associated to CLIPTextModel" and the like
        try:
            pipe.load_lora_weights(str(file.path), adapter_name=name)
        except Exception as exc:
            self._discard(pipe, name)
            raise LoRALoadError(
                field, lora, file.path, file.format, f"{type(exc).__name__}: {_first_line(exc)}"
            ) from exc
        if not any(name in names for names in pipe.get_list_adapters().values()):
            # diffusers only logs "No LoRA keys associated to ..." here: refuse the silent no-op.
            raise LoRALoadError(
                field,
                lora,
                file.path,
                file.format,
                "matches no module of the transformer or text encoder (no key carries a "
                "'transformer.'/'text_encoder.' prefix diffusers recognises); is it a FLUX.1 LoRA?",
            )
        self.stats.loads += 1
        return name

    @staticmethod
    def _discard(pipe: Any, name: str) -> None:
        try:
            if any(name in names for names in pipe.get_list_adapters().values()):
                pipe.delete_adapters(name)
        except Exception:  # pragma: no cover - best effort after a failed load
            pass


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__
