"""A worker prepares each job once, in its main process before RQ forks a work horse, and warms the chain's
verifiers there; a changed job is prepared again. Real Redis, real `synth worker` processes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import redis

from synth.cli.distributed import wait_for
from synth.distributed import keys
from synth.distributed.prepared import PreparedJobs
from synth.errors import UserError
from synth.testing.cluster import Cluster
from tests.conftest import base_spec, write_spec
from tests.distributed import shard_rows, submit_spec
from tests.probe_plugins import installed

TOPICS = {"science": {"physics": 12, "biology": 9}, "cooking": 7}
BATCHES = 8


@pytest.fixture
def probes(tmp_path_factory):
    with installed(tmp_path_factory.mktemp("probes")) as env:
        yield env


def probe_spec(directory: Path, url: str, log: Path, min_chars: int = 10) -> Path:
    verifiers = [{"name": "length", "min_chars": min_chars}, {"name": "probe", "log": str(log)}]
    return write_spec(directory, base_spec(url, topics=TOPICS, batch_size=4, verifiers=verifiers))


def prepared_pids(cluster: Cluster, index: int) -> list[int]:
    """The pids that logged preparing a job in worker `index`'s log (its main process, or a work horse)."""
    text = (cluster.log_dir / f"worker-{'generate' if index == 0 else 'verify'}-{index}.log").read_text()
    return [int(pid) for pid in re.findall(r"prepared job: job=\S+ spec=\S+ pid=(\d+)", text)]


def probe_lines(log: Path) -> list[list[str]]:
    return [line.split() for line in log.read_text().splitlines()]


def start(cluster: Cluster, env: dict[str, str]) -> tuple[int, int]:
    cluster.env.update(env)
    generate, verify = cluster.start_worker("generate"), cluster.start_worker("verify")
    return generate.pid, verify.pid


def test_each_worker_prepares_a_job_once_in_its_main_process(tmp_path, cluster, mock_llm, probes):
    log = tmp_path / "probe.log"
    generate_pid, verify_pid = start(cluster, probes)
    conn, job = submit_spec(cluster.redis.url, probe_spec(tmp_path, mock_llm.url, log), tmp_path / "out")
    report = wait_for(conn, job)
    assert (report.batches_done, report.totals.items) == (job.total_batches, 28) == (BATCHES, 28)
    assert prepared_pids(cluster, 0) == [generate_pid]
    assert prepared_pids(cluster, 1) == [verify_pid]


def test_the_chain_verifiers_are_preloaded_once_before_the_fork(tmp_path, cluster, mock_llm, probes):
    log = tmp_path / "probe.log"
    _, verify_pid = start(cluster, probes)
    conn, job = submit_spec(cluster.redis.url, probe_spec(tmp_path, mock_llm.url, log), tmp_path / "out")
    wait_for(conn, job)
    lines = probe_lines(log)
    assert [line for line in lines if line[0] == "preload"] == [["preload", str(verify_pid)]]
    verified = [line for line in lines if line[0] == "verify"]
    assert len(verified) == BATCHES
    assert {preloaded_by for _, _, preloaded_by in verified} == {str(verify_pid)}  # inherited by every horse
    assert str(verify_pid) not in {pid for _, pid, _ in verified}  # ...which each ran in its own process


def test_a_changed_job_is_prepared_and_warmed_again(tmp_path, cluster, mock_llm, probes):
    first, second = tmp_path / "first.log", tmp_path / "second.log"
    generate_pid, verify_pid = start(cluster, probes)
    conn, job = submit_spec(cluster.redis.url, probe_spec(tmp_path, mock_llm.url, first), tmp_path / "out")
    wait_for(conn, job)
    # The same job resubmitted with another chain: every batch is verified again, by the new chain.
    changed = probe_spec(tmp_path, mock_llm.url, second, min_chars=100_000)
    conn, again = submit_spec(cluster.redis.url, changed, tmp_path / "out")
    assert again.job_id == job.job_id
    wait_for(conn, again)
    assert probe_lines(second)[0] == ["preload", str(verify_pid)]
    rejected = shard_rows(tmp_path / "out", "rejected")
    assert len(rejected) == 28
    assert {row["reason"] for row in rejected} == {"too_short"}
    assert prepared_pids(cluster, 0) == [generate_pid, generate_pid]
    assert prepared_pids(cluster, 1) == [verify_pid, verify_pid]


def submitted(tmp_path, redis_server, mock_llm):
    """A job submitted to an emptied Redis (no worker runs it), and a client."""
    conn = redis.Redis.from_url(redis_server.url)
    conn.flushall()
    spec = write_spec(tmp_path, base_spec(mock_llm.url, topics=TOPICS, batch_size=4))
    return conn, submit_spec(redis_server.url, spec, tmp_path / "out")[1]


def test_prepared_jobs_reuse_an_entry_until_its_record_changes(tmp_path, redis_server, mock_llm):
    conn, job = submitted(tmp_path, redis_server, mock_llm)
    jobs = PreparedJobs()
    ready, fresh = jobs.fetch(conn, job.job_id)
    assert fresh
    assert ready.job == job
    assert jobs.fetch(conn, job.job_id) == (ready, False)
    record = json.loads(conn.get(keys.job_meta(job.job_id)))
    record["spec"]["verifiers"] = [{"name": "length", "min_chars": 99}]
    conn.set(keys.job_meta(job.job_id), json.dumps(record))
    changed, fresh = jobs.fetch(conn, job.job_id)
    assert fresh
    assert changed is not ready
    assert [(name, opts.model_dump()["min_chars"]) for name, opts in changed.prepared.verifier_options] == [
        ("length", 99)
    ]


def test_prepared_jobs_keep_only_the_latest_few(tmp_path, redis_server, mock_llm):
    conn = redis.Redis.from_url(redis_server.url)
    conn.flushall()
    jobs = PreparedJobs(keep=2)
    ids = []
    for index in range(3):
        spec = write_spec(tmp_path, base_spec(mock_llm.url, name=f"spec-{index}"), name=f"spec-{index}.yaml")
        ids.append(submit_spec(redis_server.url, spec, tmp_path / f"out-{index}")[1].job_id)
        jobs.get(conn, ids[-1])
    assert jobs.fetch(conn, ids[2])[1] is False
    assert jobs.fetch(conn, ids[0])[1] is True  # dropped as the third came in


def test_a_job_function_takes_what_its_worker_readied_without_reading_the_record_anew(tmp_path, redis_server, mock_llm):
    conn, job = submitted(tmp_path, redis_server, mock_llm)
    jobs = PreparedJobs()
    ready, _ = jobs.fetch(conn, job.job_id)
    jobs.hand_over("rq-1", ready)
    conn.delete(keys.job_meta(job.job_id))  # a read now would find no record
    assert jobs.for_rq_job(conn, "rq-1", job.job_id) is ready
    with pytest.raises(UserError, match="no synth job"):
        jobs.for_rq_job(conn, "rq-2", job.job_id)  # another RQ job: read and checked
    jobs.hand_over("rq-1", None)  # the worker could not ready it
    with pytest.raises(UserError, match="no synth job"):
        jobs.for_rq_job(conn, "rq-1", job.job_id)
