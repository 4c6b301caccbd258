"""Benchmarks of fluxkit's RunPod worker on the tiny random-weight FLUX pipeline (CPU).

    OMP_NUM_THREADS=1 python benchmarks/bench_worker.py [--jobs 20]

* warm overhead: a job's time beyond the pipeline call (schema, LoRA lookup, events, data-URI
  encoding), as a share of the pipeline call, median over ``--jobs`` warm jobs;
* LoRA switch: the adapter switch of a job whose LoRA is (a) new (download from a data: URI +
  load), (b) cached on disk but not loaded (load only), (c) loaded (set_adapters only);
* cold start, in a fresh interpreter: importing runpod, importing torch + diffusers, loading the
  pipeline, and the first job.

On a GPU the pipeline call is seconds, so the absolute overhead matters more than the ratio; on the
tiny model the ratio is the strict test (the pipeline call is ~0.1 s).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

COLD = r"""
import json, sys, time
t0 = time.perf_counter()
import runpod.serverless  # noqa: F401
t1 = time.perf_counter()
import torch, diffusers  # noqa: F401,E401
t2 = time.perf_counter()
from fluxkit.worker import Worker, WorkerSettings
from pathlib import Path
worker = Worker(WorkerSettings(model=sys.argv[1], device="cpu",
                               lora_cache_dir=Path(sys.argv[2])), progress=lambda j, p: None)
worker.load()
t3 = time.perf_counter()
import asyncio
out = asyncio.run(worker.run({"id": "first", "input": {"prompt": "a fox", "size": [256, 256],
                                                       "steps": 4, "output": "base64"}}))
t4 = time.perf_counter()
assert "images" in out, out
print(json.dumps({"import_runpod_s": t1 - t0, "import_torch_diffusers_s": t2 - t1,
                  "pipeline_load_s": t3 - t2, "first_job_s": t4 - t3,
                  "first_job_inference_s": out["metrics"]["inference_s"]}))
"""


def uri(path: Path) -> str:
    return "data:application/octet-stream;base64," + base64.b64encode(path.read_bytes()).decode()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=20)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    from fluxkit.testing.tiny_flux import make_tiny_lora, save_tiny_flux
    from fluxkit.worker import Worker, WorkerSettings

    root = Path(tempfile.mkdtemp(prefix="bench-worker-"))
    model = save_tiny_flux(root / "tiny")
    loras = [uri(make_tiny_lora(root / f"l{i}.safetensors", model, seed=i)) for i in range(4)]

    def job(worker: Worker, **extra: Any) -> dict[str, Any]:
        body = {"prompt": "a fox", "size": [256, 256], "steps": 4, "seed": 1, "output": "base64"}
        out = asyncio.run(worker.run({"id": "b", "input": {**body, **extra}}))
        assert "images" in out, out
        return dict(out["metrics"])

    # warm overhead
    worker = Worker(
        WorkerSettings(model=str(model), device="cpu", lora_cache_dir=root / "c1"),
        progress=lambda j, p: None,
    )
    worker.load()
    job(worker)
    ratios, extras = [], []
    for _ in range(args.jobs):
        m = job(worker)
        extra = m["total_s"] - m["inference_s"]
        extras.append(extra)
        ratios.append(extra / m["inference_s"])
    print(
        f"warm overhead beyond the pipeline call: median {statistics.median(extras) * 1000:.1f} ms "
        f"= {statistics.median(ratios) * 100:.1f} % of the pipeline call "
        f"(median pipeline call {statistics.median(job(worker)['inference_s'] for _ in range(3)) * 1000:.0f} ms)"
    )
    with_lora = [job(worker, loras=[{"source": loras[0], "scale": 0.8}]) for _ in range(args.jobs)]
    ratio = statistics.median(
        (m["total_s"] - m["inference_s"]) / m["inference_s"] for m in with_lora
    )
    print(f"warm overhead with one cached LoRA: {ratio * 100:.1f} %")

    # LoRA switch: new / on disk only / loaded
    worker2 = Worker(
        WorkerSettings(
            model=str(model), device="cpu", lora_cache_dir=root / "c2", max_loaded_loras=2
        ),
        progress=lambda j, p: None,
    )
    worker2.load()
    cold = [job(worker2, loras=[s]) for s in loras]  # each new: fetch + load (evicts beyond 2)
    disk = [job(worker2, loras=[s]) for s in loras[:2]]  # on disk, evicted from the model
    loaded = [job(worker2, loras=[loras[i % 2]]) for i in range(2, 8)]  # both loaded: switch
    med = statistics.median
    print(
        "LoRA switch: new (fetch + load) "
        f"{med(m['lora_fetch_s'] + m['lora_switch_s'] for m in cold) * 1000:.1f} ms; "
        f"cached on disk, not loaded {med(m['lora_fetch_s'] + m['lora_switch_s'] for m in disk) * 1000:.1f} ms; "
        f"loaded (set_adapters) {med(m['lora_fetch_s'] + m['lora_switch_s'] for m in loaded) * 1000:.1f} ms"
    )

    # cold start in a fresh interpreter
    done = subprocess.run(
        [sys.executable, "-c", COLD, str(model), str(root / "c3")],
        capture_output=True,
        text=True,
        check=True,
    )
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    print("cold start: " + ", ".join(f"{k} {v:.2f} s" for k, v in figures.items()))


if __name__ == "__main__":
    main()
