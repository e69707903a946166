"""Scheduled top-ups end to end: a dataset posted over the API, real workers, two `rq cron workers.cron`
schedulers ticking at once, and the mock OpenAI server rejecting one template's output.

The base run leaves `cooking` thin (2 of 7 accepted: the `howto` template's answers are too short). Ticks wait
while it runs, then one round sized from the per-template yields fills `cooking` within the yield margin;
`physics` (at its target) gets nothing, and the second scheduler's ticks change nothing.
"""

from __future__ import annotations

import json
import math
import time

import pytest
from rq.cron import CronScheduler, get_cron_job_ids
from rq.registry import FinishedJobRegistry

from synth.distributed import keys
from synth.testing.mock_openai import Behaviour
from synth.topups.topup import dataset_key
from tests.conftest import base_spec
from tests.distributed import shard_rows
from workers.cron import topup_queue

TEMPLATES = ["instructions/basic.j2", "instructions/howto.j2"]
TARGETS = {"physics": 2, "cooking": 7}
MARGIN = 0.1
SHORT = json.dumps({"instruction": "hm", "input": "", "output": "ok"})  # under min_chars: too_short


def dataset_spec(mock_llm):
    return base_spec(
        mock_llm.url,
        name="kb-base",
        templates=TEMPLATES,
        topics={"physics": 4, "cooking": 4},
        verifiers=[{"name": "length", "min_chars": 10}, "exact_dedup"],
        batch_size=4,
        dataset={"name": "kb", "targets": TARGETS, "margin": MARGIN},
    )


def wait_for(predicate, timeout_s, what):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


@pytest.mark.slow
def test_scheduled_ticks_fill_a_thin_category_once_even_with_two_schedulers(service, mock_llm):
    mock_llm.when_prompt_contains('"how do I" question', Behaviour(content=SHORT))
    for stage in ("generate", "verify", "topup"):
        service.cluster.start_worker(stage)
    with service.client() as client:
        base = client.post("/v1/jobs", json=dataset_spec(mock_llm))
        assert base.status_code == 201, base.text
        for _ in range(2):  # both tick while the base run is still in flight: they must wait for it
            service.cluster.start_scheduler(SYNTH_TOPUP_INTERVAL_S="2")

        def filled():
            view = client.get("/v1/datasets/kb").json()
            cooking = next(t for t in view["targets"] if t["category"] == "cooking")
            return view if view["rounds"] and not view["in_flight"] and cooking["deficit"] == 0 else None

        view = wait_for(filled, 150, "the cooking category to reach its target")
        time.sleep(6)  # three more slots of ticks from both schedulers: nothing more may happen
        after = client.get("/v1/datasets/kb").json()
        on_demand = client.post("/v1/datasets/kb/topup").json()
        jobs = client.get("/v1/jobs").json()["jobs"]

    accepted = {t["category"]: t["accepted"] for t in after["targets"]}
    assert after["rounds"] == view["rounds"] == 1
    assert accepted["physics"] == 2  # at its target from the start: never topped up
    assert TARGETS["cooking"] <= accepted["cooking"] <= TARGETS["cooking"] + math.ceil(5 * MARGIN)
    assert on_demand["outcome"] == "full"
    # The round: cooking only, 11 items (5 missing / 0.5 expected per item, +10%), each called once.
    assert len(mock_llm.request_bodies()) == 8 + 11
    assert len(set(mock_llm.calls_per_key().values())) == 1
    round_dir = service.server.settings.data_root / "tenants" / "acme" / "datasets" / "kb" / "rounds" / "round-0001"
    round_rows = shard_rows(round_dir, "accepted") + shard_rows(round_dir, "rejected")
    assert {tuple(r["lineage"]["category"]) for r in round_rows} == {("cooking",)}
    assert len(round_rows) == 11
    base_dir = next((service.server.settings.data_root / "tenants" / "acme" / "runs").iterdir())
    base_rows = shard_rows(base_dir, "accepted") + shard_rows(base_dir, "rejected")
    all_ids = [r["record_id"] for r in base_rows + round_rows]
    assert len(all_ids) == len(set(all_ids)) == 19
    assert {r["lineage"]["item_id"] for r in round_rows}.isdisjoint(r["lineage"]["item_id"] for r in base_rows)
    # The API lists the round as the tenant's job too, with its round number.
    assert [(j["name"], j["topup_round"], j["state"]) for j in jobs] == [
        ("kb-base", 1, "completed"),
        ("kb-base", None, "completed"),
    ]

    # Two schedulers ticked; every slot fired one top-up, whichever scheduler's tick came first.
    conn = service.conn
    assert len(CronScheduler.all(conn)) == 2
    ticks = get_cron_job_ids("synth-topup", conn)
    dataset = dataset_key("acme", "kb")
    slots = list(conn.scan_iter(keys.topup_tick(dataset, "*")))  # type: ignore[arg-type]
    prefix = keys.rq_topup_id(dataset, 0).removesuffix("0")
    queue = topup_queue(conn)
    topups = [i for i in FinishedJobRegistry(queue=queue).get_job_ids() if i.startswith(prefix)]
    assert len(ticks) > len(slots) >= 3
    assert sorted(topups) == sorted(keys.rq_topup_id(dataset, int(s.decode().rsplit(":", 1)[1])) for s in slots)
