"""`synth verify --redis`: verify-only RQ jobs read their batch from the source run's shards and write the same
shards a local `synth verify` writes; a verify horse SIGKILLed mid-batch loses and duplicates nothing."""

from __future__ import annotations

import json
import signal
from collections import Counter

import pytest
import redis
from click.testing import CliRunner

from synth.cli import main
from synth.distributed.reverify import submit_reverify, wait_reverify
from synth.testing.cluster import kill_tree
from synth.verify.rerun import prepare_reverify
from tests.distributed import wait_until
from tests.test_finalize import log_lines, shard_bytes
from tests.test_reverify import chain, make_source, median_chars, records, said

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

TOPICS = {"science": {"physics": 8, "biology": 6}, "cooking": 6}


@pytest.fixture
def source(tmp_path, mock_llm):
    return make_source(tmp_path, mock_llm.url, [{"name": "length", "min_chars": 10}], topics=TOPICS, batch_size=2)


def the_chain(source, log, **options):
    """Rejects the longer half of the records, then the longest survivor of each category at finalize."""
    limit = median_chars(source)
    return chain({"name": "length", "max_chars": limit}, {"name": "test_longest", "log": str(log), **options})


def test_distributed_verify_writes_the_shards_a_local_verify_writes(source, tmp_path, cluster, verifier_plugins):
    local = CliRunner().invoke(
        main,
        [
            "verify",
            str(source),
            "--out",
            str(tmp_path / "local"),
            "--quiet",
            "--set",
            the_chain(source, tmp_path / "l.log"),
        ],
    )
    assert local.exit_code == 0, local.output
    cluster.env.update(verifier_plugins)
    cluster.start_worker("verify")
    cluster.start_worker("verify")
    log = tmp_path / "d.log"
    command = ["verify", str(source), "--out", str(tmp_path / "dist"), "--quiet", "--set", the_chain(source, log)]
    result = CliRunner().invoke(main, [*command, "--redis", cluster.redis.url])
    assert result.exit_code == 0, result.output
    assert shard_bytes(tmp_path / "dist") == shard_bytes(tmp_path / "local")
    assert said(result).split("changed status:")[1] == said(local).split("changed status:")[1]
    assert len(log_lines(log, "verify")) == len(log_lines(tmp_path / "l.log", "verify"))  # each batch once
    assert len(log_lines(log, "finalize")) == 1
    manifest = json.loads((tmp_path / "dist" / "manifest.json").read_text())
    assert manifest["totals"]["rejected_by_reason"]["longest_in_category"] == 3


def test_sigkill_of_a_verify_horse_mid_batch_loses_and_duplicates_nothing(source, tmp_path, cluster, verifier_plugins):
    assert (
        CliRunner()
        .invoke(
            main,
            [
                "verify",
                str(source),
                "--out",
                str(tmp_path / "local"),
                "--quiet",
                "--set",
                the_chain(source, tmp_path / "l.log"),
            ],
        )
        .exit_code
        == 0
    )
    cluster.env.update(verifier_plugins)
    cluster.start_worker("verify")
    log = tmp_path / "d.log"
    plan = prepare_reverify(source, tmp_path / "dist", None, (the_chain(source, log, verify_delay_s=1.0),), False)
    conn = redis.Redis.from_url(cluster.redis.url)
    job, enqueued = submit_reverify(conn, plan)
    assert enqueued == job.total_batches == 10
    wait_until(lambda: bool(log_lines(log, "verify")), 60, "a verify horse judging its batch")
    horse = int(log_lines(log, "verify")[0].rsplit("pid=", 1)[1])
    kill_tree(horse, signal.SIGKILL)
    report = wait_reverify(conn, job)
    assert (report.batches_done, report.finalizing, report.failed_jobs) == (10, False, {})
    ids = [
        r["record_id"]
        for kind in ("accepted", "rejected")
        for p in sorted((tmp_path / "dist" / kind).glob("*.jsonl"))
        for r in map(json.loads, p.read_text().splitlines())
    ]
    assert not [i for i, n in Counter(ids).items() if n > 1], "a record was written twice"
    assert set(ids) == set(records(source)), "a record was lost"
    assert not list((tmp_path / "dist" / "failed").glob("*.jsonl"))
    judged_locally = len(log_lines(tmp_path / "l.log", "verify"))
    assert len(log_lines(log, "verify")) == judged_locally + 1  # the killed batch twice, every other once
    assert shard_bytes(tmp_path / "dist") == shard_bytes(tmp_path / "local")
