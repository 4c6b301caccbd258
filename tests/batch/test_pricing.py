"""Prices, estimates before any call, budgets that refuse before spending, costs on results."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import fluxkit
from fluxkit.batch import Price, PriceTable
from fluxkit.testing import FalEmulator, ReplicateEmulator


def test_every_shipped_price_names_its_source_and_date() -> None:
    table = PriceTable.default()
    assert table.entries
    for key, price in table.entries.items():
        assert ":" in key and price.source and price.checked == "2026-12-03", key
        assert price.confidence in ("provider page", "secondary", "unverified"), key


def test_megapixels_round_up_per_image_as_fal_bills() -> None:
    table = PriceTable.default()
    one = table.estimate("fal", "fal-ai/flux/dev", width=1024, height=1024)
    assert one.usd == pytest.approx(0.025) and one.basis == "estimated"
    wide = table.estimate("fal", "fal-ai/flux/dev", width=1024, height=1536, n=2)
    assert wide.usd == pytest.approx(4 * 0.025)  # 1.5 MP rounds up to 2, twice
    small = table.estimate("fal", "fal-ai/flux/dev", width=512, height=512)
    assert small.usd == pytest.approx(0.025)  # at least one megapixel


def test_unknown_models_have_no_price_and_overrides_win(tmp_path: Path) -> None:
    table = PriceTable.default()
    assert table.estimate("fal", "someone/else", width=1024, height=1024).usd is None
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"fal:someone/else": {"usd": 0.5, "unit": "image"}}))
    loaded = PriceTable.load(path)
    assert loaded.estimate("fal", "someone/else", width=8, height=8, n=2).usd == 1.0
    assert loaded.price("fal", "someone/else").confidence == "user"  # type: ignore[union-attr]
    cheaper = table.with_overrides({"fal:fal-ai/flux/dev": 0.01})
    assert cheaper.estimate("fal", "fal-ai/flux/dev", width=1024, height=1024).usd == 0.01


def test_gpu_seconds_use_reported_time_when_known() -> None:
    table = PriceTable({"runpod:*": Price(0.001, "gpu_second", seconds_per_image=5.0)})
    before = table.estimate("runpod", "x", width=1024, height=1024, n=2)
    assert before.usd == pytest.approx(0.01) and before.basis == "estimated"
    after = table.actual("runpod", "x", sizes=[(1024, 1024)], seconds=3.0)
    assert after.usd == pytest.approx(0.003) and after.basis == "reported"


def test_bad_prices_are_typed_errors() -> None:
    with pytest.raises(fluxkit.InvalidRequestError):
        Price(-1, "image")
    with pytest.raises(fluxkit.InvalidRequestError):
        Price(1, "bananas")  # type: ignore[arg-type]
    with pytest.raises(fluxkit.InvalidRequestError):
        PriceTable.default().with_overrides({"no-colon": 1.0})


def test_estimate_cost_on_a_generator_sends_nothing() -> None:
    emu = FalEmulator(api_key="k")
    with emu.generator() as gen:
        estimate = gen.estimate_cost("a fox", size=(1024, 1024), n=4)
    assert estimate.usd == pytest.approx(0.1) and "fal.ai" in estimate.detail
    assert emu.log == []


def test_max_cost_refuses_before_anything_is_sent() -> None:
    emu = FalEmulator(api_key="k")
    with emu.generator() as gen, pytest.raises(fluxkit.BudgetExceeded) as caught:
        gen.generate("a fox", size=(1024, 1024), n=4, max_cost=0.05)
    assert caught.value.estimate == pytest.approx(0.1) and caught.value.limit == 0.05
    assert emu.log == []


def test_an_unknown_price_under_a_budget_is_refused() -> None:
    emu = FalEmulator(api_key="k")
    with emu.generator() as gen, pytest.raises(fluxkit.BudgetExceeded, match="unknown"):
        gen.generate("a fox", model="someone/flux-thing", max_cost=1.0)
    assert emu.log == []


def test_a_session_budget_counts_actual_costs_and_stops_before_overspending() -> None:
    emu = ReplicateEmulator(api_key="k")
    emu.script.run_seconds = 0.01
    with emu.generator(max_cost=0.06, model="flux-dev") as gen:
        first = gen.generate("a fox", size=(512, 512))
        assert first.cost is not None and first.cost.usd == pytest.approx(0.025)
        gen.generate("a fox", size=(512, 512))
        assert gen.spent == pytest.approx(0.05)
        with pytest.raises(fluxkit.BudgetExceeded) as caught:
            gen.generate("a fox", size=(512, 512))
    assert caught.value.spent == pytest.approx(0.05)
    assert len(emu.predictions) == 2


def test_failed_calls_free_their_reservation() -> None:
    emu = FalEmulator(api_key="k")
    emu.script.fail_jobs(1)
    with emu.generator(max_cost=0.03) as gen:
        with pytest.raises(fluxkit.JobFailedError):
            gen.generate("a fox", size=(1024, 1024))
        assert gen.spent == 0.0
        gen.generate("a fox", size=(1024, 1024))  # the budget is still whole
        assert gen.spent == pytest.approx(0.025)


def test_results_carry_their_cost() -> None:
    emu = FalEmulator(api_key="k")
    with emu.generator() as gen:
        result = gen.generate("a fox", size=(1024, 768), n=2)
    assert result.cost is not None and result.cost.usd == pytest.approx(0.05)
    assert result.cost.basis == "reported"  # from the sizes fal returned
    with fluxkit.Generator("fake") as gen:
        assert gen.generate("a fox").cost.usd == 0.0  # type: ignore[union-attr]


def test_budgets_must_be_numbers() -> None:
    with pytest.raises(fluxkit.InvalidRequestError, match="max_cost"):
        fluxkit.Generator("fake", max_cost=-1)
    with fluxkit.Generator("fake") as gen, pytest.raises(fluxkit.InvalidRequestError):
        gen.generate("a fox", max_cost="lots")  # type: ignore[arg-type]
