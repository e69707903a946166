"""Every rejected record keeps the model's raw output, whoever rejected it (the parser or a verifier), locally and
distributed; accepted records do not store it. The mock OpenAI server over real HTTP, a real Redis and workers."""

from __future__ import annotations

import asyncio
import json
import zlib

from synth.cli.distributed import wait_for
from synth.pipeline import GeneratedBatch
from synth.records import FailedItem, Lineage, Record
from synth.store.marker import StageUsage
from synth.testing.mock_openai import Behaviour
from tests.conftest import base_spec, write_spec
from tests.distributed import run_locally, shard_rows, submit_spec

LONG = json.dumps({"instruction": "Describe gravity.", "input": "", "output": "Gravity pulls. " * 40})


def too_long_spec(tmp_path, url):
    """Physics answers are too long for the length verifier; the other 6 items pass."""
    return write_spec(tmp_path, base_spec(url, verifiers=[{"name": "length", "max_chars": 400}, "exact_dedup"]))


def assert_rejections_keep_raw_output(out):
    rejected = shard_rows(out, "rejected")
    assert [r["lineage"]["category"] for r in rejected] == [["science", "physics"]] * 4
    assert {(r["reason"], r["verdicts"][-1]["verifier"]) for r in rejected} == {("too_long", "length")}
    assert {r["raw_output"] for r in rejected} == {LONG}
    accepted = shard_rows(out, "accepted")
    assert len(accepted) == 6
    assert {r["raw_output"] for r in accepted} == {None}


def test_a_verifier_rejection_keeps_the_raw_output_locally(tmp_path, mock_llm):
    mock_llm.when_prompt_contains('"physics"', Behaviour(content=LONG))
    asyncio.run(run_locally(too_long_spec(tmp_path, mock_llm.url), tmp_path / "out"))
    assert_rejections_keep_raw_output(tmp_path / "out")


def test_a_verifier_rejection_keeps_the_raw_output_distributed(tmp_path, cluster, mock_llm):
    mock_llm.when_prompt_contains('"physics"', Behaviour(content=LONG))
    cluster.start_worker("generate")
    cluster.start_worker("verify")
    conn, job = submit_spec(cluster.redis.url, too_long_spec(tmp_path, mock_llm.url), tmp_path / "out")
    wait_for(conn, job)
    assert_rejections_keep_raw_output(tmp_path / "out")


def lineage(index: int) -> Lineage:
    return Lineage(
        run_id="run",
        job_id="job",
        batch_id="batch",
        item_id=f"item{index}",
        spec_id="spec",
        spec_name="name",
        task="instructions",
        template="instructions/basic.j2",
        template_sha256="0" * 64,
        prompt_sha256=f"{index:064d}",
        model="openai/mock-model",
        params={"temperature": 0.8, "top_p": None},
        seed=index,
        category=["science", "physics"],
        synth_version="0",
    )


def generated(n: int) -> GeneratedBatch:
    sample = {"instruction": "Explain tides.", "input": "", "output": "The moon pulls the sea. " * 8}
    records = [
        Record(
            record_id=f"r{i}",
            status="accepted",
            task="instructions",
            sample=sample,
            lineage=lineage(i),
            raw_output=json.dumps(sample),
        )
        for i in range(n)
    ]
    return GeneratedBatch(records, [], StageUsage(calls=n))


def test_the_verify_payload_round_trips_records_with_their_raw_output():
    batch = generated(3)
    back = GeneratedBatch.from_bytes(batch.to_bytes())
    assert back.records == batch.records
    assert back.records[0].raw_output == batch.records[0].raw_output


def test_a_generated_batch_round_trips_with_failed_items_and_usage_and_reads_the_older_form():
    batch = generated(2)
    batch.failed = [FailedItem(item_id="i9", batch_id="b", category=["c"], template="t", error_type="X", error="a\nb")]
    batch.usage = StageUsage(calls=3, prompt_tokens=7)
    assert GeneratedBatch.from_bytes(batch.to_bytes()) == batch
    older = {  # what a worker before the two-part form stashed: one JSON object, the records as one JSON text
        "records": json.dumps([r.model_dump(mode="json") for r in batch.records]),
        "failed": [f.model_dump(mode="json") for f in batch.failed],
        "usage": batch.usage.model_dump(),
    }
    assert GeneratedBatch.from_bytes(json.dumps(older).encode()) == batch


def test_raw_output_adds_little_to_the_compressed_verify_payload():
    """The raw output repeats the sample's text, so the compressed payload (what RQ stores) grows by a fraction."""
    with_raw = generated(128)
    without = GeneratedBatch([r.model_copy(update={"raw_output": None}) for r in with_raw.records], [], with_raw.usage)

    def stored(batch: GeneratedBatch) -> int:
        return len(zlib.compress(batch.to_bytes()))

    assert stored(with_raw) < 1.25 * stored(without)
