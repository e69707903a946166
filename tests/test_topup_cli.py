"""The service's CLI: `synth dataset add|show|list`, `synth topup` and `synth api key create|list|revoke`, against
the test Redis (a local run against the mock server gives the dataset its first records)."""

from __future__ import annotations

import asyncio
import json
import re

import pytest
import redis
from click.testing import CliRunner

from synth.cli import main
from synth.distributed import keys
from tests.conftest import base_spec, write_spec
from tests.distributed import run_locally

TOPICS = {"science": {"physics": 4, "biology": 4}, "cooking": 4}


@pytest.fixture
def spec(tmp_path, mock_llm):
    return write_spec(tmp_path, base_spec(mock_llm.url, topics=TOPICS, batch_size=4))


def synth(url, *args):
    result = CliRunner().invoke(main, [*args, "--redis", url], catch_exceptions=False)
    return result.exit_code, result.output


def test_a_dataset_counts_its_runs_and_a_dry_run_sizes_only_the_thin_categories(cluster, spec, tmp_path):
    url = cluster.redis.url
    asyncio.run(run_locally(spec, tmp_path / "first"))
    home = tmp_path / "kb"
    code, out = synth(
        url,
        "dataset",
        "add",
        "kb",
        "--spec",
        str(spec),
        "--home",
        str(home),
        "--run",
        str(tmp_path / "first"),
        "--target",
        "science/physics=10",
        "--target",
        "cooking=4",
    )
    assert code == 0, out
    code, shown = synth(url, "dataset", "show", "kb")
    assert code == 0
    assert re.search(r"science/physics\s+│\s+10\s+│\s+4\s+│\s+6", shown), shown
    code, planned = synth(url, "topup", "kb", "--dry-run", "--json")
    plan = json.loads(planned)
    assert plan["outcome"] == "planned"
    assert [(c["category"], c["deficit"]) for c in plan["categories"]] == [("cooking", 0), ("science/physics", 6)]
    assert plan["items"] == next(c["items"] for c in plan["categories"] if c["category"] == "science/physics") >= 6
    assert synth(url, "dataset", "list")[1].split() == ["kb"]


def test_topup_submits_a_round_then_waits_for_it(cluster, spec, tmp_path):
    url = cluster.redis.url
    asyncio.run(run_locally(spec, tmp_path / "first"))
    synth(
        url,
        "dataset",
        "add",
        "kb",
        "--spec",
        str(spec),
        "--home",
        str(tmp_path / "kb"),
        "--run",
        str(tmp_path / "first"),
        "--target",
        "cooking=9",
    )
    code, first = synth(url, "topup", "kb")
    code_again, second = synth(url, "topup", "kb")
    assert code == code_again == 0
    assert "round 1 submitted as job" in first
    assert "runs still in flight" in second  # no worker here: round 1 is still queued
    conn = redis.Redis.from_url(url)
    assert conn.llen(f"rq:queue:{keys.GENERATE_QUEUE}") >= 2
    assert (tmp_path / "kb" / "rounds" / "round-0001" / "run.json").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--target", "nowhere=3"], "targets name categories the spec cannot top up"),
        (["--target", "cooking"], "expected CATEGORY=N"),
        (["--margin", "3"], "margin"),
    ],
)
def test_a_bad_dataset_definition_is_refused(cluster, spec, tmp_path, args, message):
    code, out = synth(cluster.redis.url, "dataset", "add", "kb", "--spec", str(spec), "--home", str(tmp_path), *args)
    assert code == 2
    assert message in out


def test_submitting_a_spec_with_a_dataset_block_counts_the_run(cluster, tmp_path, mock_llm, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = write_spec(tmp_path, base_spec(mock_llm.url, topics=TOPICS, dataset={"name": "kb"}))
    code, out = synth(cluster.redis.url, "submit", str(spec), "--out", str(tmp_path / "run"))
    assert code == 0, out
    assert "counted toward dataset kb" in out
    dataset = json.loads((tmp_path / "datasets" / "kb" / "dataset.json").read_text())
    assert dataset["settings"]["targets"] == {"science/physics": 4, "science/biology": 4, "cooking": 4}
    assert [r["path"] for r in dataset["runs"]] == [str((tmp_path / "run").resolve())]


def test_api_keys_are_shown_once_and_listed_without_the_secret(cluster):
    url = cluster.redis.url
    code, key = synth(url, "api", "key", "create", "acme")
    key = key.strip()
    assert code == 0
    assert re.fullmatch(r"synth_[0-9a-f]{12}_[A-Za-z0-9_-]{43}", key)
    key_id = key.split("_")[1]
    listed = synth(url, "api", "key", "list")[1]
    assert key_id in listed
    assert "acme" in listed
    assert key.split("_", 2)[2] not in listed
    assert synth(url, "api", "key", "revoke", key_id)[0] == 0
    assert synth(url, "api", "key", "revoke", key_id)[0] == 2
    assert synth(url, "api", "key", "create", "Not A Tenant")[0] == 2


def test_a_first_round_is_capped_by_the_plans_cost_estimate(cluster, tmp_path):
    """No item paid for yet: the cap holds the round to `synth plan`'s upper estimate of a known model's price."""
    raw = base_spec("unused", model="openai/gpt-4o-mini", topics={"cooking": 4})
    del raw["api_base"]
    spec = write_spec(tmp_path, raw)
    url = cluster.redis.url
    args = ["--spec", str(spec), "--home", str(tmp_path / "kb"), "--target", "cooking=1000"]
    assert synth(url, "dataset", "add", "kb", *args, "--max-cost-usd", "0.01")[0] == 0
    plan = json.loads(synth(url, "topup", "kb", "--dry-run", "--json")[1])
    assert plan["capped"]
    assert 0 < plan["items"] < 1000
    assert plan["estimated_cost_usd"] <= 0.01
