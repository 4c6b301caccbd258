"""Prices per (backend, model) and cost estimates: what a request will cost before it is sent.

The table ships as data (``prices.json`` beside this module): each entry has a unit (``image``,
``megapixel``, ``step``, ``gpu_second``, ``run``), its public source, the date it was checked
and how sure that figure is. Users override any entry (``Generator(prices=...)``,
`PriceTable.load`). Estimates are pure arithmetic; nothing here does I/O except reading
the packaged table once.

Megapixels are billed as fal does: per image, rounded up to whole megapixels of 1024 x 1024.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any, Literal

from fluxkit._exceptions import InvalidRequestError

__all__ = ["CostEstimate", "Price", "PriceTable", "Unit"]

Unit = Literal["image", "megapixel", "step", "gpu_second", "run"]
_UNITS = ("image", "megapixel", "step", "gpu_second", "run")
_MEGAPIXEL = 1024 * 1024


@dataclass(frozen=True)
class Price:
    """One list price.

    Attributes:
        usd: dollars per ``unit``.
        unit: ``image``, ``megapixel`` (rounded up per image), ``step``, ``gpu_second``, ``run``.
        source: where the figure comes from.
        checked: the date it was checked (ISO).
        confidence: ``provider page``, ``secondary``, ``unverified`` or ``user``.
        seconds_per_image: for ``gpu_second`` prices, the run time assumed per image when
            estimating before a run (the actual cost uses the time the provider reports).
    """

    usd: float
    unit: Unit
    source: str = ""
    checked: str = ""
    confidence: str = "user"
    seconds_per_image: float | None = None

    def __post_init__(self) -> None:
        if self.unit not in _UNITS:
            raise InvalidRequestError("price.unit", self.unit, " | ".join(_UNITS))
        if not (isinstance(self.usd, int | float) and math.isfinite(self.usd) and self.usd >= 0):
            raise InvalidRequestError("price.usd", self.usd, "a finite number >= 0")


@dataclass(frozen=True)
class CostEstimate:
    """What a request costs, in US dollars.

    Attributes:
        usd: the amount; None when no price is known for the model (or the unit needs a run
            time no one reported).
        basis: ``"estimated"`` (from the request, before the call, or from list prices) or
            ``"reported"`` (from what the provider reported: output sizes, run seconds).
        price: the price used.
        detail: how the amount was computed, e.g. ``"2 images x 1 MP x $0.025/MP"``.
    """

    usd: float | None
    basis: Literal["estimated", "reported"] = "estimated"
    price: Price | None = None
    detail: str = ""

    def __str__(self) -> str:
        if self.usd is None:
            return f"unknown ({self.detail})"
        return f"${self.usd:.4f} {self.basis} ({self.detail})"


@dataclass(frozen=True)
class PriceTable:
    """Prices keyed ``"backend:model"``, with ``"backend:*"`` as a backend's fallback.

    Example:
        ```python
        from fluxkit.batch import PriceTable

        table = PriceTable.default().with_overrides({"fal:fal-ai/flux/dev": 0.02})
        table.estimate("fal", "fal-ai/flux/dev", width=1024, height=1024, n=2).usd   # 0.04
        ```
    """

    entries: Mapping[str, Price] = field(default_factory=dict)

    @classmethod
    def default(cls) -> PriceTable:
        """The table shipped with fluxkit (``prices.json``)."""
        return _default_table()

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> PriceTable:
        """The default table with the entries of a JSON file of the same shape on top."""
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
        return cls.default().with_overrides(_parse(data, confidence="user"))

    def with_overrides(
        self, overrides: Mapping[str, Price | float | Mapping[str, Any]]
    ) -> PriceTable:
        """A copy with some entries replaced: a `Price`, a dict, or a bare number (kept
        in the existing entry's unit, ``image`` for a new one)."""
        merged = dict(self.entries)
        for key, value in overrides.items():
            if ":" not in key:
                raise InvalidRequestError("prices", key, "keys like 'fal:fal-ai/flux/dev'")
            if isinstance(value, Price):
                merged[key] = value
            elif isinstance(value, int | float) and not isinstance(value, bool):
                old = merged.get(key)
                merged[key] = Price(float(value), old.unit if old else "image", "override")
            elif isinstance(value, Mapping):
                merged[key] = _price(value, confidence="user")
            else:
                raise InvalidRequestError(f"prices[{key!r}]", value, "a Price, a dict or a number")
        return PriceTable(merged)

    def price(self, backend: str, model: str) -> Price | None:
        """The price of ``model`` on ``backend``: the exact entry, else the backend's ``*``."""
        return self.entries.get(f"{backend}:{model}") or self.entries.get(f"{backend}:*")

    def estimate(
        self,
        backend: str,
        model: str,
        *,
        width: int,
        height: int,
        n: int = 1,
        steps: int | None = None,
    ) -> CostEstimate:
        """The cost of ``n`` images of ``width`` x ``height`` before the call."""
        price = self.price(backend, model)
        if price is None:
            return CostEstimate(None, "estimated", None, f"no price for {backend}:{model}")
        return _cost(price, [(width, height)] * n, steps=steps, seconds=None, basis="estimated")

    def actual(
        self,
        backend: str,
        model: str,
        *,
        sizes: Iterable[tuple[int, int]],
        steps: int | None = None,
        seconds: float | None = None,
    ) -> CostEstimate:
        """The cost of what a provider returned: image sizes, and run seconds when reported.

        ``reported`` where the price's unit is measured by what came back (images, their
        megapixels, the reported run time); ``estimated`` where it rests on assumptions.
        """
        price = self.price(backend, model)
        if price is None:
            return CostEstimate(None, "reported", None, f"no price for {backend}:{model}")
        return _cost(price, list(sizes), steps=steps, seconds=seconds, basis="reported")


def _cost(
    price: Price,
    sizes: list[tuple[int, int]],
    *,
    steps: int | None,
    seconds: float | None,
    basis: Literal["estimated", "reported"],
) -> CostEstimate:
    count = len(sizes)
    if price.unit == "image":
        usd, detail = count * price.usd, f"{count} image(s) x ${price.usd:g}"
    elif price.unit == "megapixel":
        megapixels = sum(max(1, math.ceil(w * h / _MEGAPIXEL)) for w, h in sizes)
        usd, detail = megapixels * price.usd, f"{megapixels} MP x ${price.usd:g}/MP"
    elif price.unit == "step":
        total = count * (steps or 0)
        usd, detail = total * price.usd, f"{total} step(s) x ${price.usd:g}"
    elif price.unit == "run":
        usd, detail = price.usd, f"1 run x ${price.usd:g}"
    else:  # gpu_second
        if seconds is None:
            if price.seconds_per_image is None:
                return CostEstimate(
                    None,
                    basis,
                    price,
                    f"billed per GPU-second (${price.usd:g}/s): unknown before the run",
                )
            seconds, basis = count * price.seconds_per_image, "estimated"
        usd, detail = seconds * price.usd, f"{seconds:.1f} GPU-s x ${price.usd:g}/s"
    source = f"; {price.source}, {price.checked}" if price.source else ""
    return CostEstimate(round(usd, 6), basis, price, detail + source)


def _price(value: Mapping[str, Any], *, confidence: str) -> Price:
    try:
        return Price(
            usd=float(value["usd"]),
            unit=value.get("unit", "image"),
            source=str(value.get("source", "")),
            checked=str(value.get("checked", "")),
            confidence=str(value.get("confidence", confidence)),
            seconds_per_image=(
                float(value["seconds_per_image"]) if "seconds_per_image" in value else None
            ),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidRequestError("prices", dict(value), "{usd, unit, source?, checked?}") from exc


def _parse(data: Any, *, confidence: str) -> dict[str, Price]:
    if not isinstance(data, Mapping):
        raise InvalidRequestError("prices", type(data).__name__, "a JSON object")
    return {
        key: _price(value, confidence=confidence)
        for key, value in data.items()
        if not key.startswith("_")
    }


@cache
def _default_table() -> PriceTable:
    text = resources.files("fluxkit.batch").joinpath("prices.json").read_text(encoding="utf-8")
    return PriceTable(_parse(json.loads(text), confidence="unverified"))
