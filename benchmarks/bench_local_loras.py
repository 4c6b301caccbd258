"""What switching LoRAs costs on the local diffusers backend (tiny random-weight FLUX, CPU).

Three ways to serve a request stream that cycles among 3 LoRAs:

* **cached switch** — fluxkit's path: adapters stay loaded (LRU), a switch is ``set_adapters``;
* **cold load** — each LoRA read from disk and loaded (``max_loaded_loras=1`` evicts every time);
* **hotswap load** — the same, refilling the one slot in place (``hotswap=8``);
* **pipeline reload** — what a naive server does: ``FluxPipeline.from_pretrained`` per request.

Each figure is the median over ``--rounds`` of the *switch* alone (the pipeline call that follows
is the same for all three and is reported separately). Target: cached switch >= 10x faster than a
cold load, and 0 pipeline reloads after the first.

    python benchmarks/bench_local_loras.py [--rounds 30] [--threads 1]

On the tiny model the sizes are toys (82k-parameter transformer, 10-40 KB LoRAs); on FLUX.1-dev a
reload reads ~24 GB and a LoRA 50-300 MB, so the ratios only grow.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: stable)")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    import fluxkit
    from fluxkit.backends.diffusers import DiffusersBackend
    from fluxkit.testing.tiny_flux import make_tiny_lora, save_tiny_flux

    work = Path(tempfile.mkdtemp(prefix="fluxkit-bench-"))
    model = save_tiny_flux(work / "tiny-flux")
    files = [make_tiny_lora(work / f"l{i}.safetensors", model, rank=8, seed=i) for i in range(3)]

    def cycle(gen: fluxkit.Generator, backend: DiffusersBackend) -> list[float]:
        """Switch times: the LoRA step of run(), measured by timing activate() alone."""
        adapters = backend._adapters
        real = adapters.activate
        times: list[float] = []

        def timed(*a: Any, **k: Any) -> None:
            started = time.perf_counter()
            real(*a, **k)
            times.append(time.perf_counter() - started)

        adapters.activate = timed  # type: ignore[method-assign]
        for i in range(3):  # warm-up: first loads (and, for the cached case, the cache fill)
            gen.generate("x", size=(256, 256), steps=1, seed=0, loras=[str(files[i])])
        times.clear()
        for i in range(args.rounds):
            gen.generate("x", size=(256, 256), steps=1, seed=0, loras=[str(files[i % 3])])
        return times

    results: dict[str, float] = {}
    for label, capacity, hotswap in (
        ("cached switch", 3, None),
        ("cold load", 1, None),
        ("hotswap load", 1, 8),
    ):
        backend = DiffusersBackend(model=str(model), device="cpu", max_loaded_loras=capacity,
                                   hotswap=hotswap, lora_cache_dir=work / "cache")  # fmt: skip
        with fluxkit.Generator(backend) as gen:
            results[label] = statistics.median(cycle(gen, backend))
            stats = backend.stats
            print(f"{label:16s} pipeline loads={stats.pipeline_loads} lora loads={stats.loras.loads} "
                  f"hits={stats.loras.hits} evictions={stats.loras.evictions} "
                  f"hotswaps={stats.loras.hotswaps}")  # fmt: skip

    from diffusers import FluxPipeline

    reloads: list[float] = []
    for i in range(max(5, args.rounds // 3)):
        started = time.perf_counter()
        pipe = FluxPipeline.from_pretrained(str(model), local_files_only=True)
        pipe.load_lora_weights(str(files[i % 3]), adapter_name="x")
        reloads.append(time.perf_counter() - started)
    results["pipeline reload"] = statistics.median(reloads)

    backend = DiffusersBackend(model=str(model), device="cpu", lora_cache_dir=work / "cache")
    with fluxkit.Generator(backend) as gen:
        gen.generate("x", size=(256, 256), steps=1, seed=0)
        started = time.perf_counter()
        gen.generate("x", size=(256, 256), steps=1, seed=0)
        generation = time.perf_counter() - started

    print(f"\ntorch {torch.__version__}, {args.threads} thread(s), {args.rounds} rounds, medians")
    cached = results["cached switch"]
    for label, seconds in results.items():
        print(f"  {label:16s} {seconds * 1000:9.2f} ms   {seconds / cached:7.1f}x cached")
    print(f"  (one 256x256 1-step generation: {generation * 1000:.1f} ms)")
    ratio = results["cold load"] / cached
    print(
        f"target cached >= 10x faster than cold: {ratio:.1f}x -> {'PASS' if ratio >= 10 else 'FAIL'}"
    )


if __name__ == "__main__":
    main()
