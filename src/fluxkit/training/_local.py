"""A FLUX LoRA training loop on diffusers + peft (``pip install "fluxkit[local]"``).

The recipe (``training-apis.md`` §5.3, diffusers' ``train_dreambooth_lora_flux.py``): latents
and prompt embeddings are computed once and cached, then only the transformer runs per step.
Flow matching: ``x_t = (1 - t) x_0 + t ε`` with ``t`` drawn logit-normal, the transformer
predicts the velocity ``ε - x_0``, loss is the MSE. A peft LoRA (rank, alpha) on the attention
projections is the only thing trained. Images are grouped into resolution buckets (area about
``resolution``², sides multiples of 16) and a batch never mixes buckets.

Deterministic with a seed: the batch order, noise and timesteps of step ``k`` come from a
generator seeded with ``(seed, k)``, so a run resumed from a checkpoint continues exactly as an
uninterrupted one would. Checkpoints (every ``checkpoint_every`` steps, on cancel, at the end)
hold the LoRA weights, the optimiser state and the step, written atomically.
"""

from __future__ import annotations

import importlib
import io
import json
import math
import os
import threading
import time
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from fluxkit._exceptions import InvalidRequestError, JobCancelledError, MissingDependencyError
from fluxkit.training._model import StatusChanged, TrainingStep

__all__ = ["LocalTrainingConfig", "LocalTrainingResult", "load_images", "train_local"]

_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
_DEFAULT_TARGETS = ("to_q", "to_k", "to_v", "to_out.0")
CHECKPOINT = "checkpoint"


