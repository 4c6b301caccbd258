"""A tiny, random-weight FLUX.1 pipeline built offline, for tests that run the real diffusers code.

It has FLUX.1-dev's *structure* (16-channel VAE latents, VAE scale factor 8, 2x2 latent packing,
guidance embedding, CLIP + T5 text encoders) at toy sizes: an 82k-parameter transformer, built in
well under a second; a 256x256 image in about 0.1 s on one CPU thread. Nothing is downloaded: the
tokenizers are built in memory (transformers >= 5 API).

Save it once per test session and load it through the public path, exactly as a user would:

```python
import fluxkit
from fluxkit.testing.tiny_flux import make_tiny_lora, save_tiny_flux

model_dir = save_tiny_flux("/tmp/tiny-flux")
lora = make_tiny_lora("/tmp/style.safetensors", model_dir, rank=4, seed=1)
with fluxkit.Generator("diffusers", model=str(model_dir), device="cpu") as gen:
    result = gen.generate("a fox", size=(256, 256), steps=2, seed=0, loras=[(str(lora), 0.8)])
```

The helpers below also write test LoRAs (diffusers/peft or kohya key layout) and a tiny XLabs-style
IP-Adapter with its CLIP image encoder. Requires ``fluxkit[local]`` (torch, diffusers,
transformers, safetensors).
"""

from __future__ import annotations

import importlib
import os
import string
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "build_tiny_flux_pipeline",
    "make_tiny_flux_components",
    "make_tiny_ip_adapter",
    "make_tiny_lora",
    "save_tiny_flux",
]

# The sizes must agree: in_channels = 4 * latent channels (2x2 packing), joint_attention_dim =
# T5 d_model, pooled_projection_dim = CLIP hidden size, sum(axes_dims_rope) = attention_head_dim.
_TEXT_DIM = 32
_POOLED_DIM = 32
_LATENT_CHANNELS = 16
_HEAD_DIM = 16
_HEADS = 2
_ATTENTION_TARGETS = ("to_q", "to_k", "to_v", "to_out.0")


def _lib(name: str) -> Any:
    """Import an optional package as ``Any``: diffusers/transformers ship partial annotations
    that ``mypy --strict`` rejects, and this module only calls into them."""
    return importlib.import_module(name)


def _clip_tokenizer() -> Any:
    """Byte-level CLIP BPE with no merges: each character is a token, so prompts differ."""
    pre_tokenizers = _lib("tokenizers.pre_tokenizers")
    CLIPTokenizer = _lib("transformers").CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for char in sorted(pre_tokenizers.ByteLevel.alphabet()):
        vocab.setdefault(char, len(vocab))
        vocab.setdefault(char + "</w>", len(vocab))  # CLIP marks a word's last character
    # model_max_length=77 matters: without it the pipeline pads to ~1e30 tokens and overflows.
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)


def _t5_tokenizer() -> Any:
    """Unigram T5 tokenizer: pad/eos/unk, the word marker and printable ASCII."""
    T5Tokenizer = _lib("transformers").T5Tokenizer

    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    pieces += [(char, -5.0) for char in string.ascii_letters + string.digits + string.punctuation]
    return T5Tokenizer(vocab=pieces, extra_ids=0, model_max_length=512)


