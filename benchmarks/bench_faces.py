"""Face compositing speed at 1024x1024, detection included, pinned to 2 CPU cores.

    python benchmarks/bench_faces.py [--runs 15] [--cores 2]

Targets are 1024x1024 (the astronaut upscaled; Grace Hopper stylised as a "painting" and
cropped); headshots are the 512 px originals, passed as decoded PIL images, so the time covers
detection in both images, alignment, masks, colour and blend (not file decoding). Composites and
a side-by-side grid go to benchmarks/out/faces/ for a person to look at; the issue's target is a
median of at most 150 ms for the default settings.

Both wall-clock and process CPU time are reported: on a shared machine the wall clock includes
waiting for other processes, while CPU time (summed over OpenCV's threads) is what the work itself
costs, and bounds the wall time on an otherwise idle 2-core machine from above.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import cv2
import numpy as np
from matplotlib import cbook
from PIL import Image, ImageDraw
from skimage import data

from fluxkit.faces import overlay_face

OUT = Path(__file__).parent / "out" / "faces"
TARGET_MS = 150.0


def images() -> dict[str, Image.Image]:
    grace = Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).convert("RGB")
    astronaut = Image.fromarray(data.astronaut())
    tall = grace.resize((1024, 1200), Image.Resampling.LANCZOS).crop((0, 0, 1024, 1024))
    painted = Image.fromarray(cv2.stylization(np.asarray(tall), sigma_s=60, sigma_r=0.45))
    return {
        "grace": grace,
        "astronaut": astronaut,
        "astronaut_1024": astronaut.resize((1024, 1024), Image.Resampling.LANCZOS),
        "painted_grace_1024": painted,
    }


def detectors() -> list[str]:
    try:
        import yuface  # noqa: F401
    except ImportError:
        return ["haar"]
    return ["haar", "yuface"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--cores", type=int, default=2)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity") and len(os.sched_getaffinity(0)) > args.cores:
        os.sched_setaffinity(0, set(sorted(os.sched_getaffinity(0))[: args.cores]))
    cv2.setNumThreads(args.cores)
    OUT.mkdir(parents=True, exist_ok=True)
    pics = images()
    pairs = [("astronaut_1024", "grace"), ("painted_grace_1024", "astronaut")]
    cases = [(d, "alpha") for d in detectors()] + [("haar", "poisson"), ("haar", "laplacian")]
    results = []
    header = (
        f"{'target <- headshot':38} {'detector':8} {'blend':9} {'median':>7} {'p90':>7} {'cpu':>7}"
    )
    print(header, " stages (wall ms)")
    for target, headshot in pairs:
        for detector, blend in cases:
            overlay_face(pics[target], pics[headshot], detector=detector, blend=blend)  # warm up
            totals, cpu, runs = [], [], []
            for _ in range(args.runs):
                started, cpu_started = time.perf_counter(), time.process_time()
                composite = overlay_face(
                    pics[target], pics[headshot], detector=detector, blend=blend
                )
                totals.append((time.perf_counter() - started) * 1e3)
                cpu.append((time.process_time() - cpu_started) * 1e3)
                runs.append(composite.timings)
            stages = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
            median, cpu_median = statistics.median(totals), statistics.median(cpu)
            p90 = sorted(totals)[int(0.9 * (len(totals) - 1))]
            name = f"{target}__{headshot}__{detector}_{blend}"
            composite.save(OUT / f"{name}.png")
            results.append(
                {
                    "case": name,
                    "median_ms": median,
                    "p90_ms": p90,
                    "cpu_median_ms": cpu_median,
                    "stages_ms": stages,
                }
            )
            staged = " ".join(f"{k}={v:.0f}" for k, v in stages.items() if k != "total")
            pair = f"{target} <- {headshot}"
            print(
                f"{pair:38} {detector:8} {blend:9} {median:7.1f} {p90:7.1f} {cpu_median:7.1f} ",
                staged,
            )
    write_grid(pics, pairs)
    (OUT / "results.json").write_text(
        json.dumps(
            {
                "cores": args.cores,
                "runs": args.runs,
                "cpu": platform.processor() or platform.machine(),
                "opencv": cv2.__version__,
                "results": results,
            },
            indent=2,
        )
    )
    default = [r for r in results if r["case"].endswith("haar_alpha")]
    wall = max(r["median_ms"] for r in default)
    cpu_time = max(r["cpu_median_ms"] for r in default)
    verdict = "within" if min(wall, cpu_time) <= TARGET_MS else "OVER"
    print(
        f"default (haar, alpha), worst pair: median {wall:.1f} ms wall, {cpu_time:.1f} ms CPU; "
        f"{verdict} the {TARGET_MS:.0f} ms target"
    )
    print(f"composites in {OUT}")


def write_grid(pics: dict[str, Image.Image], pairs: list[tuple[str, str]]) -> None:
    """Target, headshot, alpha composite and Poisson composite per pair, 256 px tiles."""
    tile = 256
    grid = Image.new("RGB", (4 * tile, len(pairs) * (tile + 20)), "white")
    draw = ImageDraw.Draw(grid)
    for row, (target, headshot) in enumerate(pairs):
        tiles = [
            (pics[target], "target"),
            (pics[headshot], "headshot"),
            (Image.open(OUT / f"{target}__{headshot}__haar_alpha.png"), "alpha + LAB"),
            (Image.open(OUT / f"{target}__{headshot}__haar_poisson.png"), "poisson"),
        ]
        for col, (image, label) in enumerate(tiles):
            thumb = image.copy()
            thumb.thumbnail((tile, tile))
            y = row * (tile + 20)
            grid.paste(thumb, (col * tile, y + 20))
            draw.text((col * tile + 4, y + 4), label, fill="black")
    grid.save(OUT / "grid.png")


if __name__ == "__main__":
    main()
