"""synth/planning/expand.py: leaves, quotas from weights, deterministic item and batch ids, seeds and template turns."""

from __future__ import annotations

import pytest

from synth.planning.expand import apportion, count_items, leaves, plan_batches, with_items, work_item
from synth.spec.file import validate_spec
from tests.conftest import base_spec

API_BASE = "http://127.0.0.1:9/v1"  # never contacted: expansion is pure
SHAS = {"a.j2": "sha-of-a", "b.j2": "sha-of-b", "c.j2": "sha-of-c"}  # expansion only copies shas into items


def make_spec(**overrides):
    spec = base_spec(API_BASE, templates=["a.j2"])
    spec.update(overrides)
    return validate_spec(spec)


def all_items(spec, batch_size=None):
    size = batch_size or spec.batch_size
    return [item for batch in plan_batches(spec, size) for item in with_items(spec, SHAS, batch).items]


def batch_ids(spec, batch_size=4):
    return [(batch.leaf.category, batch.batch_id) for batch in plan_batches(spec, batch_size)]


# --- leaves --------------------------------------------------------------------------------------------------------


def test_leaves_in_spec_order_with_quotas():
    spec = make_spec()
    assert [(leaf.path, leaf.quota) for leaf in leaves(spec)] == [
        (("science", "physics"), 4),
        (("science", "biology"), 3),
        (("cooking",), 3),
    ]
    assert count_items(spec) == 10


def test_weighted_leaves_get_shares_of_total_beside_fixed_quotas():
    spec = make_spec(topics={"a": {"weight": 2}, "b": {"weight": 1}, "c": 5}, total=9)
    assert [(leaf.category, leaf.quota) for leaf in leaves(spec)] == [("a", 6), ("b", 3), ("c", 5)]
    assert count_items(spec) == 14


# --- apportion -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("total", "weights", "expected"),
    [
        (10, [1, 1], [5, 5]),
        (10, [3, 1], [8, 2]),  # 7.5 / 2.5: the tie goes to the earlier leaf
        (10, [1, 3], [3, 7]),  # 2.5 / 7.5: again the earlier leaf
        (10, [1, 1, 1], [4, 3, 3]),
        (7, [1, 1, 1, 1], [2, 2, 2, 1]),
        (1, [1, 1, 1], [1, 0, 0]),
        (0, [1, 2], [0, 0]),
        (100, [0.5, 0.25, 0.25], [50, 25, 25]),
        (10, [0.6, 0.3, 0.1], [6, 3, 1]),
        (11, [5, 3, 2], [6, 3, 2]),  # 5.5 / 3.3 / 2.2: largest remainder is the first
        (5, [1, 2, 3, 4], [1, 1, 1, 2]),  # 0.5 / 1.0 / 1.5 / 2.0: a and c tie on .5 for the one left; a gets it
    ],
)
def test_apportion_largest_remainder(total, weights, expected):
    names = [(f"leaf{i}",) for i in range(len(weights))]
    shares = apportion(total, dict(zip(names, weights, strict=True)))
    assert [shares[name] for name in names] == expected


def test_apportion_fixed_tie_between_first_and_third():
    # 10 * (1, 2, 1) / 4 = 2.5, 5, 2.5: one item left over, and a ties with c, so a gets it
    shares = apportion(10, {("a",): 1, ("b",): 2, ("c",): 1})
    assert shares == {("a",): 3, ("b",): 5, ("c",): 2}


@pytest.mark.parametrize("total", [0, 1, 2, 3, 7, 10, 99, 1000, 12_345])
@pytest.mark.parametrize("weights", [[1], [1, 1, 1], [0.1, 0.2, 0.7], [3, 5, 7, 11], [1e-3, 1, 1000]])
def test_apportion_sums_exactly_to_total(total, weights):
    shares = apportion(total, {(str(i),): w for i, w in enumerate(weights)})
    assert sum(shares.values()) == total
    assert all(share >= 0 for share in shares.values())


def test_apportion_without_weights_is_empty():
    assert apportion(10, {}) == {}


