"""A local, content-addressed LoRA library: every trained LoRA kept once, by SHA-256.

Layout: ``<root>/<sha256[:2]>/<sha256>/lora.safetensors`` plus ``training.json`` (what trained
it) and any side files (``config.json``). Files are written atomically, so a crash leaves either
no entry or a complete one. Default root: ``$FLUXKIT_LORA_LIBRARY``, else
``~/.cache/fluxkit/loras``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fluxkit._exceptions import InvalidRequestError
from fluxkit.lora import LoRAInfo, inspect_lora

__all__ = ["LoRALibrary", "check_family"]

FLUX1 = frozenset({"flux-dev", "flux-schnell", "flux"})


def default_root() -> Path:
    given = os.environ.get("FLUXKIT_LORA_LIBRARY")
    return Path(given).expanduser() if given else Path.home() / ".cache" / "fluxkit" / "loras"


def check_family(info: LoRAInfo, expected: str) -> None:
    """Refuse a LoRA whose base model is not the trainer's family (FLUX.1 vs FLUX.2)."""
    family = "flux1" if info.base_model in FLUX1 else info.base_model
    if expected == "flux1" and family == "unknown" and info.layout == "diffusers":
        return  # PEFT keys of FLUX.1's shape with no metadata: the inspector's own default
    if family != expected:
        raise InvalidRequestError(
            "lora",
            info.source,
            f"a {expected} LoRA",
            reason=f"the trained file inspects as {info.base_model} ({info.base_model_evidence})",
        )


class LoRALibrary:
    """Where trained LoRAs are kept.

    Example:
        ```python
        from fluxkit.training import LoRALibrary

        library = LoRALibrary("/tmp/loras")
        path = library.add(open("lora.safetensors", "rb").read(), {"trigger_word": "tok"})
        ```
    """

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self.root = Path(root).expanduser() if root is not None else default_root()

    def path_for(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256 / "lora.safetensors"

    def add(
        self,
        weights: bytes,
        record: Mapping[str, Any],
        *,
        extra: Mapping[str, bytes] | None = None,
        family: str = "flux1",
    ) -> tuple[Path, LoRAInfo]:
        """Store ``weights`` (atomically, once per content), inspect it, and return its path.

        Raises:
            InvalidRequestError: not a readable safetensors LoRA of ``family``; nothing kept.
        """
        from fluxkit._files import atomic_write

        sha = hashlib.sha256(weights).hexdigest()
        final = self.path_for(sha)
        if not final.exists():
            staging = final.with_name(f".incoming-{os.getpid()}.safetensors")
            atomic_write(staging, weights, overwrite=True)
            try:
                check_family(inspect_lora(staging), family)
            except BaseException:
                staging.unlink(missing_ok=True)
                raise
            os.replace(staging, final)
        info = inspect_lora(final)
        check_family(info, family)
        for name, data in (extra or {}).items():
            atomic_write(final.with_name(name), data, overwrite=True)
        meta = {
            **record,
            "sha256": sha,
            "layout": info.layout,
            "rank": info.rank,
            "alphas": list(info.alphas),
            "base_model": info.base_model,
        }
        atomic_write(
            final.with_name("training.json"),
            json.dumps(meta, indent=1, sort_keys=True, default=str).encode(),
            overwrite=True,
        )
        return final, info

    def entries(self) -> list[Path]:
        """Every LoRA file in the library."""
        return sorted(self.root.glob("*/*/lora.safetensors"))
