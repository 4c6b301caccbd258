"""What a training costs: fal per step, Replicate per H100-second, local nothing (pure)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fluxkit.batch._pricing import CostEstimate, PriceTable

__all__ = ["SECONDS_PER_STEP", "SETUP_SECONDS", "actual_cost", "estimate_training"]

SECONDS_PER_STEP = 1.05
"""Replicate's ostris trainer on an H100 at multi-resolution 512-1024, rank 16, batch 1: the
``1.05s/it`` of the log line quoted in training-lora.md §4.2 (third-party sample; measure)."""
SETUP_SECONDS = 180.0
"""Weights pull, captioning and latent caching before step 1 (derived estimate, unverified)."""


def estimate_training(
    backend: str, model: str, steps: int, *, prices: PriceTable | None = None
) -> CostEstimate:
    """The list price of a ``steps``-step training, before it is sent.

    Example:
        ```python
        from fluxkit.training import estimate_training

        estimate_training("fal", "fal-ai/flux-lora-fast-training", 1000).usd   # 2.0
        ```
    """
    from fluxkit.batch._pricing import CostEstimate, PriceTable

    if backend == "local":
        return CostEstimate(0.0, "estimated", None, "local training: no provider bill")
    table = prices or PriceTable.default()
    price = table.price(backend, model)
    if price is None:
        return CostEstimate(None, "estimated", None, f"no price for {backend}:{model}")
    source = f"; {price.source}, {price.checked}" if price.source else ""
    if price.unit == "step":
        return CostEstimate(
            round(steps * price.usd, 6),
            "estimated",
            price,
            f"{steps} step(s) x ${price.usd:g}{source}",
        )
    if price.unit == "run":
        return CostEstimate(price.usd, "estimated", price, f"1 run x ${price.usd:g}{source}")
    if price.unit == "gpu_second":
        seconds = SETUP_SECONDS + steps * SECONDS_PER_STEP
        return CostEstimate(
            round(seconds * price.usd, 6),
            "estimated",
            price,
            f"~{seconds:.0f} GPU-s ({steps} steps x {SECONDS_PER_STEP} s + "
            f"{SETUP_SECONDS:.0f} s setup) x ${price.usd:g}/s{source}",
        )
    return CostEstimate(None, "estimated", price, f"unit {price.unit} does not price trainings")


def actual_cost(
    backend: str,
    model: str,
    steps: int,
    *,
    run_seconds: float | None,
    prices: PriceTable | None = None,
) -> CostEstimate:
    """The cost as far as it is known: reported GPU seconds where the provider gave them."""
    from fluxkit.batch._pricing import CostEstimate, PriceTable

    table = prices or PriceTable.default()
    price = table.price(backend, model) if backend != "local" else None
    if price is not None and price.unit == "gpu_second" and run_seconds is not None:
        return CostEstimate(
            round(run_seconds * price.usd, 6),
            "reported",
            price,
            f"{run_seconds:.1f} GPU-s x ${price.usd:g}/s",
        )
    return estimate_training(backend, model, steps, prices=prices)
