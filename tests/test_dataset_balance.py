"""synth dataset balance: accepted records per category against targets (the specs' quotas, a spec's
dataset.targets, or a --targets file), what a cap leaves out, and the top-up each thin category needs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from synth.cli import main
from synth.dataset.balance import MARGIN, balance_runs
from synth.errors import UserError
from synth.records import Verdict
from synth.testing.records import failure, new_run, record, run_spec, write_records
from tests.dataset_runs import instructions_sample

QUOTAS = {"cooking/soups": 10, "cooking/baking": 4, "travel": 6}


@pytest.fixture
def run(tmp_path: Path) -> Path:
    """soups: 6 accepted of 8 items tried (2 rejected), 1 failed; baking: 4 of 4; travel: 9 (over its quota)."""
    rows = [record("instructions", instructions_sample(i, "soups"), "cooking/soups", i) for i in range(6)]
    rejected = Verdict(verifier="length", version="1", passed=False, reason="too_short")
    rows += [record("instructions", instructions_sample(i, "soups"), "cooking/soups", i, status="rejected",
                    reason="too_short", verdicts=[rejected]) for i in range(6, 8)]  # fmt: skip
    rows += [record("instructions", instructions_sample(i, "baking"), "cooking/baking", i) for i in range(4)]
    rows += [record("instructions", instructions_sample(i, "travel"), "travel", i) for i in range(9)]
    rows.sort(key=lambda r: r.lineage.category)
    write_records(new_run(tmp_path / "run", run_spec("instructions", QUOTAS)), rows, 4, [failure("cooking/soups", "x")])
    return tmp_path / "run"


def test_balance_counts_accepted_records_against_the_specs_quotas(run, tmp_path):
    report = balance_runs([run], tmp_path, cap=5)
    rows = {
        c.category: (c.target, c.accepted, c.items, c.deficit, c.surplus, report.capped(c)) for c in report.categories
    }
    assert rows == {
        "cooking/baking": (4, 4, 4, 0, 0, 0),
        "cooking/soups": (10, 6, 9, 4, 0, 1),
        "travel": (6, 9, 9, 0, 3, 4),
    }
    assert report.targets_from == "the specs' quotas"


def test_a_thin_category_gets_a_top_up_sized_by_its_yield(run, tmp_path):
    report = balance_runs([run], tmp_path)
    (line,) = report.topups
    assert (line.category, line.deficit) == ("cooking/soups", 4)
    assert 0.6 < line.rate < 6 / 9  # 6 accepted of 9 items tried, pulled toward the prior of 0.5
    goal = 4 * (1 + MARGIN)
    assert line.items * line.rate >= goal > (line.items - 1) * line.rate  # the fewest items that reach the deficit


def test_targets_from_a_file_replace_the_specs(run, tmp_path):
    targets = tmp_path / "targets.yaml"
    targets.write_text("cooking/soups: 6\ntravel: 20\nnew/topic: 3\n")
    report = balance_runs([run], tmp_path, targets)
    deficits = {c.category: c.deficit for c in report.categories}
    assert deficits == {"cooking/baking": 0, "cooking/soups": 0, "travel": 11, "new/topic": 3}
    assert {t.category for t in report.topups} == {"travel", "new/topic"}
    new_topic = next(t for t in report.topups if t.category == "new/topic")
    assert new_topic.rate == 0.5  # nothing tried yet: the prior
    (tmp_path / "bad.yaml").write_text("cooking: lots\n")
    with pytest.raises(UserError, match="category path to a record count"):
        balance_runs([run], tmp_path, tmp_path / "bad.yaml")


def test_a_specs_dataset_targets_win_over_its_quotas(run, tmp_path):
    info_path = run / "run.json"
    info = json.loads(info_path.read_text())
    info["spec"]["dataset"] = {"name": "kitchen", "targets": {"cooking/soups": 7}}
    info_path.write_text(json.dumps(info))
    report = balance_runs([run], tmp_path)
    assert report.targets_from == "the spec's dataset.targets"
    assert {c.category: c.target for c in report.categories}["cooking/soups"] == 7


def test_the_cli_prints_the_balance_and_the_top_up_plan(run):
    result = CliRunner().invoke(main, ["dataset", "balance", str(run)])
    assert result.exit_code == 0, result.output
    assert "cooking/soups" in result.output
    assert "top-up plan" in result.output
    as_json = CliRunner().invoke(main, ["dataset", "balance", str(run), "--json"])
    topup = json.loads(as_json.output)["topup"]
    assert [c["category"] for c in topup["categories"]] == ["cooking/soups"]
    missing = CliRunner().invoke(main, ["dataset", "balance", str(run.parent / "nope")])
    assert missing.exit_code == 2
    assert "not a synth run directory" in missing.output
