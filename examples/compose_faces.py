"""Put Grace Hopper's face on the astronaut, then restyle it (offline, with the fake backend).

    python examples/compose_faces.py [OUTPUT_DIR]

Both photos are public domain and ship inside matplotlib and scikit-image. Swap "fake" for
"fal" (and set FAL_KEY) to restyle with a real FLUX model.
"""

from __future__ import annotations

import sys
from pathlib import Path

from matplotlib import cbook
from PIL import Image
from skimage import data

import fluxkit
from fluxkit.faces import overlay_face, overlay_then_restyle


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    headshot = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    target = Image.fromarray(data.astronaut())

    composite = overlay_face(target, headshot, fit="width", scale=1.05)
    composite.save(out / "overlay.png", overwrite=True)  # the demo rewrites its own files
    print("overlay:", "; ".join(composite.steps), f"({composite.timings['total']:.0f} ms)")

    with fluxkit.Generator("fake") as gen:
        result = overlay_then_restyle(gen, target, headshot, style="van-gogh", seed=7)
    result.save(out / "restyled.png", overwrite=True)
    for warning in result.warnings:  # RestyleFailed: the overlay came back instead
        print("warning:", warning)
    print("restyled:", result.restyled, "->", out / "restyled.png")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "compose_faces_out"))
