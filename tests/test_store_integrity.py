"""A done batch is trusted only while its shards are what its marker says: a deleted or altered shard (sha256) or a
corrupt marker makes a rerun redo that batch (from the response cache: nothing paid twice), and `status` does not
count it meanwhile."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from synth.cli import main
from synth.store.run_store import RunStore
from synth.testing.mock_openai import MockServer
from tests.conftest import base_spec, write_spec

ITEMS = 10


def run_cli(spec: Path, out: Path) -> Result:
    return CliRunner().invoke(main, ["run", str(spec), "--out", str(out), "--quiet"])


def status_json(out: Path) -> dict:
    result = CliRunner().invoke(main, ["status", str(out), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def accepted_rows(out: Path) -> list[dict]:
    return [json.loads(line) for p in sorted((out / "accepted").glob("*.jsonl")) for line in p.read_text().splitlines()]


@pytest.fixture
def done_run(tmp_path: Path, mock_llm: MockServer) -> tuple[Path, Path]:
    spec = write_spec(tmp_path, base_spec(mock_llm.url))
    out = tmp_path / "out"
    assert run_cli(spec, out).exit_code == 0
    return spec, out


def first_shard(out: Path) -> Path:
    return sorted((out / "accepted").glob("*.jsonl"))[0]


def delete(shard: Path) -> None:
    shard.unlink()


def alter(shard: Path) -> None:
    shard.write_text(shard.read_text().replace('"accepted"', '"accepted" ', 1))


def truncate(shard: Path) -> None:
    shard.write_text(shard.read_text().splitlines()[0] + "\n")


@pytest.mark.parametrize("damage", [delete, alter, truncate])
def test_status_does_not_count_a_batch_whose_shard_is_missing_or_altered(done_run, damage):
    _, out = done_run
    shard = first_shard(out)
    rows = len(shard.read_text().splitlines())
    damage(shard)
    report = status_json(out)
    assert report["totals"]["accepted"] == ITEMS - rows
    assert [entry.split(":")[0] for entry in report["damaged_batches"]] == [shard.stem]


@pytest.mark.parametrize("damage", [delete, alter, truncate])
def test_a_rerun_redoes_a_batch_whose_shard_is_missing_or_altered_from_the_cache(done_run, mock_llm, damage):
    spec, out = done_run
    before = {row["record_id"]: row["sample"] for row in accepted_rows(out)}
    calls = len(mock_llm.state.calls)
    damage(first_shard(out))
    result = run_cli(spec, out)
    assert result.exit_code == 0, result.output
    assert len(mock_llm.state.calls) == calls  # the response cache answers every call of the redone batch
    after = {row["record_id"]: row["sample"] for row in accepted_rows(out)}
    assert after == before
    assert status_json(out)["damaged_batches"] == []
    assert status_json(out)["totals"]["accepted"] == ITEMS


def test_the_plain_status_table_says_how_many_batches_are_not_counted(done_run):
    _, out = done_run
    delete(first_shard(out))
    result = CliRunner().invoke(main, ["status", str(out)])
    assert result.exit_code == 0
    assert "1 batch(es) not counted" in " ".join(result.output.split())


def test_drop_damaged_keeps_intact_batches(done_run):
    _, out = done_run
    shard = first_shard(out)
    delete(shard)
    store = RunStore(out)
    dropped = store.drop_damaged()
    assert [entry.split(":")[0] for entry in dropped] == [shard.stem]
    assert sorted(p.stem for p in (out / "done").glob("*.json")) == sorted(
        m.batch_id for m in store.markers(verify=True)
    )
    assert len(list((out / "done").glob("*.json"))) == 2
