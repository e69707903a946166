"""Literal record ids for one spec of each task kind: a change that renames records fails here, not silently.

Ids are content hashes of (spec_id, category, template and its sha256, index or input unit): a moved module,
a new verifier or a changed execution knob must leave every id below as it is.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from synth.planning.job import iter_batches
from synth.planning.prepare import prepare
from synth.records import record_id_for
from synth.spec.file import LoadedSpec, validate_spec

DATA = Path(__file__).parent / "data" / "pinned"

BASE = {"model": "openai/gpt-4o-mini", "params": {"seed": 7}}
SPECS = {
    "instructions": {"task": "instructions", "templates": ["instructions/basic.j2"], "topics": {"python": 2}},
    "code": {"task": "code", "templates": ["code/function.j2"], "topics": {"strings": 2}},
    "paraphrase": {
        "task": {"name": "paraphrase", "n": 2, "styles": ["formal"]},
        "templates": ["paraphrase/basic.j2"],
        "topics": {"support": {"inputs": {"path": "rows.txt"}}},
    },
    "backtranslation": {
        "task": {"name": "backtranslation", "pivots": ["French"]},
        "templates": ["backtranslation/translate.j2"],
        "topics": {"support": {"inputs": {"path": "rows.txt"}}},
    },
    "doc_qa": {
        "task": {"name": "doc_qa"},
        "templates": ["doc_qa/basic.j2"],
        "topics": {"policies": {"inputs": {"path": "docs"}}},
    },
}

# Computed on the code before the layout move (0c09f4b) and unchanged since.
PINNED: dict[str, list[str]] = {
    "backtranslation": [
        "23662fca949b4a802879eff2cc783248",
        "6097739b200afe65cd2fab190b5f2445",
    ],
    "code": [
        "e93015e06ab30466dd0902fb386774bf",
        "63cdb4278ed147f0ed68faec93640bf3",
    ],
    "doc_qa": [
        "a40f480dd3eb02b43e4d695005209f23",
    ],
    "instructions": [
        "06091b9aad93a7f8fef0e8c3ce33d224",
        "b81eeaf1b9efef0463b8ef679f22f81d",
    ],
    "paraphrase": [
        "eba3088f38c0998ed9431ada46e64e30",
        "33721644c2aa5954c37db07e5fd1cc43",
    ],
}


def record_ids(kind: str) -> list[str]:
    raw = {"name": f"pinned-{kind}", **BASE, **SPECS[kind]}
    loaded = LoadedSpec(validate_spec(raw), DATA / "spec.yaml", {}, set())
    prepared = prepare(loaded)
    return [record_id_for(item.item_id, 0) for batch in iter_batches(prepared, 8) for item in batch.items]


@pytest.mark.parametrize("kind", sorted(SPECS))
def test_record_ids_are_pinned(kind):
    assert record_ids(kind) == PINNED[kind]
