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
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from synth.planning.expand import plan_batches, with_items
from synth.planning.prepare import prepare
from synth.records import record_id_for
from synth.spec.file import load_spec
from synth.testing.mock_openai import Call, MockServer
from tests.conftest import base_spec, write_spec

pytestmark = pytest.mark.slow

KILL_ROUNDS = 6
MIN_KILLS = 5
CACHE_WRITE_SLACK_S = 0.25  # between the mock's reply and the client's cache commit, a kill still loses the call
WIRE_SLACK_S = 0.05  # a request already sent when the kill lands reaches the mock a moment after it
# 150 items at 0.1 s with 8 in flight is 1.9 s of model time. Each kill comes 0.05-0.8 s after the run's first
# request (about 0.3-1.2 s after it starts, on an idle machine), and the seeded delays of the first five kills add up
# to 1.54 s, so at least five kills land on a live run with calls in flight, however loaded the machine.
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


def wait_for_first_call(server: MockServer, proc: subprocess.Popen[Any]) -> None:
    """Until the process sends its first model request (or exits): start-up time varies with the machine's load."""
    seen = len(server.state.calls)
    deadline = time.monotonic() + 30
    while len(server.state.calls) == seen and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)


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
            window_start = earlier.started - WIRE_SLACK_S
            if not any(window_start <= k <= min(window_end, later.started) for k in kills):
                problems.append((key, earlier.started, earlier.ended))
    return problems


@pytest.fixture(scope="module")
def crash_run(tmp_path_factory: pytest.TempPathFactory, mock_server: MockServer) -> dict[str, Any]:
    """Kills the run at seeded random points, then reruns it until it exits 0. Returns what happened."""
    mock_server.reset(latency_s=LATENCY_S)
    tmp_path = tmp_path_factory.mktemp("crash")
    spec = write_spec(
        tmp_path,
        base_spec(
            mock_server.url, topics=TOPICS, concurrency=8, batch_size=5, retry={"max_attempts": 4, "max_wait_s": 0.1}
        ),
    )
    out, log = tmp_path / "out", tmp_path / "runs.log"
    rng = random.Random(7)
    kills: list[float] = []
    for _ in range(KILL_ROUNDS):
        proc = start_run(spec, out, log)
        wait_for_first_call(mock_server, proc)
        time.sleep(rng.uniform(0.05, 0.8))
        if proc.poll() is not None:
            break  # it finished before this kill: nothing left to interrupt
        kills.append(time.monotonic())
        proc.kill()
        proc.wait(timeout=10)
    codes: list[int] = []
    while not codes or codes[-1] != 0:
        assert len(codes) < 4, f"no clean finish after the kills; exit codes {codes}; log:\n{log.read_text()}"
        codes.append(start_run(spec, out, log).wait(timeout=30))
    calls = list(mock_server.state.calls)
    mock_server.reset()
    return {"spec": spec, "out": out, "kills": kills, "calls": calls}


def expected_record_ids(spec: Path) -> set[str]:
    prepared = prepare(load_spec(spec))
    batches = [with_items(prepared.spec, prepared.template_shas, b) for b in plan_batches(prepared.spec, 5)]
    return {record_id_for(item.item_id, 0) for batch in batches for item in batch.items}


def test_crash_test_killed_live_runs_mid_call(crash_run):
    calls = crash_run["calls"]
    assert len(crash_run["kills"]) >= MIN_KILLS
    assert len(calls) > len({c.key for c in calls}), "no kill interrupted a call in flight"


def test_crash_reruns_end_with_every_record_exactly_once(crash_run):
    out = crash_run["out"]
    ids = [row["record_id"] for row in shard_rows(out, "accepted") + shard_rows(out, "rejected")]
    assert len(ids) == len(set(ids)), "a record id appears in two shards"
    assert set(ids) == expected_record_ids(crash_run["spec"])
    assert len(ids) == 150
    assert shard_rows(out, "failed") == []


def test_crash_reruns_leave_a_manifest_matching_the_shards(crash_run):
    out = crash_run["out"]
    manifest = json.loads((out / "manifest.json").read_text())
    totals = manifest["totals"]
    assert (totals["items"], totals["batches"], totals["failed"]) == (150, 30, 0)
    assert totals["accepted"] + totals["rejected"] == 150
    assert sum(shard["rows"] for shard in manifest["shards"]) == 150
    for shard in manifest["shards"]:
        path = out / shard["path"]
        assert shard["rows"] == len(path.read_text().splitlines())
        assert shard["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()


def test_crash_reruns_repeat_only_calls_a_kill_interrupted(crash_run):
    calls, kills = crash_run["calls"], crash_run["kills"]
    assert len({c.key for c in calls}) == 150
    t0 = min(c.started for c in calls)
    problems = [
        (key, round(start - t0, 3), round(end - t0, 3)) for key, start, end in unexplained_repeats(calls, kills)
    ]
    assert problems == [], f"kills at {[round(k - t0, 3) for k in kills]}"


def test_crash_reruns_leave_no_temp_files(crash_run):
    leftovers = [p for p in crash_run["out"].rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []


def test_sigterm_saves_finished_batches_and_the_rerun_completes(tmp_path, mock_llm):
    mock_llm.reset(latency_s=LATENCY_S)
    spec = write_spec(tmp_path, base_spec(mock_llm.url, topics=TOPICS, concurrency=8, batch_size=5))
    out, log = tmp_path / "out", tmp_path / "runs.log"
    proc = subprocess.Popen(
        [synth_command(), "run", str(spec), "--out", str(out), "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for_first_call(mock_llm, proc)
    time.sleep(0.8)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130
    saved = json.loads((out / "manifest.json").read_text())["totals"]["items"]
    assert 0 < saved < 150
    assert f"interrupted: {saved} of 150 items saved" in " ".join(err.split())

    calls_before = len(mock_llm.state.calls)
    assert start_run(spec, out, log).wait(timeout=30) == 0
    new_calls = mock_llm.state.calls[calls_before:]
    assert len(new_calls) <= 150 - saved  # the cache answers calls that came back before the signal
    assert len({c.key for c in new_calls}) == len(new_calls)
    ids = [row["record_id"] for row in shard_rows(out, "accepted") + shard_rows(out, "rejected")]
    assert len(ids) == len(set(ids)) == 150