def test_apportion_decimal_weights_tie_goes_to_earlier_leaf():
    # in binary floats 2 * 0.3 / 0.4 is 1.4999999999999998, which once handed the 1.5 / 0.5 tie to b
    assert apportion(2, {("a",): 0.3, ("b",): 0.1}) == {("a",): 2, ("b",): 0}


def test_apportion_huge_weights_do_not_overflow():
    # the sum of two 1e308 weights is inf in floats, which once made every share NaN
    assert apportion(10, {("a",): 1e308, ("b",): 1e308}) == {("a",): 5, ("b",): 5}


# --- item ids ------------------------------------------------------------------------------------------------------


def test_same_spec_gives_same_item_ids():
    assert [item.item_id for item in all_items(make_spec())] == [item.item_id for item in all_items(make_spec())]


def test_item_ids_are_distinct():
    ids = [item.item_id for item in all_items(make_spec())]
    assert len(ids) == 10
    assert len(set(ids)) == 10


def test_item_ids_do_not_depend_on_batch_size():
    spec = make_spec()
    assert [i.item_id for i in all_items(spec, batch_size=1)] == [i.item_id for i in all_items(spec, batch_size=3)]


def test_item_ids_change_with_template_source():
    spec = make_spec()
    leaf = leaves(spec)[0]
    first = work_item(spec, {"a.j2": "sha-one"}, leaf, 0)
    edited = work_item(spec, {"a.j2": "sha-two"}, leaf, 0)
    assert first.item_id != edited.item_id
    assert edited.template_sha256 == "sha-two"


def test_item_ids_survive_execution_changes():
    before = [item.item_id for item in all_items(make_spec())]
    after = [
        item.item_id for item in all_items(make_spec(concurrency=1, retry={"max_attempts": 2}, output={"dir": "x"}))
    ]
    assert after == before


def test_raising_a_quota_keeps_existing_item_ids():
    small = make_spec(topics={"python": 5, "rust": 2})
    large = make_spec(topics={"python": 9, "rust": 2})
    small_ids = {(i.category, i.index): i.item_id for i in all_items(small)}
    large_ids = {(i.category, i.index): i.item_id for i in all_items(large)}
    assert {key: large_ids[key] for key in small_ids} == small_ids
    assert len(large_ids) == 11


def test_raising_total_keeps_existing_item_ids_of_weighted_leaves():
    small = make_spec(topics={"python": {"weight": 1}, "rust": {"weight": 1}}, total=4)
    large = make_spec(topics={"python": {"weight": 1}, "rust": {"weight": 1}}, total=10)
    small_ids = {(i.category, i.index): i.item_id for i in all_items(small)}
    large_ids = {(i.category, i.index): i.item_id for i in all_items(large)}
    assert {key: large_ids[key] for key in small_ids} == small_ids


# --- templates -----------------------------------------------------------------------------------------------------


def test_templates_take_turns_within_each_leaf():
    spec = make_spec(templates=["a.j2", "b.j2", "c.j2"], topics={"python": 5, "rust": 2})
    assert [(item.category, item.index, item.template) for item in all_items(spec)] == [
        (("python",), 0, "a.j2"),
        (("python",), 1, "b.j2"),
        (("python",), 2, "c.j2"),
        (("python",), 3, "a.j2"),
        (("python",), 4, "b.j2"),
        (("rust",), 0, "a.j2"),
        (("rust",), 1, "b.j2"),
    ]


def test_work_item_records_template_sha_and_task():
    spec = make_spec(templates=["a.j2", "b.j2"])
    item = work_item(spec, SHAS, leaves(spec)[0], 1)
    assert item.template == "b.j2"
    assert item.template_sha256 == "sha-of-b"
    assert item.task == "instructions"


def test_work_item_vars_describe_the_topic():
    spec = make_spec(
        vars={"audience": "students"},
        topics={"code": {"description": "programming", "python": {"quota": 2, "vars": {"lang": "py"}}}},
    )
    item = work_item(spec, SHAS, leaves(spec)[0], 1)
    assert dict(item.vars) == {
        "audience": "students",
        "lang": "py",
        "topic": "python",
        "category": "code/python",
        "category_path": ["code", "python"],
        "description": "programming",
        "index": 1,
        "seed": item.seed,
    }