def _lib(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise MissingDependencyError("local LoRA training", extra="local", package=name) from exc


@dataclass
class LocalTrainingConfig:
    """Everything the local loop needs. Defaults follow diffusers' FLUX LoRA script."""

    model: str
    output_dir: str
    trigger_word: str
    steps: int = 1000
    rank: int = 16
    alpha: float | None = None
    learning_rate: float = 1e-4
    batch_size: int = 1
    resolution: int = 512
    seed: int = 0
    checkpoint_every: int = 250
    gradient_checkpointing: bool = True
    optimizer: Literal["auto", "adamw", "adamw8bit"] = "auto"
    mixed_precision: Literal["auto", "no", "bf16", "fp16"] = "auto"
    device: str = "cpu"
    guidance: float = 1.0
    max_sequence_length: int = 512
    targets: tuple[str, ...] = _DEFAULT_TARGETS
    resume: bool = True

    def __post_init__(self) -> None:
        for name in ("steps", "rank", "batch_size", "resolution", "checkpoint_every"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise InvalidRequestError(name, value, "an integer >= 1")
        if not 0 < self.learning_rate < 1:
            raise InvalidRequestError("learning_rate", self.learning_rate, "0 < lr < 1")
        if self.resolution % 16:
            raise InvalidRequestError("resolution", self.resolution, "a multiple of 16")
        self.targets = tuple(self.targets)

    @property
    def lora_alpha(self) -> float:
        return float(self.alpha if self.alpha is not None else self.rank)


@dataclass
class LocalTrainingResult:
    lora_path: Path
    steps: int
    losses: list[float] = field(default_factory=list)
    resumed_from: int = 0
    seconds: float = 0.0


def load_images(dataset: str | os.PathLike[str], trigger_word: str) -> list[tuple[Any, str]]:
    """(PIL image, caption) pairs from a folder or ``.zip`` of images with same-stem ``.txt``
    captions; an image without one is captioned with the trigger word."""
    image_module = _lib("PIL.Image")
    ops = _lib("PIL.ImageOps")
    files: dict[str, bytes] = {}
    path = Path(dataset)
    if path.is_dir():
        for item in sorted(path.rglob("*")):
            if item.is_file() and not any(p.startswith(".") for p in item.relative_to(path).parts):
                files[item.relative_to(path).as_posix()] = item.read_bytes()
    elif zipfile.is_zipfile(path):
        from fluxkit.datasets import iter_archive

        for name, data in iter_archive(path):
            files[name] = data
    else:
        raise InvalidRequestError("dataset", str(dataset), "a folder or .zip of images")
    listed = _jsonl_captions(files)
    pairs = []
    for name in sorted(files):
        stem, suffix = os.path.splitext(name)
        if suffix.lower() not in _IMAGE_SUFFIXES:
            continue
        caption_bytes = files.get(stem + ".txt")
        caption = (
            caption_bytes.decode("utf-8").strip()
            if caption_bytes
            else listed.get(name, trigger_word)
        )
        image = ops.exif_transpose(image_module.open(io.BytesIO(files[name]))).convert("RGB")
        pairs.append((image, caption or trigger_word))
    if not pairs:
        raise InvalidRequestError("dataset", str(dataset), "at least one image")
    return pairs


def _jsonl_captions(files: dict[str, bytes]) -> dict[str, str]:
    """Captions of a diffusers ImageFolder (``metadata.jsonl``: ``file_name`` + ``text``)."""
    captions: dict[str, str] = {}
    for name, data in files.items():
        if not name.endswith("metadata.jsonl"):
            continue
        folder = name[: -len("metadata.jsonl")]
        for line in data.decode("utf-8").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if not isinstance(entry, dict):
                continue
            text = entry.get("text") or entry.get("caption") or entry.get("prompt")
            if entry.get("file_name") and isinstance(text, str):
                captions[folder + str(entry["file_name"])] = text.strip()
    return captions


def bucket_size(width: int, height: int, resolution: int) -> tuple[int, int]:
    """The bucket of an image: about ``resolution``² pixels, its aspect, sides multiples of 16,
    never larger than the image (no upscaling below 256)."""
    scale = min(1.0, math.sqrt(resolution * resolution / (width * height)))
    w = max(16, int(width * scale) // 16 * 16)
    h = max(16, int(height * scale) // 16 * 16)
    return w, h


def _checkpoint_dir(config: LocalTrainingConfig) -> Path:
    return Path(config.output_dir) / CHECKPOINT


def _save_checkpoint(
    config: LocalTrainingConfig, step: int, lora: Any, optimizer: Any, losses: list[float]
) -> None:
    torch = _lib("torch")
    from fluxkit._files import atomic_write

    folder = _checkpoint_dir(config)
    folder.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save(optimizer.state_dict(), buffer)
    weights = _lib("safetensors.torch").save(
        {k: v.detach().cpu().contiguous() for k, v in lora.items()}
    )
    atomic_write(folder / "lora.safetensors", weights, overwrite=True)
    atomic_write(folder / "optimizer.pt", buffer.getvalue(), overwrite=True)
    state = {"step": step, "losses": losses, "config": asdict(config)}
    # written last: a checkpoint counts only once its state file names the step
    atomic_write(folder / "state.json", json.dumps(state).encode(), overwrite=True)


def _load_checkpoint(
    config: LocalTrainingConfig,
) -> tuple[int, dict[str, Any], Any, list[float]] | None:
    folder = _checkpoint_dir(config)
    try:
        state = json.loads((folder / "state.json").read_text())
    except (OSError, ValueError):
        return None
    if _comparable(state.get("config") or {}) != _comparable(asdict(config)):
        return None  # a checkpoint of other settings: never mixed into this run
    torch = _lib("torch")
    load_file = _lib("safetensors.torch").load_file
    weights = load_file(str(folder / "lora.safetensors"))
    optimizer = torch.load(folder / "optimizer.pt", weights_only=True)
    return int(state["step"]), weights, optimizer, [float(x) for x in state.get("losses", [])]


def _comparable(config: dict[str, Any]) -> dict[str, Any]:
    """The settings a checkpoint must share to be resumed (more steps may be asked for)."""
    skip = ("steps", "resume", "checkpoint_every", "output_dir", "device")
    return {k: list(v) if isinstance(v, tuple) else v for k, v in config.items() if k not in skip}


def _dtype(config: LocalTrainingConfig, torch: Any) -> Any:
    wanted = config.mixed_precision
    if wanted == "auto":
        wanted = "bf16" if config.device.startswith("cuda") else "no"
    return {"no": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[wanted]


def _optimizer(config: LocalTrainingConfig, params: list[Any], torch: Any) -> tuple[Any, str]:
    if config.optimizer in ("auto", "adamw8bit"):
        try:
            bnb = importlib.import_module("bitsandbytes")
        except ImportError:
            if config.optimizer == "adamw8bit":
                raise MissingDependencyError(
                    "8-bit AdamW", extra="local", package="bitsandbytes"
                ) from None
        else:
            if config.device.startswith("cuda"):
                return bnb.optim.AdamW8bit(params, lr=config.learning_rate), "adamw8bit"
    return torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=1e-4), "adamw"


def train_local(
    config: LocalTrainingConfig,
    dataset: str | os.PathLike[str],
    *,
    emit: Callable[[Any], None] = lambda event: None,
    cancel: threading.Event | None = None,
) -> LocalTrainingResult:
    """Train a FLUX LoRA on ``dataset``; returns the saved ``pytorch_lora_weights.safetensors``.

    Raises:
        JobCancelledError: ``cancel`` was set; a checkpoint of the last step was saved first.
        MissingDependencyError: torch/diffusers/peft are not installed.
    """
    torch = _lib("torch")
    diffusers = _lib("diffusers")
    peft = _lib("peft")
    peft_utils = _lib("peft.utils")
    began = time.perf_counter()
    emit(StatusChanged("starting"))
    device, dtype = torch.device(config.device), _dtype(config, torch)
    pipe = diffusers.FluxPipeline.from_pretrained(config.model, torch_dtype=dtype)
    pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    transformer = pipe.transformer

    # -- cache latents and prompt embeddings, grouped by bucket --------------------------------
    pairs = load_images(dataset, config.trigger_word)
    vae = pipe.vae
    shift = float(getattr(vae.config, "shift_factor", 0.0) or 0.0)
    scaling = float(vae.config.scaling_factor)
    buckets: dict[tuple[int, int], list[int]] = {}
    cached: list[dict[str, Any]] = []
    with torch.no_grad():
        for index, (image, caption) in enumerate(pairs):
            w, h = bucket_size(image.width, image.height, config.resolution)
            crop = _lib("PIL.ImageOps").fit(image, (w, h))
            pixels = torch.frombuffer(bytearray(crop.tobytes()), dtype=torch.uint8)
            pixels = pixels.view(h, w, 3).permute(2, 0, 1).float().div(127.5).sub(1.0)
            latent = vae.encode(pixels[None].to(device, vae.dtype)).latent_dist.mode()
            latent = (latent - shift) * scaling
            prompt, pooled, text_ids = pipe.encode_prompt(
                caption,
                prompt_2=caption,
                device=device,
                max_sequence_length=min(
                    config.max_sequence_length, pipe.tokenizer_2.model_max_length
                ),
            )
            cached.append(
                {
                    "latent": latent[0],
                    "prompt": prompt[0],
                    "pooled": pooled[0],
                    "text_ids": text_ids,
                }
            )
            buckets.setdefault((w, h), []).append(index)
    pipe.text_encoder = pipe.text_encoder_2 = pipe.vae = None  # free what is no longer needed

    # -- the LoRA ------------------------------------------------------------------------------
    transformer.requires_grad_(False)
    torch.manual_seed(config.seed)  # the LoRA's initial weights come from the global generator
    lora_config = peft.LoraConfig(
        r=config.rank,
        lora_alpha=config.lora_alpha,
        init_lora_weights="gaussian",
        target_modules=list(config.targets),
    )
    transformer.add_adapter(lora_config)
    if config.gradient_checkpointing:
        transformer.enable_gradient_checkpointing()
    params = [p for p in transformer.parameters() if p.requires_grad]
    for p in params:
        p.data = p.data.float()
    optimizer, optimizer_name = _optimizer(config, params, torch)
    start, losses = 0, list[float]()
    if config.resume and (found := _load_checkpoint(config)) is not None:
        start, weights, optimizer_state, losses = found
        peft_utils.set_peft_model_state_dict(transformer, weights)
        optimizer.load_state_dict(optimizer_state)
        emit(_log(f"resumed from checkpoint at step {start}"))
    transformer.train()

    keys = sorted(buckets)
    emit(StatusChanged("running"))
    step = start
    try:
        for step in range(start, config.steps):
            if cancel is not None and cancel.is_set():
                raise JobCancelledError("local training cancelled", backend="local")
            generator = torch.Generator().manual_seed(config.seed * 1_000_003 + step)
            key = keys[int(torch.randint(len(keys), (1,), generator=generator))]
            members = buckets[key]
            chosen = [
                members[int(i)]
                for i in torch.randint(len(members), (config.batch_size,), generator=generator)
            ]
            x0 = torch.stack([cached[i]["latent"] for i in chosen]).float()
            noise = torch.randn(x0.shape, generator=generator)
            t = torch.sigmoid(torch.randn((len(chosen),), generator=generator))
            x0, noise, t = x0.to(device), noise.to(device), t.to(device)
            noisy = (1 - t[:, None, None, None]) * x0 + t[:, None, None, None] * noise
            b, c, lh, lw = x0.shape
            packed = pipe._pack_latents(noisy, b, c, lh, lw).to(dtype)
            target = pipe._pack_latents(noise - x0, b, c, lh, lw)
            img_ids = pipe._prepare_latent_image_ids(b, lh // 2, lw // 2, device, dtype)
            with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
                pred = transformer(
                    hidden_states=packed,
                    timestep=t.to(dtype),
                    guidance=torch.full((b,), config.guidance, device=device, dtype=dtype)
                    if transformer.config.guidance_embeds
                    else None,
                    pooled_projections=torch.stack([cached[i]["pooled"] for i in chosen]),
                    encoder_hidden_states=torch.stack([cached[i]["prompt"] for i in chosen]),
                    txt_ids=cached[chosen[0]]["text_ids"],
                    img_ids=img_ids,
                    return_dict=False,
                )[0]
            loss = torch.nn.functional.mse_loss(pred.float(), target.float())
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(float(loss.detach()))
            emit(TrainingStep(step + 1, config.steps, losses[-1]))
            if (step + 1) % config.checkpoint_every == 0 and step + 1 < config.steps:
                _save_checkpoint(
                    config, step + 1, _lora_state(transformer, peft_utils), optimizer, losses
                )
        step = config.steps
    except JobCancelledError:
        _save_checkpoint(config, step, _lora_state(transformer, peft_utils), optimizer, losses)
        emit(StatusChanged("canceled"))
        raise
    layers = _lora_state(transformer, peft_utils)
    _save_checkpoint(config, config.steps, layers, optimizer, losses)
    out = Path(config.output_dir)
    metadata = {
        "r": config.rank,
        "lora_alpha": config.lora_alpha,
        "target_modules": list(config.targets),
        "init_lora_weights": "gaussian",
    }
    diffusers.FluxPipeline.save_lora_weights(
        str(out),
        transformer_lora_layers=layers,
        transformer_lora_adapter_metadata=metadata,
        safe_serialization=True,
    )
    variant = "dev" if transformer.config.guidance_embeds else "schnell"
    _stamp(
        out / "pytorch_lora_weights.safetensors",
        {
            # FluxPipeline trains FLUX.1: say so, rather than let key shapes be guessed from
            "modelspec.architecture": f"flux-1-{variant}/lora",
            "modelspec.trigger_phrase": config.trigger_word,
            "fluxkit.training": json.dumps(
                {
                    "steps": config.steps,
                    "rank": config.rank,
                    "alpha": config.lora_alpha,
                    "seed": config.seed,
                    "learning_rate": config.learning_rate,
                    "resolution": config.resolution,
                }
            ),
        },
    )
    emit(_log(f"saved {out / 'pytorch_lora_weights.safetensors'} ({optimizer_name})"))
    return LocalTrainingResult(
        out / "pytorch_lora_weights.safetensors",
        config.steps,
        losses,
        resumed_from=start,
        seconds=time.perf_counter() - began,
    )


def _stamp(path: Path, extra: dict[str, str]) -> None:
    """Add metadata entries to a safetensors file (rewritten atomically)."""
    st = _lib("safetensors")
    st_torch = _lib("safetensors.torch")
    from fluxkit._files import atomic_write

    with st.safe_open(str(path), framework="pt") as handle:
        metadata = dict(handle.metadata() or {})
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
    metadata.update(extra)
    atomic_write(path, st_torch.save(tensors, metadata=metadata), overwrite=True)


def _lora_state(transformer: Any, peft_utils: Any) -> dict[str, Any]:
    state: dict[str, Any] = peft_utils.get_peft_model_state_dict(transformer)
    return {k: v.detach().cpu().contiguous() for k, v in state.items()}


def _log(message: str) -> Any:
    from fluxkit._events import Log

    return Log(message)
