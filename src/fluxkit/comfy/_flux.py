"""Typed builders for FLUX graphs: txt2img, a LoRA chain, img2img and the XLabs IP-Adapter.

```python
from fluxkit.comfy import FluxModels, LoraSpec, flux_graph

wf = flux_graph(
    "portrait of tok person", width=1024, height=1024, steps=28, guidance=3.5, seed=7,
    loras=[LoraSpec("tok.safetensors", 0.9)],
    models=FluxModels(unet="flux1-dev.safetensors"),       # names as the server lists them
)
wf.graph.to_api()      # POST /prompt {"prompt": ...}
```

The graph is the one ComfyUI's own FLUX examples use: ``UNETLoader`` → (``LoraLoaderModelOnly``
per LoRA) → (``ApplyFluxIPAdapter``) → ``KSampler`` (cfg 1, euler/simple) with
``CLIPTextEncode`` → ``FluxGuidance`` as positive, a second ``CLIPTextEncode`` as negative,
``EmptySD3LatentImage`` (txt2img) or ``LoadImage`` → ``ImageScale`` → ``VAEEncode`` (img2img,
``denoise`` = strength), then ``VAEDecode`` → ``SaveImage``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from fluxkit.comfy._graph import Graph, Link

__all__ = [
    "DualClip",
    "FluxModels",
    "FluxWorkflow",
    "IPAdapter",
    "LoraSpec",
    "SingleClip",
    "flux_graph",
    "flux_img2img",
    "flux_ipadapter",
    "flux_txt2img",
]


@dataclass(frozen=True)
class DualClip:
    """``DualCLIPLoader`` with T5-XXL and CLIP-L, ``type="flux"`` (FLUX.1's text encoders)."""

    t5: str = "t5xxl_fp16.safetensors"
    clip_l: str = "clip_l.safetensors"
    type: str = "flux"


@dataclass(frozen=True)
class SingleClip:
    """``CLIPLoader`` with one encoder (the kit's tiny models condition on CLIP-L alone)."""

    name: str
    type: str = "stable_diffusion"


@dataclass(frozen=True)
class FluxModels:
    """Model file names as the server lists them (``/models/<folder>``); configurable per server.

    Defaults are the Comfy-Org FLUX.1-dev split files and XLabs' IP-Adapter v2 with the
    OpenAI CLIP-L vision model. `tiny` names the ComfyUI test kit's tiny random models.
    """

    unet: str = "flux1-dev.safetensors"
    weight_dtype: str = "default"
    vae: str = "ae.safetensors"
    text_encoder: DualClip | SingleClip = field(default_factory=DualClip)
    clip_vision: str = "model.safetensors"
    ipadapter: str = "ip_adapter.safetensors"
    ipadapter_provider: str = "GPU"

    @classmethod
    def tiny(cls) -> FluxModels:
        """The random-weight tiny FLUX files of fluxkit's ComfyUI test kit (they run on CPU)."""
        return cls(
            unet="tiny-flux.safetensors",
            vae="tiny-taesd16.safetensors",
            text_encoder=SingleClip("tiny-clip_l.safetensors"),
            clip_vision="tiny-clip-vision.safetensors",
            ipadapter="tiny-ip-adapter.safetensors",
            ipadapter_provider="CPU",
        )


@dataclass(frozen=True)
class LoraSpec:
    """One ``LoraLoaderModelOnly``: a file in ``models/loras/`` and its strength."""

    name: str
    strength: float = 1.0


@dataclass(frozen=True)
class IPAdapter:
    """The XLabs FLUX IP-Adapter: ``image`` is a file in the server's ``input/`` folder."""

    image: str
    scale: float = 0.8


@dataclass
class FluxWorkflow:
    """A built graph and the ids of the nodes a client needs."""

    graph: Graph
    save_node: str
    sampler_node: str
    seed: int

    def to_api(self) -> dict[str, object]:
        return self.graph.to_api()


def flux_graph(
    prompt: str,
    *,
    width: int = 1024,
    height: int = 1024,
    steps: int = 28,
    guidance: float = 3.5,
    seed: int = 0,
    loras: Sequence[LoraSpec | tuple[str, float]] = (),
    negative_prompt: str = "",
    cfg: float = 1.0,
    sampler: str = "euler",
    scheduler: str = "simple",
    image: str | None = None,
    strength: float = 0.75,
    ip_adapter: IPAdapter | None = None,
    models: FluxModels | None = None,
    filename_prefix: str = "fluxkit/flux",
    batch_size: int = 1,
) -> FluxWorkflow:
    """A FLUX graph: txt2img, plus LoRAs, img2img (``image``) and/or the IP-Adapter.

    Args:
        image: a file in the server's ``input/`` folder (uploaded): img2img, resized to
            ``width``×``height``, ``denoise = strength``.
        negative_prompt: encoded into ``KSampler.negative``; FLUX dev is guidance-distilled
            and only uses it when ``cfg > 1`` (true CFG, twice the compute).
        batch_size: images per prompt; ComfyUI draws them from one noise batch of ``seed``,
            so image ``i`` is *not* reproducible alone (fluxkit queues one prompt per image).
    """
    models = models or FluxModels()
    g = Graph()
    model: Link = g.add("UNETLoader", unet_name=models.unet, weight_dtype=models.weight_dtype).out()
    encoder = models.text_encoder
    if isinstance(encoder, DualClip):
        clip = g.add(
            "DualCLIPLoader", clip_name1=encoder.t5, clip_name2=encoder.clip_l, type=encoder.type
        ).out()
    else:
        clip = g.add("CLIPLoader", clip_name=encoder.name, type=encoder.type).out()
    vae = g.add("VAELoader", vae_name=models.vae).out()
    for spec in loras:
        lora = spec if isinstance(spec, LoraSpec) else LoraSpec(*spec)
        model = g.add(
            "LoraLoaderModelOnly", model=model, lora_name=lora.name, strength_model=lora.strength
        ).out()
    if ip_adapter is not None:
        loader = g.add(
            "LoadFluxIPAdapter",
            ipadatper=models.ipadapter,  # sic: XLabs spells the input "ipadatper"
            clip_vision=models.clip_vision,
            provider=models.ipadapter_provider,
        )
        face = g.add("LoadImage", image=ip_adapter.image)
        model = g.add(
            "ApplyFluxIPAdapter",
            model=model,
            ip_adapter_flux=loader.out(),
            image=face.out(0),
            ip_scale=ip_adapter.scale,
        ).out()
    positive = g.add("CLIPTextEncode", text=prompt, clip=clip)
    guided = g.add("FluxGuidance", conditioning=positive.out(), guidance=guidance)
    negative = g.add("CLIPTextEncode", text=negative_prompt, clip=clip)
    if image is None:
        latent = g.add("EmptySD3LatentImage", width=width, height=height, batch_size=batch_size)
        denoise = 1.0
    else:
        loaded = g.add("LoadImage", image=image)
        scaled = g.add(
            "ImageScale",
            image=loaded.out(0),
            upscale_method="lanczos",
            width=width,
            height=height,
            crop="center",
        )
        latent = g.add("VAEEncode", pixels=scaled.out(), vae=vae)
        if batch_size > 1:
            latent = g.add("RepeatLatentBatch", samples=latent.out(), amount=batch_size)
        denoise = strength
    sampler_node = g.add(
        "KSampler",
        model=model,
        seed=seed,
        steps=steps,
        cfg=cfg,
        sampler_name=sampler,
        scheduler=scheduler,
        positive=guided.out(),
        negative=negative.out(),
        latent_image=latent.out(),
        denoise=denoise,
    )
    decoded = g.add("VAEDecode", samples=sampler_node.out(), vae=vae)
    save = g.add("SaveImage", images=decoded.out(), filename_prefix=filename_prefix)
    return FluxWorkflow(g, save.id, sampler_node.id, seed)


def flux_txt2img(prompt: str, **options: object) -> FluxWorkflow:
    """Text to image (see `flux_graph` for the options)."""
    options.pop("image", None)
    return flux_graph(prompt, **options)  # type: ignore[arg-type]


def flux_img2img(
    prompt: str, image: str, strength: float = 0.75, **options: object
) -> FluxWorkflow:
    """Image to image from ``image`` (a file in the server's ``input/``), ``denoise = strength``."""
    return flux_graph(prompt, image=image, strength=strength, **options)  # type: ignore[arg-type]


def flux_ipadapter(
    prompt: str, reference: str, scale: float = 0.8, **options: object
) -> FluxWorkflow:
    """The XLabs IP-Adapter graph: keeps the face of ``reference`` (a file in ``input/``)."""
    return flux_graph(prompt, ip_adapter=IPAdapter(reference, scale), **options)  # type: ignore[arg-type]
