"""Generate two images offline, save them with their generation record, read it back.

    python examples/quickstart.py [OUTPUT_DIR]

Swap "fake" for "fal", "together", "replicate" or "diffusers" to use a real backend.
"""

from __future__ import annotations

import sys
from pathlib import Path

import fluxkit


def main(output: Path) -> None:
    with fluxkit.Generator("fake") as gen:
        result = gen.generate(
            "a red fox in the snow, golden hour",
            size="landscape_4_3",
            seed=7,
            n=2,
            loras=[fluxkit.LoRA("hf://me/fox-style/style.safetensors", scale=0.8)],
        )
    for path in result.save(output):
        record = fluxkit.read_record(path)
        assert record is not None
        print(f"{path.name}: seed {record['seed']}, {record['width']}x{record['height']}")
    print(f"took {result.timings.total:.2f} s, request ids {', '.join(result.request_ids)}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "out"))
