"""Benchmark: pack N synthetic 12-megapixel JPEGs (EXIF orientation + GPS) for fal.

Targets (issue 5): 100 images in <= 20 s on 2 cores, peak RSS <= 500 MB, and no RSS growth from
50 to 200 images (images are processed and streamed one at a time).

    python benchmarks/bench_datasets.py                 # 50, 100, 200 images
    python benchmarks/bench_datasets.py --counts 100

Generating the photos is setup, not timed; they are cached under benchmarks/out/photos-12mp/.
Each measurement runs in a fresh process so its peak RSS is its own.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PHOTOS = HERE / "out" / "photos-12mp"
SIZE = (4000, 3000)  # 12 MP


def make_photos(count: int) -> Path:
    """Photo-like 12 MP JPEGs: smooth colour fields + sensor-like noise, rotated EXIF, GPS."""
    import numpy as np
    from PIL import Image

    PHOTOS.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(12345)
    noise = rng.integers(-12, 13, (SIZE[1], SIZE[0], 3), dtype=np.int16)
    for index in range(count):
        path = PHOTOS / f"IMG_{index:04d}.jpg"
        if path.exists():
            continue
        field = np.random.default_rng(index).integers(0, 256, (6, 8, 3), dtype=np.uint8)
        base = np.asarray(Image.fromarray(field).resize(SIZE, Image.Resampling.BILINEAR))
        pixels = np.clip(base.astype(np.int16) + noise, 0, 255).astype(np.uint8)
        exif = Image.Exif()
        exif[0x0112] = 6 if index % 3 == 0 else 1  # a third shot in portrait, stored rotated
        exif[0x010F], exif[0x0110], exif[0xA431] = "Phone", "Model X", f"SN{index:08d}"
        gps = exif.get_ifd(0x8825)
        gps[1], gps[2], gps[3], gps[4] = "N", (48.0, 51.0, 29.0), "E", (2.0, 17.0, 40.0)
        Image.fromarray(pixels).save(path, "JPEG", quality=92, exif=exif.tobytes())
    return PHOTOS


def run_one(count: int) -> dict[str, float]:
    """Pack ``count`` photos in this process; returns wall time and peak RSS."""
    if hasattr(os, "sched_setaffinity"):
        cpus = sorted(os.sched_getaffinity(0))[:2]
        os.sched_setaffinity(0, cpus)
    from fluxkit.datasets import pack_dataset

    files = sorted(PHOTOS.glob("IMG_*.jpg"))[:count]
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        report = pack_dataset(files, target="fal", trigger="tok", out=Path(tmp) / "tok.zip")
        wall = time.perf_counter() - start
        archive_mb = Path(tmp, "tok.zip").stat().st_size / 1e6
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "images": count,
        "kept": len(report.images),
        "wall_s": round(wall, 2),
        "per_image_ms": round(1000 * wall / count, 1),
        "peak_rss_mb": round(peak_kb / 1024, 1),
        "archive_mb": round(archive_mb, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[50, 100, 200])
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one)))
        return
    started = time.perf_counter()
    make_photos(max(args.counts))
    print(
        f"setup: {max(args.counts)} photos ready in {time.perf_counter() - started:.0f} s",
        file=sys.stderr,
    )
    print(
        f"{'images':>6} {'kept':>5} {'wall s':>7} {'ms/img':>7} {'peak RSS MB':>12} {'zip MB':>7}"
    )
    for count in args.counts:
        out = subprocess.run(
            [sys.executable, __file__, "--one", str(count)],
            check=True,
            capture_output=True,
            text=True,
        )
        row = json.loads(out.stdout)
        print(
            f"{row['images']:>6} {row['kept']:>5} {row['wall_s']:>7} {row['per_image_ms']:>7} "
            f"{row['peak_rss_mb']:>12} {row['archive_mb']:>7}"
        )


if __name__ == "__main__":
    main()
