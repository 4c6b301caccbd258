"""Benchmarks of the local FLUX LoRA loop (``fluxkit.training.train_local``).

    OMP_NUM_THREADS=1 python benchmarks/bench_training.py [--steps 60]
    python benchmarks/bench_training.py --gpu        # needs CUDA: full-size FLUX.1-dev shapes

CPU (tiny random-weight pipeline, one thread, ranks 4, 64 px buckets):

* steps per second of the loop with gradient checkpointing on and off (after the latent and
  prompt cache is built; model loading and caching are reported apart as ``setup_s``);
* peak RSS of the process (``ru_maxrss``);
* checkpoint overhead: the same run with a checkpoint every step vs none, per checkpoint;
* resume overhead: setup of a run that resumes from a checkpoint vs a fresh one.

``--gpu``: seconds per step of the full-size FLUX.1-dev transformer (random weights, bf16,
rank-16 LoRA on the attention projections) at 512² and 1024², gradient checkpointing on/off,
and peak VRAM (``torch.cuda.max_memory_allocated``). Text encoders and the VAE are not loaded:
the loop caches their outputs, so per-step cost is the transformer's alone.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any


def _photos(folder: Path) -> Path:
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for seed, size in enumerate([(64, 64), (64, 64), (80, 64), (80, 64)]):
        rng = np.random.default_rng(seed)
        small = Image.fromarray(rng.integers(0, 256, (5, 7, 3), dtype=np.uint8))
        small.resize(size, Image.Resampling.BICUBIC).save(folder / f"{seed}.png")
        (folder / f"{seed}.txt").write_text(f"a photo of tok {seed}")
    return folder


def _run(model: Path, photos: Path, out: Path, **overrides: Any) -> dict[str, float]:
    from fluxkit.training import LocalTrainingConfig, TrainingStep, train_local

    values: dict[str, Any] = dict(  # noqa: C408 - keyword names, as in the config
        model=str(model),
        output_dir=str(out),
        trigger_word="tok",
        steps=60,
        rank=4,
        learning_rate=1e-3,
        resolution=64,
        checkpoint_every=10_000,
    )
    values.update(overrides)
    stamps: list[float] = []

    def emit(event: Any) -> None:
        if isinstance(event, TrainingStep):
            stamps.append(time.perf_counter())

    began = time.perf_counter()
    result = train_local(LocalTrainingConfig(**values), photos, emit=emit)
    loop = stamps[-1] - stamps[0] if len(stamps) > 1 else 0.0
    return {
        "steps": len(stamps),
        "steps_per_s": (len(stamps) - 1) / loop if loop else 0.0,
        "setup_s": stamps[0] - began if stamps else 0.0,
        "total_s": result.seconds,
        "first_loss": statistics.mean(result.losses[:10]),
        "last_loss": statistics.mean(result.losses[-10:]),
    }


def cpu(steps: int) -> dict[str, Any]:
    import torch

    from fluxkit.testing.tiny_flux import save_tiny_flux

    torch.set_num_threads(1)
    root = Path(tempfile.mkdtemp(prefix="bench-training-"))
    try:
        model = save_tiny_flux(root / "tiny")
        photos = _photos(root / "photos")
        on = _run(model, photos, root / "on", steps=steps)
        off = _run(model, photos, root / "off", steps=steps, gradient_checkpointing=False)
        every = _run(model, photos, root / "every", steps=steps, checkpoint_every=1)
        per_checkpoint_ms = 1000 * (every["total_s"] - on["total_s"]) / (steps - 1)
        # resume: a finished run's checkpoint, asked for 10 more steps
        fresh = _run(model, photos, root / "resume", steps=steps)
        resumed = _run(model, photos, root / "resume", steps=steps + 10)
        return {
            "threads": torch.get_num_threads(),
            "steps_per_s_checkpointing_on": round(on["steps_per_s"], 1),
            "steps_per_s_checkpointing_off": round(off["steps_per_s"], 1),
            "loss_first10_last10": [round(on["first_loss"], 4), round(on["last_loss"], 4)],
            "setup_s_fresh": round(fresh["setup_s"], 3),
            "setup_s_resumed": round(resumed["setup_s"], 3),
            "resume_overhead_s": round(resumed["setup_s"] - fresh["setup_s"], 3),
            "checkpoint_ms_each": round(per_checkpoint_ms, 2),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        }
    finally:
        shutil.rmtree(root, ignore_errors=True)


def gpu(steps: int = 5) -> list[dict[str, Any]]:
    """Full-size FLUX.1-dev transformer, random weights, rank 16, bf16 (needs CUDA)."""
    import diffusers
    import peft
    import torch

    rows = []
    for side in (512, 1024):
        for checkpointing in (True, False):
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            with torch.device("meta"):
                model = diffusers.FluxTransformer2DModel(guidance_embeds=True)
            model = model.to_empty(device="cuda").to(torch.bfloat16)
            for p in model.parameters():
                torch.nn.init.normal_(p, std=0.02)
            model.requires_grad_(False)
            model.add_adapter(
                peft.LoraConfig(
                    r=16,
                    lora_alpha=16,
                    init_lora_weights="gaussian",
                    target_modules=["to_q", "to_k", "to_v", "to_out.0"],
                )
            )
            if checkpointing:
                model.enable_gradient_checkpointing()
            params = [p for p in model.parameters() if p.requires_grad]
            for p in params:
                p.data = p.data.float()
            optimizer = torch.optim.AdamW(params, lr=1e-4)
            tokens = (side // 16) ** 2
            kw: dict[str, Any] = dict(  # noqa: C408 - the forward() keywords
                hidden_states=torch.randn(1, tokens, 64, device="cuda", dtype=torch.bfloat16),
                encoder_hidden_states=torch.randn(
                    1, 512, 4096, device="cuda", dtype=torch.bfloat16
                ),
                pooled_projections=torch.randn(1, 768, device="cuda", dtype=torch.bfloat16),
                timestep=torch.tensor([0.5], device="cuda", dtype=torch.bfloat16),
                guidance=torch.tensor([1.0], device="cuda", dtype=torch.bfloat16),
                txt_ids=torch.zeros(512, 3, device="cuda"),
                img_ids=torch.zeros(tokens, 3, device="cuda"),
                return_dict=False,
            )
            row: dict[str, Any] = {"side": side, "checkpointing": checkpointing}
            try:
                times = []
                for _ in range(steps + 1):
                    torch.cuda.synchronize()
                    start = time.perf_counter()
                    with torch.autocast("cuda", dtype=torch.bfloat16):
                        out = model(**kw)[0]
                    out.float().pow(2).mean().backward()
                    optimizer.step()
                    optimizer.zero_grad(set_to_none=True)
                    torch.cuda.synchronize()
                    times.append(time.perf_counter() - start)
                row["s_per_step"] = round(statistics.median(times[1:]), 3)
                row["peak_vram_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
                row["fits_24gb"] = row["peak_vram_gb"] < 24
            except torch.cuda.OutOfMemoryError:
                row["error"] = "out of memory"
            del model, optimizer
            rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--gpu", action="store_true", help="full-size shapes on CUDA")
    args = parser.parse_args()
    report = gpu() if args.gpu else cpu(args.steps)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