def make_tiny_flux_components(
    *, seed: int = 0, num_layers: int = 1, num_single_layers: int = 1, guidance_embeds: bool = True
) -> dict[str, Any]:
    """The components of a tiny FLUX pipeline, keyed as ``FluxPipeline(**components)`` expects.

    Example:
        ```python
        from diffusers import FluxPipeline
        from fluxkit.testing.tiny_flux import make_tiny_flux_components

        pipe = FluxPipeline(**make_tiny_flux_components(seed=0))
        ```

    Args:
        seed: seed of the random weights (same seed, same model).
        num_layers: double-stream transformer blocks.
        num_single_layers: single-stream transformer blocks.
        guidance_embeds: True for a FLUX.1-dev-like model, False for schnell-like.
    """
    torch, diffusers, transformers = _lib("torch"), _lib("diffusers"), _lib("transformers")

    tokenizer, tokenizer_2 = _clip_tokenizer(), _t5_tokenizer()
    torch.manual_seed(seed)
    transformer = diffusers.FluxTransformer2DModel(
        patch_size=1,
        in_channels=_LATENT_CHANNELS * 4,
        num_layers=num_layers,
        num_single_layers=num_single_layers,
        attention_head_dim=_HEAD_DIM,
        num_attention_heads=_HEADS,
        joint_attention_dim=_TEXT_DIM,
        pooled_projection_dim=_POOLED_DIM,
        guidance_embeds=guidance_embeds,
        axes_dims_rope=[4, 6, 6],
    )
    torch.manual_seed(seed)
    text_encoder = transformers.CLIPTextModel(
        transformers.CLIPTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=_POOLED_DIM,
            intermediate_size=37,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=77,
            projection_dim=32,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            hidden_act="quick_gelu",
        )
    )
    torch.manual_seed(seed)
    text_encoder_2 = transformers.T5EncoderModel(
        transformers.T5Config(
            vocab_size=len(tokenizer_2),
            d_model=_TEXT_DIM,
            d_kv=8,
            d_ff=37,
            num_layers=2,
            num_heads=4,
            relative_attention_num_buckets=8,
            feed_forward_proj="gated-gelu",
            pad_token_id=tokenizer_2.pad_token_id,
            eos_token_id=tokenizer_2.eos_token_id,
            decoder_start_token_id=0,
            dropout_rate=0.0,
        )
    )
    torch.manual_seed(seed)
    vae = diffusers.AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,  # 4 blocks: scale factor 8 like FLUX
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(4, 4, 4, 4),
        layers_per_block=1,
        latent_channels=_LATENT_CHANNELS,
        norm_num_groups=2,
        sample_size=64,
        use_quant_conv=False,
        use_post_quant_conv=False,
        shift_factor=0.1159,
        scaling_factor=0.3611,  # FLUX's own values
    )
    scheduler = diffusers.FlowMatchEulerDiscreteScheduler(
        shift=3.0,
        use_dynamic_shifting=True,
        base_shift=0.5,
        max_shift=1.15,
        base_image_seq_len=256,
        max_image_seq_len=4096,
    )
    # Modules built from configs start in train() mode (dropout on, outputs random);
    # from_pretrained() returns eval() modules, so match it.
    for module in (transformer, text_encoder, text_encoder_2, vae):
        module.eval()
    return {
        "scheduler": scheduler,
        "vae": vae,
        "text_encoder": text_encoder,
        "tokenizer": tokenizer,
        "text_encoder_2": text_encoder_2,
        "tokenizer_2": tokenizer_2,
        "transformer": transformer,
        "image_encoder": None,
        "feature_extractor": None,
    }


def build_tiny_flux_pipeline(*, seed: int = 0, **options: Any) -> Any:
    """A tiny ``diffusers.FluxPipeline`` in memory (progress bar off).

    Example:
        ```python
        from fluxkit.testing.tiny_flux import build_tiny_flux_pipeline

        pipe = build_tiny_flux_pipeline()
        image = pipe("a cat", height=64, width=64, num_inference_steps=2).images[0]
        ```
    """
    pipe = _lib("diffusers").FluxPipeline(**make_tiny_flux_components(seed=seed, **options))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def save_tiny_flux(directory: str | os.PathLike[str], *, seed: int = 0, **options: Any) -> Path:
    """Build the tiny pipeline and ``save_pretrained`` it (about 650 KB); returns the directory.

    Example:
        ```python
        from fluxkit.testing.tiny_flux import save_tiny_flux

        model_dir = save_tiny_flux("/tmp/tiny-flux")   # then Generator("diffusers", model=...)
        ```
    """
    path = Path(directory)
    build_tiny_flux_pipeline(seed=seed, **options).save_pretrained(path)
    return path


def _transformer(model: Any) -> Any:
    """A transformer from a pipeline, a transformer, or a saved pipeline directory."""
    if hasattr(model, "transformer"):
        return model.transformer
    if isinstance(model, str | os.PathLike):
        model_class = _lib("diffusers").FluxTransformer2DModel
        config = model_class.load_config(os.fspath(model), subfolder="transformer")
        return model_class.from_config(config)
    return model


