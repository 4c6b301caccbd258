"""Local FLUX generation with 🤗 diffusers: ``fluxkit.Generator("diffusers")``, extra ``fluxkit[local]``.

The pipeline is loaded once, on first use, and stays loaded for the generator's life: LoRAs,
sizes, seeds, img2img and reference images never reload the base model. Recently used LoRAs stay
loaded too (LRU), so switching among them costs no disk read.

Example:
    ```python
    import fluxkit

    with fluxkit.Generator("diffusers", model="flux-schnell") as gen:      # cuda > mps > cpu
        result = gen.generate(
            "portrait of tok person, oil painting", size=(768, 1024), seed=7, n=2,
            loras=[fluxkit.LoRA("hf://me/tok-lora/lora.safetensors", scale=0.9)],
        )
    result.images[1].seed    # 8, and generating seed=8 alone gives the same image
    ```

Importing this module is cheap: torch is imported when the backend is constructed (to pick the
device) and diffusers when the pipeline loads.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from fluxkit._capabilities import Capabilities
from fluxkit._config import resolve_secret
from fluxkit._events import Event, Log, Started
from fluxkit._exceptions import UnsupportedFeatureError
from fluxkit._images import InputImage
from fluxkit.backends._base import Call, CallOutput, CancelToken, LocalBackend
from fluxkit.backends._local import devices
from fluxkit.backends._local.calls import encode_output, pipeline_arguments, to_pil
from fluxkit.backends._local.loras import AdapterCache, LoRALoadError, LoraResolver, LoraStats
from fluxkit.backends._local.loras import default_cache_dir as loras_default_cache_dir
from fluxkit.backends._local.pipelines import (
    DEV_REPO,
    SCHNELL_REPO,
    IpAdapter,
    ModelSource,
    ModelUnavailableError,
    load_pipeline,
)

__all__ = [
    "CAPABILITIES",
    "MODEL_ALIASES",
    "DiffusersBackend",
    "LoRALoadError",
    "LocalStats",
    "ModelUnavailableError",
    "backend_class",
]

# fmt: off
_LOCAL: dict[str, Any] = {
    "max_loras": 8, "img2img": True, "reference_image": True, "max_images_per_call": 1,
    "seeds_per_image": True, "local_loras": True, "output_formats": ("png", "jpeg", "webp"),
}
CAPABILITIES: Mapping[str, Capabilities] = {
    DEV_REPO: Capabilities(**_LOCAL, notes="reference_image through the XLabs IP-Adapter"),
    SCHNELL_REPO: Capabilities(**_LOCAL, default_steps=4, default_guidance=None, guidance=False,
                               notes="1-4 steps; guidance ignored"),
    # local directories and single-file checkpoints get FLUX.1-dev defaults
    "*": Capabilities(**_LOCAL, notes="local directory or single-file checkpoint"),
}
MODEL_ALIASES: Mapping[str, str] = {
    "flux-dev": DEV_REPO, "FLUX.1-dev": DEV_REPO, "dev": DEV_REPO,
    "flux-schnell": SCHNELL_REPO, "FLUX.1-schnell": SCHNELL_REPO, "schnell": SCHNELL_REPO,
}
# fmt: on


@dataclass
class LocalStats:
    """What the backend has loaded so far; tests and benchmarks read it.

    Attributes:
        pipeline_loads: base-model loads (1 for a generator's whole life).
        loras: adapter loads, LRU hits, evictions and hotswaps.
    """

    pipeline_loads: int = 0
    loras: LoraStats = field(default_factory=LoraStats)


class DiffusersBackend(LocalBackend):
    """FLUX.1 in this process with diffusers; options are ``Generator("diffusers", **options)``.

    Example:
        ```python
        import fluxkit

        gen = fluxkit.Generator(
            "diffusers", model="black-forest-labs/FLUX.1-dev",
            offload="model", vae_tiling=True,      # fits 16-24 GB GPUs
        )
        ```

    Args:
        model: a Hub repo id or alias (``flux-dev``, ``flux-schnell``), a diffusers directory, or a
            single-file ``.safetensors`` transformer checkpoint.
        device: ``"cuda"``, ``"cuda:1"``, ``"mps"`` or ``"cpu"``; default: the first available.
        dtype: ``"bfloat16"`` (default on GPUs), ``"float16"`` or ``"float32"`` (default on CPU).
        offload: ``"none"``, ``"model"`` (whole models moved to the GPU in turn) or
            ``"sequential"`` (layer by layer: least memory, slowest). Needs a GPU.
        vae_tiling: decode large images tile by tile (bounded VAE memory).
        vae_slicing: decode a batch one image at a time.
        token: Hugging Face token for gated repos; default ``HF_TOKEN``.
        single_file_config: repo or directory supplying the text encoders, VAE and configs for a
            single-file checkpoint (default: FLUX.1-dev, or schnell if the file name says so).
        max_loaded_loras: adapters kept loaded (LRU) so switching back costs no disk read.
        hotswap: a rank (e.g. 64): refill evicted adapter slots in place
            (``enable_lora_hotswap``), which spares compiled models a recompilation.
        lora_cache_dir: where URL LoRAs are stored by content hash (default
            ``$FLUXKIT_CACHE_DIR`` or ``~/.cache/fluxkit``).
        ip_adapter: IP-Adapter repo, directory or ``.safetensors`` for ``reference_image``;
            None disables reference images. Loaded on first use.
        ip_adapter_weight_name: the weight file inside ``ip_adapter`` when it is a repo/directory.
        image_encoder: CLIP vision encoder repo or directory the IP-Adapter needs.
        max_sequence_length: T5 tokens for the prompt (FLUX default 512; 256 is faster).
    """

    name = "diffusers"
    capabilities_table = CAPABILITIES
    model_aliases = MODEL_ALIASES
    default_model = DEV_REPO

    def __init__(
        self,
        *,
        model: str | None = None,
        device: str | None = None,
        dtype: Any = None,
        offload: devices.Offload = "none",
        vae_tiling: bool = False,
        vae_slicing: bool = False,
        token: str | None = None,
        single_file_config: str | None = None,
        max_loaded_loras: int = 4,
        hotswap: int | None = None,
        lora_cache_dir: str | Path | None = None,
        ip_adapter: str | None = "XLabs-AI/flux-ip-adapter",
        ip_adapter_weight_name: str = "ip_adapter.safetensors",
        image_encoder: str = "openai/clip-vit-large-patch14",
        max_sequence_length: int | None = None,
    ) -> None:
        super().__init__(model=model)
        devices.require_local_extra()
        wanted = model or self.default_model
        self._model_id = self.model_aliases.get(wanted, wanted)
        self._source = ModelSource.parse(self._model_id)  # fails now if no such file/dir
        self._device = devices.pick_device(device)
        self._dtype = devices.pick_dtype(self._device, dtype)
        self._offload: devices.Offload = offload
        self._vae = (vae_tiling, vae_slicing)
        secret = resolve_secret(
            token, env_vars=("HF_TOKEN",), backend=self.name, argument_name="token", required=False
        )
        self._token = secret.reveal() if secret else None
        self._single_file_config = single_file_config
        self._hotswap = hotswap
        self._max_sequence_length = max_sequence_length
        cache = Path(lora_cache_dir).expanduser() if lora_cache_dir else loras_default_cache_dir()
        self._resolver = LoraResolver(cache, token=self._token)
        self._adapters = AdapterCache(max_loaded_loras, hotswap=hotswap is not None)
        self._ip = None
        if ip_adapter:
            self._ip = IpAdapter(ip_adapter, weight_name=ip_adapter_weight_name,
                                 image_encoder=image_encoder, token=self._token)  # fmt: skip
        self.stats = LocalStats(loras=self._adapters.stats)
        self._pipe: Any = None
        self._img2img: Any = None
        self._lock = threading.RLock()
        devices.check_offload(offload, self._device)  # fail at construction, not at first use

    @property
    def device_key(self) -> str:
        """The torch device (``"cuda:0"``, ``"mps"``, ``"cpu"``): one job at a time on each."""
        return self._device

    def capabilities(self, model: str) -> Capabilities:
        caps = super().capabilities(model)
        return caps if self._ip is not None else replace(caps, reference_image=False)

    def options(self) -> Mapping[str, Any]:
        """The resolved settings (model, device, dtype, memory switches, LoRA cache)."""
        tiling, slicing = self._vae
        return {
            "model": self._model_id,
            "device": self._device,
            "dtype": str(self._dtype),
            "offload": self._offload,
            "vae_tiling": tiling,
            "vae_slicing": slicing,
            "max_loaded_loras": self._adapters.capacity,
            "hotswap": self._hotswap,
        }

    def load(self, emit: Callable[[Event], None] | None = None) -> Any:
        """Load the pipeline now (it otherwise loads on the first generation); returns it.

        Example:
            ```python
            import fluxkit
            from fluxkit.backends.diffusers import DiffusersBackend

            backend = DiffusersBackend(model="flux-schnell")
            backend.load()          # e.g. at server start, before the first request
            gen = fluxkit.Generator(backend)
            ```
        """
        with self._lock:
            if self._pipe is None:
                log = emit or (lambda event: None)
                log(Log(f"loading {self._model_id} on {self._device} ({self._dtype})"))
                started = time.monotonic()
                pipe = load_pipeline(
                    self._source,
                    dtype=self._dtype,
                    token=self._token,
                    single_file_config=self._single_file_config,
                )
                pipe.set_progress_bar_config(disable=True)
                if self._hotswap is not None:
                    pipe.enable_lora_hotswap(target_rank=self._hotswap)  # before any LoRA
                tiling, slicing = self._vae
                devices.apply_memory_options(
                    pipe,
                    self._device,
                    offload=self._offload,
                    vae_tiling=tiling,
                    vae_slicing=slicing,
                )
                self._pipe = pipe
                self.stats.pipeline_loads += 1
                log(Log(f"loaded {self._model_id} in {time.monotonic() - started:.1f} s"))
            return self._pipe

    def run(self, call: Call, emit: Callable[[Event], None], token: CancelToken) -> CallOutput:
        """Generate ``call``'s images (one per seed), emitting one ``Step`` per denoising step."""
        import torch

        request = call.request
        if call.model != self._model_id:
            raise UnsupportedFeatureError(
                f"model {call.model!r} on a generator holding {self._model_id!r}",
                backend=self.name,
                model=self._model_id,
                field="model",
                value=call.model,
                allowed="the generator's model (create another Generator to switch)",
            )
        with self._lock:
            started = time.monotonic()
            pipe = self.load(emit)
            token.raise_if_cancelled(self.name)
            emit(Started(job=call.index))
            self._use_loras(call, emit)
            kwargs = pipeline_arguments(
                call,
                backend=self.name,
                emit=emit,
                token=token,
                max_sequence_length=self._max_sequence_length,
            )
            self._use_reference(request.reference_image, request.reference_strength, kwargs)
            target = pipe
            if request.image is not None:
                target = self._img2img_pipeline(pipe)
                kwargs.update(image=to_pil(request.image), strength=request.effective_strength)
            with torch.inference_mode():
                images = target(**kwargs).images
            token.raise_if_cancelled(self.name)
            fmt, seeds = request.output_format, call.seeds
            outputs = [
                encode_output(image, seed, fmt) for image, seed in zip(images, seeds, strict=True)
            ]
            return CallOutput(outputs, running_seconds=time.monotonic() - started)

    def close(self) -> None:
        """Drop the pipeline and free its memory (GPU cache included)."""
        with self._lock:
            self._pipe = self._img2img = None
            self._adapters.clear()
            if self._ip is not None:
                self._ip.reset()
            gc.collect()
            import torch

            if self._device.startswith("cuda"):
                torch.cuda.empty_cache()

    # -- helpers ----------------------------------------------------------------------------

    def _use_loras(self, call: Call, emit: Callable[[Event], None]) -> None:
        items = []
        for index, lora in enumerate(call.request.loras):
            field = f"loras[{index}]"
            items.append((lora, self._resolver.resolve(lora, field), field))
        self._adapters.activate(self._pipe, items, lambda text: emit(Log(text, job=call.index)))

    def _use_reference(
        self, image: InputImage | None, strength: float | None, kwargs: dict[str, Any]
    ) -> None:
        if self._ip is None:
            return
        if image is not None and not self._ip.loaded:
            self._ip.load(self._pipe, self._dtype)
            self._img2img = None  # re-derive so img2img sees the new image encoder
        self._ip.use(self._pipe, None if image is None else (1.0 if strength is None else strength))
        if image is not None:
            kwargs["ip_adapter_image"] = to_pil(image)

    def _img2img_pipeline(self, pipe: Any) -> Any:
        if self._img2img is None:
            from diffusers import FluxImg2ImgPipeline

            # from_pipe shares every component (and the loaded LoRAs): no second load.
            self._img2img = FluxImg2ImgPipeline.from_pipe(pipe)
            self._img2img.set_progress_bar_config(disable=True)  # not inherited from pipe
        return self._img2img

    def __repr__(self) -> str:
        return f"DiffusersBackend(model={self._model_id!r}, device={self._device!r})"


backend_class = DiffusersBackend
