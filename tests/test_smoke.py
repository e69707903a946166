from __future__ import annotations

import asyncio
import json

from synth.executors.local import run_local
from synth.planning.prepare import prepare
from synth.spec.file import load_spec


def test_run_writes_one_accepted_record_per_item(spec_file, tmp_path, mock_llm):
    prepared = prepare(load_spec(spec_file))
    progress = asyncio.run(run_local(prepared, tmp_path / "out"))
    assert progress.totals.items == 10
    assert progress.totals.accepted == 10
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["totals"]["accepted"] == 10
    assert len(mock_llm.calls_per_key()) == 10
