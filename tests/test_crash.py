"""The crash test: `synth run` as a real process, SIGKILLed at random points, then rerun until it finishes.

The mock server runs in this test process, so its call timestamps and the kill timestamps share one
monotonic clock: every repeated call to the model must be explained by a kill that interrupted the first.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from synth.expand import plan_batches, with_items
from synth.plan import prepare
from synth.records import record_id_for
from synth.specfile import load_spec
from synth.testing.mock_openai import Call, MockServer
from tests.conftest import base_spec, write_spec

pytestmark = pytest.mark.slow

KILL_ROUNDS = 6
MIN_KILLS = 4
CACHE_WRITE_SLACK_S = 0.25  # between the mock's reply and the client's cache commit, a kill still loses the call
# 150 items at 0.1 s and 8 in flight is ~1.9 s of model time, longer than four kills at 0.3-1.5 s let a run get
# through after its ~0.4 s start-up, so each kill lands on a live process.
LATENCY_S = 0.1
TOPICS = {"science": {"physics": 50, "biology": 50}, "cooking": 50}


def synth_command() -> str:
    found = shutil.which("synth") or str(Path(sys.executable).parent / "synth")
    assert Path(found).exists(), "the synth console script is not installed in this environment"
    return found


def start_run(spec: Path, out: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as handle:
        return subprocess.Popen(
            [synth_command(), "run", str(spec), "--out", str(out), "--quiet"], stdout=handle, stderr=handle
        )


def shard_rows(out: Path, kind: str) -> list[dict[str, Any]]:
    return [json.loads(line) for path in sorted((out / kind).glob("*.jsonl")) for line in path.read_text().splitlines()]


def unexplained_repeats(calls: list[Call], kills: list[float]) -> list[tuple[str, float, float]]:
    """Every repeated call whose previous call no kill interrupted: (key, previous start, previous end)."""
    by_key: dict[str, list[Call]] = {}
    for call in calls:
        by_key.setdefault(call.key, []).append(call)
    problems = []
    for key, key_calls in by_key.items():
        ordered = sorted(key_calls, key=lambda c: c.started)
        for earlier, later in itertools.pairwise(ordered):
            window_end = (earlier.ended or later.started) + CACHE_WRITE_SLACK_S
            if not any(earlier.started <= k <= min(window_end, later.started) for k in kills):
                problems.append((key, earlier.started, earlier.ended))
    return problems


@pytest.fixture
def crash_run(tmp_path: Path, mock_llm: MockServer) -> dict[str, Any]:
    """Kills the run at seeded random points, then reruns it until it exits 0. Returns what happened."""
    mock_llm.reset(latency_s=LATENCY_S)
    spec = write_spec(
        tmp_path,
        base_spec(
            mock_llm.url, topics=TOPICS, concurrency=8, batch_size=5, retry={"max_attempts": 4, "max_wait_s": 0.1}
        ),
    )
    out, log = tmp_path / "out", tmp_path / "runs.log"
    rng = random.Random(7)
    kills: list[float] = []
    for _ in range(KILL_ROUNDS):
        proc = start_run(spec, out, log)
        time.sleep(rng.uniform(0.3, 1.5))
        if proc.poll() is not None:
            break  # it finished before this kill: nothing left to interrupt
        kills.append(time.monotonic())
        proc.kill()
        proc.wait(timeout=10)
    codes = []
    while not codes or codes[-1] != 0:
        assert len(codes) < 4, f"no clean finish after the kills; exit codes {codes}; log:\n{log.read_text()}"
        codes.append(start_run(spec, out, log).wait(timeout=30))
    return {"spec": spec, "out": out, "kills": kills, "calls": list(mock_llm.state.calls), "log": log}


def test_crash_and_rerun(crash_run):
    out, kills, calls = crash_run["out"], crash_run["kills"], crash_run["calls"]
    assert len(kills) >= MIN_KILLS

    prepared = prepare(load_spec(crash_run["spec"]))
    batches = [with_items(prepared.spec, prepared.template_shas, b) for b in plan_batches(prepared.spec, 5)]
    expected = {record_id_for(item.item_id, 0) for batch in batches for item in batch.items}
    assert len(expected) == 150

    rows = shard_rows(out, "accepted") + shard_rows(out, "rejected")
    ids = [row["record_id"] for row in rows]
    assert len(ids) == len(set(ids)), "a record id appears in two shards"
    assert set(ids) == expected
    assert shard_rows(out, "failed") == []

    manifest = json.loads((out / "manifest.json").read_text())
    totals = manifest["totals"]
    assert (totals["items"], totals["batches"], totals["failed"]) == (150, 30, 0)
    assert totals["accepted"] + totals["rejected"] == len(rows)
    for shard in manifest["shards"]:
        path = out / shard["path"]
        assert shard["rows"] == len(path.read_text().splitlines())
        assert shard["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()

    repeats = len(calls) - len({c.key for c in calls})
    assert repeats > 0, "no kill interrupted a call in flight: the test did not exercise a crash"
    assert len({c.key for c in calls}) == 150
    assert unexplained_repeats(calls, kills) == []

    leftovers = [p for p in out.rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []
