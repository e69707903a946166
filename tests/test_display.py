"""The CLI's summary: every outcome per category and reason, and generation and verification spend apart."""

from __future__ import annotations

from rich.console import Console

from synth.cli.display import summary_table
from synth.store.marker import BatchMarker, Counts, StageUsage
from synth.store.totals import Totals


def marker(category: str, accepted: int, rejected: dict[str, int], verification_cost: float) -> BatchMarker:
    return BatchMarker(
        batch_id=f"b-{category}",
        category=category.split("/"),
        item_ids=[f"i{n}" for n in range(accepted + sum(rejected.values()))],
        counts=Counts(accepted=accepted, rejected=sum(rejected.values())),
        rejected_by_reason=rejected,
        usage=StageUsage(calls=4, prompt_tokens=100, completion_tokens=50, cost_usd=0.02),
        verification_usage=StageUsage(calls=3, cost_usd=verification_cost),
    )


def rendered(totals: Totals) -> str:
    console = Console(width=120, record=True)
    console.print(summary_table(totals))
    return console.export_text()


def test_totals_count_per_category_and_reason_and_keep_spend_apart():
    totals = Totals()
    totals.add(marker("science/physics", 3, {"too_short": 1}, 0.01))
    totals.add(marker("writing", 1, {"judge_score_low": 2}, 0.03))
    assert totals.by_category["science/physics"].rejected_by_reason == {"too_short": 1}
    assert totals.by_category["writing"].accepted == 1
    assert round(totals.generation.cost_usd, 6) == 0.04
    assert round(totals.verification.cost_usd, 6) == 0.04
    assert round(totals.cost_per_accepted_usd or 0, 6) == 0.02


def test_the_summary_shows_categories_and_both_spends():
    totals = Totals()
    totals.add(marker("science/physics", 3, {"too_short": 1}, 0.01))
    totals.add(marker("writing", 1, {"judge_score_low": 2}, 0.03))
    text = rendered(totals)
    assert "science/physics  (mostly too_short)" in text
    assert "3 / 1 / 0" in text
    assert "cost: generation" in text
    assert "$0.0400" in text
    assert "cost: verification" in text
    assert "(6 calls)" in text
    assert "cost per accepted sample" in text
    assert "$0.02000" in text
