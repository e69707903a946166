"""Top-ups, the parts without a cluster: sizing a round from deficits and per-template yields, the cost cap,
and the round as a job (only thin categories, fresh ids that never collide, a seed of its own)."""

from __future__ import annotations

import pytest

from synth.planning.job import iter_batches
from synth.planning.prepare import prepare
from synth.spec.dataset import DatasetRef
from synth.spec.file import LoadedSpec, validate_spec
from synth.topups.coverage import CategoryCoverage, Coverage, Yield
from synth.topups.rounds import round_spec
from synth.topups.sizing import MIN_RATE, cap, items_for, shrunk_rate, size, template_rates

TEMPLATES = ["instructions/basic.j2", "instructions/howto.j2"]


def test_unseen_categories_and_templates_borrow_the_prior_then_the_category_rate():
    unseen = CategoryCoverage("new")
    assert template_rates(unseen, TEMPLATES, prior=0.5) == [0.5, 0.5]
    seen = CategoryCoverage("old", by_template={"instructions/basic.j2": Yield(items=8, accepted=8)})
    basic, howto = template_rates(seen, TEMPLATES, prior=0.5)
    category_rate = (8 + 2 * 0.5) / (8 + 2)
    assert basic == pytest.approx((8 + 2 * category_rate) / (8 + 2))
    assert howto == pytest.approx(category_rate)  # never tried in this category: the category's own rate


def test_a_category_that_never_yields_is_floored_not_infinite():
    assert shrunk_rate(Yield(items=1000, accepted=0), prior=0.5) == MIN_RATE
    assert items_for(3, [MIN_RATE], margin=0) == 150


@pytest.mark.parametrize(
    ("deficit", "rates", "margin", "items"),
    [
        (0, [0.5], 0.1, 0),
        (5, [1.0], 0.0, 5),
        (5, [0.75, 0.25], 0.0, 10),  # templates alternate: each pair yields one record
        (5, [0.75, 0.25], 0.1, 11),  # 5.5 needed: the 11th item (first template again) brings 5.75
        (5, [0.25, 0.75], 0.1, 12),
        (1000, [0.5, 0.5], 0.0, 2000),
    ],
)
def test_a_round_is_the_fewest_items_whose_expected_yield_covers_the_deficit(deficit, rates, margin, items):
    assert items_for(deficit, rates, margin) == items


def coverage(**categories):
    return Coverage({name: CategoryCoverage(name, *counts) for name, counts in categories.items()})


def test_size_only_plans_the_categories_below_target():
    found = coverage(full=(10, 12), thin=(10, 4))
    settings = DatasetRef(name="d", targets={"full": 10, "thin": 10}, margin=0.0, prior_acceptance=1.0)
    plan = size(found, ["t.j2"], settings, cost_per_item_usd=None)
    assert plan.quotas == {"thin": 6}
    assert plan.estimated_cost_usd is None
    assert not plan.capped


def test_the_cost_cap_scales_every_category_down_alike():
    found = coverage(a=(100, 0), b=(50, 0))
    settings = DatasetRef(name="d", targets={"a": 100, "b": 50}, margin=0.0, prior_acceptance=1.0, max_cost_usd=0.75)
    plan = size(found, ["t.j2"], settings, cost_per_item_usd=0.01)
    assert plan.capped
    assert plan.quotas == {"a": 50, "b": 25}
    assert plan.estimated_cost_usd == pytest.approx(0.75)
    assert cap(plan, 0.001).quotas == {}
    uncapped = size(found, ["t.j2"], settings.model_copy(update={"max_cost_usd": 1.5}), cost_per_item_usd=0.01)
    assert not uncapped.capped
    assert uncapped.quotas == {"a": 100, "b": 50}


def base_spec(**overrides):
    raw = {
        "name": "kb",
        "model": "openai/gpt-4o-mini",
        "params": {"seed": 3},
        "task": "instructions",
        "templates": TEMPLATES,
        "vars": {"audience": "nurse"},
        "topics": {
            "science": {"description": "lab work", "vars": {"level": "intro"}, "physics": 4, "biology": 4},
            "cooking": 4,
        },
        "dataset": {"name": "kb", "targets": {"science/physics": 10}},
    }
    return validate_spec({**raw, **overrides})


def item_ids(spec):
    job = prepare(LoadedSpec(spec, None))
    return [item.item_id for batch in iter_batches(job, 4) for item in batch.items]


def test_a_round_keeps_only_the_thin_categories_with_what_they_inherit():
    spec = round_spec(base_spec(), {"science/physics": 6}, 1)
    roots = spec.topic_roots()
    assert list(roots) == ["science"]
    science = roots["science"]
    assert (science.description, science.vars) == ("lab work", {"level": "intro"})
    assert science.children()["physics"].quota == 6
    assert set(science.children()) == {"physics"}
    assert spec.topup is not None
    assert (spec.topup.dataset, spec.topup.round) == ("kb", 1)
    assert spec.vars == {"audience": "nurse"}
    assert spec.params.seed != base_spec().params.seed


def test_round_items_never_share_an_id_with_the_base_run_or_another_round():
    base = item_ids(base_spec())
    first = item_ids(round_spec(base_spec(), {"science/physics": 4, "cooking": 4}, 1))
    second = item_ids(round_spec(base_spec(), {"science/physics": 4, "cooking": 4}, 2))
    same_round_again = item_ids(round_spec(base_spec(), {"science/physics": 4, "cooking": 4}, 1))
    assert len(set(base) | set(first) | set(second)) == len(base) + len(first) + len(second)
    assert first == same_round_again  # a round resubmitted after a crash rewrites its own items


def test_naming_a_dataset_leaves_a_specs_ids_as_they_were():
    with_dataset = base_spec()
    without = base_spec(dataset=None)
    assert with_dataset.spec_id == without.spec_id
    assert item_ids(with_dataset) == item_ids(without)