# --- seeds ---------------------------------------------------------------------------------------------------------


def test_seeds_differ_across_items():
    seeds = [item.seed for item in all_items(make_spec())]
    assert len(set(seeds)) == len(seeds) == 10


def test_seeds_are_stable_across_runs():
    assert [i.seed for i in all_items(make_spec())] == [i.seed for i in all_items(make_spec())]


def test_seeds_are_31_bit_non_negative():
    assert all(0 <= item.seed < 2**31 for item in all_items(make_spec()))


def test_seeds_follow_the_base_seed():
    one = [i.seed for i in all_items(make_spec(params={"seed": 1}))]
    two = [i.seed for i in all_items(make_spec(params={"seed": 2}))]
    assert all(a != b for a, b in zip(one, two, strict=True))


# --- batches -------------------------------------------------------------------------------------------------------


def test_batches_split_each_leaf_by_batch_size():
    spec = make_spec(topics={"python": 10, "rust": 3})
    assert [(b.leaf.category, b.start, b.stop, b.size) for b in plan_batches(spec, 4)] == [
        ("python", 0, 4, 4),
        ("python", 4, 8, 4),
        ("python", 8, 10, 2),
        ("rust", 0, 3, 3),
    ]


def test_batch_never_spans_two_leaves():
    spec = make_spec(topics={"python": 3, "rust": 3})
    assert [b.size for b in plan_batches(spec, 4)] == [3, 3]


def test_leaf_with_zero_quota_has_no_batches():
    spec = make_spec(topics={"python": 0, "rust": 2})
    assert [b.leaf.category for b in plan_batches(spec, 4)] == ["rust"]


def test_batches_are_lazy_until_items_are_asked_for():
    spec = make_spec(topics={"python": 3})
    (batch,) = plan_batches(spec, 4)
    assert batch.items == ()
    assert [item.index for item in with_items(spec, SHAS, batch).items] == [0, 1, 2]


def test_same_spec_gives_same_batch_ids():
    assert batch_ids(make_spec()) == batch_ids(make_spec())


def test_batch_ids_are_distinct():
    ids = [batch_id for _, batch_id in batch_ids(make_spec(topics={"python": 10, "rust": 10}))]
    assert len(set(ids)) == len(ids) == 6


def test_batch_ids_change_with_batch_size():
    spec = make_spec(topics={"python": 8})
    assert {b for _, b in batch_ids(spec, 4)}.isdisjoint({b for _, b in batch_ids(spec, 2)})


def test_raising_a_quota_grows_the_last_batch_under_its_id():
    small = list(plan_batches(make_spec(topics={"python": 6, "rust": 2}), 4))
    large = list(plan_batches(make_spec(topics={"python": 7, "rust": 2}), 4))
    assert [(b.leaf.category, b.batch_id, b.size) for b in small] == [
        ("python", small[0].batch_id, 4),
        ("python", small[1].batch_id, 2),
        ("rust", small[2].batch_id, 2),
    ]
    assert [(b.leaf.category, b.batch_id, b.size) for b in large] == [
        ("python", small[0].batch_id, 4),
        ("python", small[1].batch_id, 3),
        ("rust", small[2].batch_id, 2),
    ]


def test_raising_a_quota_past_a_batch_adds_a_batch_and_keeps_the_others():
    small = batch_ids(make_spec(topics={"python": 4}))
    large = batch_ids(make_spec(topics={"python": 9}))
    assert large[: len(small)] == small
    assert len(large) == 3


def test_grown_batch_keeps_its_existing_items():
    small_spec, large_spec = make_spec(topics={"python": 6}), make_spec(topics={"python": 7})
    small_last = with_items(small_spec, SHAS, list(plan_batches(small_spec, 4))[-1])
    large_last = with_items(large_spec, SHAS, list(plan_batches(large_spec, 4))[-1])
    assert [i.item_id for i in large_last.items][:2] == [i.item_id for i in small_last.items]
    assert [i.index for i in large_last.items] == [4, 5, 6]
