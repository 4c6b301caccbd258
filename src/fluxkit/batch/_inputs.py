"""Batch input: prompt files (JSONL, CSV) to jobs — one image each, with a fixed seed and a key.

A line is a prompt (a plain string in JSONL, or the ``prompt`` column in CSV) or any request
field (``{"prompt": ..., "seed": 7, "n": 4, "loras": [["hf://me/lora", 0.8]], ...}``); defaults
fill what a line leaves out. A line asking for ``n`` images becomes ``n`` jobs with seeds
``seed, seed+1, ...``, so each image is submitted, collected and saved on its own.

A job's key is the hash of its line's request (before a random seed is drawn) and its image
index: identical lines are one job unless deduplication is off, and a rerun of the same file
finds the same keys in the journal.
"""

from __future__ import annotations

import csv
import hashlib
import json
import secrets
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from fluxkit._exceptions import InvalidRequestError
from fluxkit._types import MAX_SEED

__all__ = ["expand", "load_requests"]

_NUMERIC = {"steps": int, "n": int, "seed": int, "width": int, "height": int}
_FLOATS = {"guidance", "strength", "reference_strength"}


def load_requests(path: str | Path) -> list[dict[str, Any]]:
    """The requests of a ``.jsonl`` or ``.csv`` prompt file, in order.

    Raises:
        InvalidRequestError: a line is not a prompt or a JSON object (the line is named).
    """
    path = Path(path)
    if not path.is_file():
        raise InvalidRequestError("requests", str(path), "an existing .jsonl or .csv file")
    if path.suffix.lower() == ".csv":
        return _csv(path)
    requests = []
    with path.open(encoding="utf-8") as handle:
        for number, raw in enumerate(handle, 1):
            text = raw.strip()
            if not text or text.startswith("#"):
                continue
            try:
                value = json.loads(text)
            except ValueError:
                value = text  # a bare prompt line
            if isinstance(value, str):
                value = {"prompt": value}
            if not isinstance(value, dict):
                raise InvalidRequestError(
                    f"line {number}", text[:60], "a prompt or a JSON object of request fields"
                )
            requests.append(value)
    return requests


def _csv(path: Path) -> list[dict[str, Any]]:
    requests = []
    with path.open(encoding="utf-8", newline="") as handle:
        for number, row in enumerate(csv.DictReader(handle), 2):
            request: dict[str, Any] = {}
            for name, value in row.items():
                if name is None or value is None or value == "":
                    continue
                name = name.strip()
                try:
                    if name in _NUMERIC:
                        request[name] = _NUMERIC[name](value)
                    elif name in _FLOATS:
                        request[name] = float(value)
                    elif name in ("loras", "extra"):
                        request[name] = json.loads(value)
                    else:
                        request[name] = value
                except ValueError as exc:
                    raise InvalidRequestError(f"line {number}: {name}", value, str(exc)) from exc
            if "prompt" not in request:
                raise InvalidRequestError(f"line {number}", dict(row), "a 'prompt' column")
            requests.append(request)
    return requests


def _canonical(request: Mapping[str, Any]) -> str:
    return json.dumps(request, sort_keys=True, separators=(",", ":"), default=str)


def expand(
    requests: Iterable[Mapping[str, Any] | str],
    defaults: Mapping[str, Any] | None = None,
    *,
    dedupe: bool = True,
) -> list[tuple[str, int, dict[str, Any]]]:
    """``(key, line, request)`` per image: ``n`` split into single images with fixed seeds.

    Example:
        ```python
        from fluxkit.batch import expand

        jobs = expand([{"prompt": "a fox", "n": 2, "seed": 7}, "a fox"], {"size": "square"})
        [(line, r["seed"]) for _, line, r in jobs][:2]    # [(1, 7), (1, 8)]
        ```
    """
    jobs: list[tuple[str, int, dict[str, Any]]] = []
    seen: dict[str, int] = {}
    for line, given in enumerate(requests, 1):
        request = {"prompt": given} if isinstance(given, str) else dict(given)
        merged = {**(defaults or {}), **request}
        if "prompt" not in merged or not isinstance(merged["prompt"], str):
            raise InvalidRequestError(f"line {line}: prompt", merged.get("prompt"), "a string")
        n = merged.pop("n", 1)
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise InvalidRequestError(f"line {line}: n", n, "an integer >= 1")
        identity = _canonical(merged)
        occurrence = seen.get(identity, 0)
        seen[identity] = occurrence + 1
        if dedupe and occurrence:
            continue  # an identical line: the same jobs
        base = hashlib.sha256(identity.encode()).hexdigest()
        if not dedupe:
            base = hashlib.sha256(f"{base}#{occurrence}".encode()).hexdigest()
        seed = merged.pop("seed", None)
        if seed is None:
            seed = secrets.randbelow(MAX_SEED + 1)  # kept in the journal: a resume reuses it
        for index in range(n):
            job = {**merged, "seed": (int(seed) + index) % (MAX_SEED + 1)}
            jobs.append((f"{base[:32]}-{index}", line, job))
    return jobs
