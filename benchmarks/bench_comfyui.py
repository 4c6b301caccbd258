"""ComfyUI backend figures: pickup latency (websocket vs /history polling), per-prompt overhead,
upload-cache hits. Run: ``python benchmarks/bench_comfyui.py [--real]``.

Without ``--real`` it runs against fluxkit's ComfyUI emulator on loopback (HTTP + websocket);
with ``--real`` the pickup/overhead figures come from the real ComfyUI kit (../shared/comfyui).
"""

from __future__ import annotations

import io
import statistics
import sys
import time
from typing import Any

import fluxkit
from fluxkit.comfy import FluxModels
from fluxkit.testing import ComfyUIEmulator, render_fake_image


def _png() -> bytes:
    buffer = io.BytesIO()
    render_fake_image("face", 1, 64, 64).save(buffer, format="PNG")
    return buffer.getvalue()


def pickup(url: str, websocket: bool, runs: int, run_end: Any) -> list[float]:
    """Seconds from the server finishing a prompt to generate() returning."""
    latencies = []
    with fluxkit.Generator(
        "comfyui", base_url=url, models=FluxModels.tiny(), websocket=websocket
    ) as gen:
        for seed in range(runs):
            result = gen.generate("x", size=(256, 256), steps=1, seed=seed)
            latencies.append(time.monotonic() - run_end(result.request_ids[0]))
    return latencies


def main() -> None:
    emu = ComfyUIEmulator()
    emu.script.run_seconds = 0.5
    emu.script.steps = 2
    with emu.serve() as url:

        def ended(prompt_id: str) -> float:
            end = emu.jobs[prompt_id].end
            assert end is not None
            return end

        for websocket in (True, False):
            values = pickup(url, websocket, 10, ended)
            name = "websocket" if websocket else "/history polling"
            print(
                f"pickup latency, {name:17}: median {statistics.median(values) * 1000:6.1f} ms, "
                f"max {max(values) * 1000:6.1f} ms (emulator, run 0.5 s, 10 prompts)"
            )
        emu.script.run_seconds = 0.0
        with fluxkit.Generator("comfyui", base_url=url, models=FluxModels.tiny()) as gen:
            gen.generate("warm", size=(256, 256), steps=1)
            started = time.perf_counter()
            for seed in range(20):
                gen.generate("x", size=(256, 256), steps=1, seed=seed)
            per = (time.perf_counter() - started) / 20
        print(f"backend overhead per prompt (zero-time server, loopback): {per * 1000:.1f} ms")
    emu = ComfyUIEmulator()
    emu.script.run_seconds = 0.0
    face = _png()
    with emu.generator() as gen:
        for seed in range(100):
            gen.generate("x", size=(256, 256), steps=1, seed=seed, reference_image=face)
        cache = gen._backend.upload_cache  # type: ignore[attr-defined]
    print(f"reference image reused 100 times: {emu.uploads} upload(s), {cache.hits} cache hits")
    if "--real" in sys.argv:
        from tests.comfy import kit

        srv = kit.server()
        history_end: dict[str, float] = {}

        def real_end(prompt_id: str) -> float:
            entry = srv.get(f"/history/{prompt_id}")[1][prompt_id]
            stamp = [m for m in entry["status"]["messages"] if m[0] == "execution_success"]
            history_end[prompt_id] = stamp[0][1]["timestamp"] / 1000
            return time.monotonic() - (time.time() - history_end[prompt_id])

        for websocket in (True, False):
            values = pickup(srv.url, websocket, 5, real_end)
            name = "websocket" if websocket else "/history polling"
            print(f"real server pickup, {name}: median {statistics.median(values) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
