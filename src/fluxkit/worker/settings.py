"""The worker's configuration, read once from environment variables (see the deploy docs)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from fluxkit._config import Secret
from fluxkit._exceptions import ConfigurationError
from fluxkit.worker._limits import WorkerLimits

__all__ = ["ENV_VARS", "PreloadedLora", "S3Settings", "WorkerSettings"]

ENV_VARS: Mapping[str, str] = {
    "FLUXKIT_MODEL": "base model: Hub repo id, diffusers directory or single .safetensors file "
    "(default black-forest-labs/FLUX.1-dev)",
    "FLUXKIT_DEVICE": "cuda, cuda:1, mps or cpu (default: the first available)",
    "FLUXKIT_DTYPE": "bfloat16 (GPU default), float16 or float32",
    "FLUXKIT_OFFLOAD": "none (default), model or sequential CPU offload",
    "FLUXKIT_VAE_TILING": "1 to decode large images tile by tile",
    "FLUXKIT_MAX_SEQUENCE_LENGTH": "T5 prompt tokens (FLUX default 512; 256 is faster)",
    "FLUXKIT_LORAS": "preloaded LoRAs, comma-separated source[:scale] "
    "(hf://owner/repo/file.safetensors:0.8)",
    "FLUXKIT_FUSE_LORAS": "1: fuse the preloaded LoRAs into the base weights at start "
    "(faster; they cannot be switched off); else they stay active adapters",
    "FLUXKIT_LORA_CACHE_DIR": "per-request LoRA cache, by content hash (default "
    "/runpod-volume/fluxkit/loras when a network volume is mounted, else ~/.cache/fluxkit/worker-loras)",
    "FLUXKIT_LORA_CACHE_MB": "size bound of that cache; least recently used files go first "
    "(default 10240)",
    "FLUXKIT_MAX_LOADED_LORAS": "adapters kept loaded in the model (LRU, default 4)",
    "FLUXKIT_MAX_LORAS": "LoRAs per request (default 4)",
    "FLUXKIT_MAX_IMAGES": "images per job (default 4)",
    "FLUXKIT_MAX_SIDE": "largest width/height (default 2048)",
    "FLUXKIT_MAX_STEPS": "most steps (default 50)",
    "FLUXKIT_IMG2IMG": "0 to refuse init images",
    "FLUXKIT_IP_ADAPTER": "IP-Adapter repo/dir for reference_image (unset: refused)",
    "FLUXKIT_OUTPUT": "default output: base64, s3 or both (default: s3 when a bucket is "
    "configured, else base64)",
    "FLUXKIT_STREAM": "1: streaming handler (progress and result through /stream)",
    "BUCKET_ENDPOINT_URL": "S3 endpoint (RunPod's variable; unset: AWS)",
    "BUCKET_ACCESS_KEY_ID": "S3 access key id (RunPod's variable)",
    "BUCKET_SECRET_ACCESS_KEY": "S3 secret key (RunPod's variable)",
    "FLUXKIT_S3_BUCKET": "bucket for outputs",
    "FLUXKIT_S3_PREFIX": "key prefix (default fluxkit/)",
    "FLUXKIT_S3_REGION": "region (default us-east-1)",
    "FLUXKIT_S3_URLS": "presigned (default) or public",
    "FLUXKIT_S3_EXPIRES": "presigned URL lifetime in seconds (default 604800, 7 days)",
    "HF_TOKEN": "the worker's own Hub token: base model and preloaded LoRAs only",
    "FLUXKIT_LORA_WORKER_TOKEN": "1: also use HF_TOKEN for per-request LoRAs that bring no token",
    "HF_ENDPOINT": "Hub endpoint (huggingface_hub's variable)",
}


def _flag(environ: Mapping[str, str], name: str) -> bool:
    return environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class PreloadedLora:
    source: str
    scale: float = 1.0


@dataclass(frozen=True)
class S3Settings:
    """Where outputs go; credentials stay wrapped."""

    bucket: str | None = None
    prefix: str = "fluxkit/"
    region: str = "us-east-1"
    endpoint_url: str | None = None
    access_key_id: Secret | None = None
    secret_access_key: Secret | None = None
    urls: str = "presigned"
    expires: int = 604800

    @property
    def configured(self) -> bool:
        return bool(self.bucket)


def _preloaded(raw: str) -> tuple[PreloadedLora, ...]:
    items = []
    for part in (p.strip() for p in raw.split(",")):
        if not part:
            continue
        source, scale = part, 1.0
        head, sep, tail = part.rpartition(":")
        if sep and head:
            try:
                scale = float(tail)
                source = head
            except ValueError:
                pass
        items.append(PreloadedLora(source, scale))
    return tuple(items)


def _default_cache() -> Path:
    volume = Path("/runpod-volume")
    if volume.is_dir():
        return volume / "fluxkit" / "loras"
    return Path.home() / ".cache" / "fluxkit" / "worker-loras"


@dataclass(frozen=True)
class WorkerSettings:
    """Everything the worker reads from its environment (:data:`ENV_VARS`)."""

    model: str = "black-forest-labs/FLUX.1-dev"
    device: str | None = None
    dtype: str | None = None
    offload: str = "none"
    vae_tiling: bool = False
    max_sequence_length: int | None = None
    loras: tuple[PreloadedLora, ...] = ()
    fuse_loras: bool = False
    lora_cache_dir: Path = field(default_factory=_default_cache)
    lora_cache_bytes: int = 10240 * 1024 * 1024
    max_loaded_loras: int = 4
    limits: WorkerLimits = field(default_factory=WorkerLimits)
    ip_adapter: str | None = None
    output: str | None = None
    stream: bool = False
    s3: S3Settings = field(default_factory=S3Settings)
    hf_token: Secret | None = None
    lora_worker_token: bool = False
    hub_endpoint: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> WorkerSettings:
        """Read :data:`ENV_VARS`.

        Raises:
            ConfigurationError: a variable holds a value the worker cannot use.
        """
        env = os.environ if environ is None else environ

        def get(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        def number(name: str, default: int) -> int:
            raw = get(name)
            if raw is None:
                return default
            try:
                return int(raw)
            except ValueError:
                raise ConfigurationError(f"{name}={raw!r}: expected an integer") from None

        output = get("FLUXKIT_OUTPUT")
        if output not in (None, "base64", "s3", "both"):
            raise ConfigurationError(f"FLUXKIT_OUTPUT={output!r}: expected base64, s3 or both")
        offload = get("FLUXKIT_OFFLOAD") or "none"
        if offload not in ("none", "model", "sequential"):
            raise ConfigurationError(
                f"FLUXKIT_OFFLOAD={offload!r}: expected none, model or sequential"
            )
        urls = get("FLUXKIT_S3_URLS") or "presigned"
        if urls not in ("presigned", "public"):
            raise ConfigurationError(f"FLUXKIT_S3_URLS={urls!r}: expected presigned or public")
        key_id, secret = get("BUCKET_ACCESS_KEY_ID"), get("BUCKET_SECRET_ACCESS_KEY")
        s3 = S3Settings(
            bucket=get("FLUXKIT_S3_BUCKET"),
            prefix=get("FLUXKIT_S3_PREFIX") or "fluxkit/",
            region=get("FLUXKIT_S3_REGION") or "us-east-1",
            endpoint_url=get("BUCKET_ENDPOINT_URL"),
            access_key_id=Secret(key_id) if key_id else None,
            secret_access_key=Secret(secret) if secret else None,
            urls=urls,
            expires=number("FLUXKIT_S3_EXPIRES", 604800),
        )
        token = get("HF_TOKEN")
        cache = get("FLUXKIT_LORA_CACHE_DIR")
        msl = get("FLUXKIT_MAX_SEQUENCE_LENGTH")
        return cls(
            model=get("FLUXKIT_MODEL") or cls.model,
            device=get("FLUXKIT_DEVICE"),
            dtype=get("FLUXKIT_DTYPE"),
            offload=offload,
            vae_tiling=_flag(env, "FLUXKIT_VAE_TILING"),
            max_sequence_length=int(msl) if msl else None,
            loras=_preloaded(get("FLUXKIT_LORAS") or ""),
            fuse_loras=_flag(env, "FLUXKIT_FUSE_LORAS"),
            lora_cache_dir=Path(cache).expanduser() if cache else _default_cache(),
            lora_cache_bytes=number("FLUXKIT_LORA_CACHE_MB", 10240) * 1024 * 1024,
            max_loaded_loras=number("FLUXKIT_MAX_LOADED_LORAS", 4),
            limits=WorkerLimits.from_env(env),
            ip_adapter=get("FLUXKIT_IP_ADAPTER"),
            output=output,
            stream=_flag(env, "FLUXKIT_STREAM"),
            s3=s3,
            hf_token=Secret(token) if token else None,
            lora_worker_token=_flag(env, "FLUXKIT_LORA_WORKER_TOKEN"),
            hub_endpoint=get("HF_ENDPOINT"),
        )
