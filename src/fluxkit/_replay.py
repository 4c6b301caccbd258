"""Regenerate an image from the generation record embedded in the file itself.

``GeneratedImage.save()`` embeds what made the image (prompt, size, steps, guidance, seed,
LoRAs, strengths, the resolved model, ``extra``, and the content hash plus path or URL of each
input image). :func:`replay` reads it back and runs it again — on the same backend by default,
or on another one with overrides. A fake or local generation replays to the same pixels.

(The module is ``fluxkit._replay``, not ``fluxkit.replay``: ``fluxkit.replay`` is the function.)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fluxkit._exceptions import InvalidRequestError

if TYPE_CHECKING:
    from fluxkit._generator import Generator
    from fluxkit._results import GenerationResult

__all__ = ["replay", "replay_request"]

_SAME_BACKEND_ONLY = ("model",)


def replay_request(
    source: str | os.PathLike[str] | bytes,
    *,
    backend: str | None = None,
    images: Mapping[str, Any] | None = None,
    **overrides: Any,
) -> tuple[str, dict[str, Any]]:
    """``(backend, generate() keyword arguments)`` that regenerate the image in ``source``.

    Args:
        source: an image file saved by fluxkit (or its bytes).
        backend: run on this backend instead of the recorded one (the model then follows the
            recorded alias, e.g. ``flux-dev``, unless ``model=`` is given).
        images: input images by content hash (``{"3fa9...": "face.jpg"}``), for inputs whose
            recorded path or URL is gone.
        **overrides: request fields to change (``seed=``, ``steps=``, ``image=``, ...).

    Raises:
        InvalidRequestError: ``source`` has no fluxkit record, or an input image it needs is
            missing (the error names its hash and how to pass it).
    """
    from fluxkit._record import read_record

    record = read_record(source)
    if not record or "prompt" not in record:
        shown = "<bytes>" if isinstance(source, bytes) else str(source)
        raise InvalidRequestError("source", shown, "an image saved by fluxkit (with its record)")
    recorded_backend = str(record.get("backend") or "fake")
    chosen = backend or recorded_backend
    params: dict[str, Any] = {
        "width": record.get("width"),
        "height": record.get("height"),
        "steps": record.get("steps"),
        "guidance": record.get("guidance"),
        "seed": record.get("seed"),
        "output_format": record.get("output_format"),
        "extra": record.get("extra") or {},
        "loras": [_lora(entry) for entry in record.get("loras") or []],
    }
    if chosen == recorded_backend:
        params["model"] = record.get("model")
    elif record.get("requested_model"):
        params["model"] = record.get("requested_model")
    for name in ("image", "reference_image"):
        entry = record.get(name)
        if entry and name not in overrides:
            params[name] = _input(name, entry, images or {})
    if record.get("image"):
        params["strength"] = record.get("strength")
    if record.get("reference_image"):
        params["reference_strength"] = record.get("reference_strength")
    params.update(overrides)
    params = {key: value for key, value in params.items() if value is not None}
    return chosen, {"prompt": record["prompt"], **params}


def replay(
    source: str | os.PathLike[str] | bytes,
    backend: str | None = None,
    *,
    generator: Generator | None = None,
    images: Mapping[str, Any] | None = None,
    **overrides: Any,
) -> GenerationResult:
    """Generate again the image saved in ``source``, from the record embedded in it.

    Example:
        ```python
        import fluxkit

        with fluxkit.Generator("fake") as gen:
            gen.generate("a red fox", seed=7).image.save("fox.png")
        again = fluxkit.replay("fox.png")                       # same backend, same seed
        bigger = fluxkit.replay("fox.png", steps=40, size=(1024, 768))
        ```

    Args:
        source: an image file saved by fluxkit.
        backend: a backend name to run on instead of the recorded one.
        generator: a ready generator (its backend wins over ``backend``).
        images: input images by content hash, for inputs whose recorded path or URL is gone.
        **overrides: request fields to change.
    """
    from fluxkit._generator import Generator

    chosen, params = replay_request(
        source,
        backend=generator.backend if generator is not None else backend,
        images=images,
        **overrides,
    )
    prompt = params.pop("prompt")
    if generator is not None:
        return generator.generate(prompt, **params)
    with Generator(chosen) as owned:
        return owned.generate(prompt, **params)


def _lora(entry: Mapping[str, Any]) -> Any:
    from fluxkit._types import LoRA

    return LoRA(
        entry["source"],
        scale=float(entry.get("scale", 1.0)),
        weight_name=entry.get("weight_name"),
        trigger_words=tuple(entry.get("trigger_words") or ()),
    )


def _input(name: str, entry: Mapping[str, Any], images: Mapping[str, Any]) -> Any:
    """The recorded input image: passed by hash, else its file (if unchanged), else its URL."""
    from fluxkit._images import InputImage

    digest = str(entry.get("sha256") or "")
    if digest in images:
        return images[digest]
    path = entry.get("path")
    if path and Path(path).is_file():
        candidate = InputImage.from_any(path, field=name)
        if candidate.sha256 == digest:
            return candidate
    if entry.get("url"):
        return entry["url"]
    where = f" (it was {path})" if path else ""
    raise InvalidRequestError(
        name,
        f"sha256:{digest[:16]}",
        f"the same image: pass {name}=PATH or images={{'{digest}': PATH}} "
        f"(CLI: --{name.replace('_', '-')} PATH)",
        reason=f"the recorded input is missing or changed{where}",
    )