def make_tiny_lora(
    path: str | os.PathLike[str],
    model: Any,
    *,
    rank: int = 4,
    seed: int = 1,
    weight: float = 0.2,
    layout: Literal["diffusers", "kohya", "unmatched"] = "diffusers",
    targets: tuple[str, ...] = _ATTENTION_TARGETS,
) -> Path:
    """Write a random (so visibly active) LoRA for ``model`` as a ``.safetensors`` file.

    Example:
        ```python
        from fluxkit.testing.tiny_flux import make_tiny_lora

        style = make_tiny_lora("/tmp/style.safetensors", "/tmp/tiny-flux", rank=4, seed=1)
        kohya = make_tiny_lora("/tmp/k.safetensors", "/tmp/tiny-flux", layout="kohya")
        ```

    Args:
        path: the file to write.
        model: a saved tiny pipeline directory, a pipeline, or a transformer.
        rank: LoRA rank.
        seed: seed of the random factors.
        weight: standard deviation of the factors.
        layout: ``"diffusers"`` (``transformer.<module>.lora_A/B.weight``), ``"kohya"``
            (sd-scripts ``lora_unet_double_blocks_N_img_attn_qkv.lora_down/up`` + ``.alpha``,
            double blocks only: diffusers hard-codes real FLUX sizes for single-block linear1),
            or ``"unmatched"`` (well-formed LoRA keys naming modules the model does not have).
        targets: module name suffixes for the diffusers layout.
    """
    torch = _lib("torch")
    save_file = _lib("safetensors.torch").save_file

    transformer = _transformer(model)
    generator = torch.Generator().manual_seed(seed)

    def factor(*shape: int) -> Any:
        return torch.randn(*shape, generator=generator) * weight

    tensors: dict[str, Any] = {}
    if layout == "kohya":
        dim = transformer.inner_dim
        for block in range(len(transformer.transformer_blocks)):
            for name, out_features in (("img_attn_qkv", 3 * dim), ("img_attn_proj", dim)):
                key = f"lora_unet_double_blocks_{block}_{name}"
                tensors[f"{key}.lora_down.weight"] = factor(rank, dim)
                tensors[f"{key}.lora_up.weight"] = factor(out_features, rank)
                tensors[f"{key}.alpha"] = torch.tensor(float(rank))
    else:
        prefix = "transformer.not_a_module_" if layout == "unmatched" else "transformer."
        for name, module in transformer.named_modules():
            if isinstance(module, torch.nn.Linear) and name.endswith(targets):
                tensors[f"{prefix}{name}.lora_A.weight"] = factor(rank, module.in_features)
                tensors[f"{prefix}{name}.lora_B.weight"] = factor(module.out_features, rank)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(out))
    return out


def make_tiny_ip_adapter(
    directory: str | os.PathLike[str], model: Any, *, seed: int = 2, clip_dim: int = 16
) -> Path:
    """Write a tiny XLabs-layout FLUX IP-Adapter and its CLIP image encoder.

    Produces ``directory/ip_adapter.safetensors`` and ``directory/image_encoder/`` — the same
    layout as ``XLabs-AI/flux-ip-adapter`` + ``openai/clip-vit-large-patch14`` at toy sizes.

    Example:
        ```python
        from fluxkit.testing.tiny_flux import make_tiny_ip_adapter

        ip_dir = make_tiny_ip_adapter("/tmp/tiny-ip", "/tmp/tiny-flux")
        # Generator("diffusers", model=..., ip_adapter=str(ip_dir / "ip_adapter.safetensors"),
        #           image_encoder=str(ip_dir / "image_encoder"))
        ```
    """
    torch, transformers = _lib("torch"), _lib("transformers")
    save_file = _lib("safetensors.torch").save_file

    transformer = _transformer(model)
    cross_dim, hidden = transformer.config.joint_attention_dim, transformer.inner_dim
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    encoder = transformers.CLIPVisionModelWithProjection(
        transformers.CLIPVisionConfig(
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            image_size=32,
            patch_size=8,
            projection_dim=clip_dim,
        )
    ).eval()
    encoder.save_pretrained(out / "image_encoder")
    generator = torch.Generator().manual_seed(seed)

    def rand(*shape: int) -> Any:
        return torch.randn(*shape, generator=generator) * 0.5

    tokens = 4  # XLabs uses 4 image tokens (16 when the projection has 65536 rows)
    tensors = {
        "ip_adapter_proj_model.proj.weight": rand(tokens * cross_dim, clip_dim),
        "ip_adapter_proj_model.proj.bias": rand(tokens * cross_dim),
        "ip_adapter_proj_model.norm.weight": torch.ones(cross_dim),
        "ip_adapter_proj_model.norm.bias": torch.zeros(cross_dim),
    }
    for block in range(len(transformer.transformer_blocks)):
        for kind in ("k", "v"):
            key = f"double_blocks.{block}.processor.ip_adapter_double_stream_{kind}_proj"
            tensors[f"{key}.weight"] = rand(hidden, cross_dim)
            tensors[f"{key}.bias"] = rand(hidden)
    save_file(tensors, str(out / "ip_adapter.safetensors"))
    return out
