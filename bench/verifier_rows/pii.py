"""pii: precision and recall per entity type on presidio-evaluator's generated sentences with known spans.

The labelled set is tests/data/pii/presidio_fake_sentences.jsonl: 1,000 sentences from presidio-evaluator 0.2.5's
PresidioSentenceFaker (en_US, seed 42, lower_case_ratio 0.05, its additional providers without the hospital
one), generated once and stored (each row: text, spans with type, value, start, end). A predicted span counts
when it overlaps a labelled span of its type. Types the verifier does not detect without an NER model (GPE,
ORGANIZATION...) are not scored. The recognizers are built from no part of this set (names: the US census).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.hygiene_corpus import context, records
from synth.state.local import LocalState
from synth.verify.registry import build
from verifiers.pii_engine import WIDE_PHONE_REGIONS

DATA = Path(__file__).resolve().parents[2] / "tests" / "data" / "pii" / "presidio_fake_sentences.jsonl"
OURS = ("EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "IP_ADDRESS", "US_SSN", "STREET_ADDRESS", "PERSON")
REPORTED = OURS


def overlaps(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def row() -> dict[str, Any]:
    default = measure({})
    wide = measure({"phone_regions": list(WIDE_PHONE_REGIONS)})
    default["wide_phone_regions"] = {"PHONE_NUMBER": wide["per_type"]["PHONE_NUMBER"], "precision": wide["precision"]}
    return default


def measure(options: dict[str, Any]) -> dict[str, Any]:
    rows = [json.loads(line) for line in DATA.read_text().splitlines()]
    with __import__("tempfile").TemporaryDirectory() as tmp:
        state = LocalState(Path(tmp) / "state.sqlite")
        verifier = build("pii", options, context(state))
        verifier.find("output", "warm up: a@b.co")
        start = time.perf_counter()
        verdicts = asyncio.run(verifier.verify_batch(records([r["text"] for r in rows])))
        elapsed = time.perf_counter() - start
        state.close()
    predicted = [
        [(kind, span) for change in v.changes for kind, span in zip(change.kinds, change.spans, strict=True)]
        for v in verdicts
    ]
    counts: dict[str, Counter[str]] = {t: Counter() for t in REPORTED}
    for labelled, found in zip(rows, predicted, strict=True):
        gold = [(s["type"], (s["start"], s["end"])) for s in labelled["spans"]]
        for kind in REPORTED:
            mine = [span for k, span in found if k == kind]
            theirs = [span for k, span in gold if k == kind]
            counts[kind]["gold"] += len(theirs)
            counts[kind]["found"] += sum(any(overlaps(g, m) for m in mine) for g in theirs)
            counts[kind]["predicted"] += len(mine)
            counts[kind]["correct"] += sum(any(overlaps(m, g) for g in theirs) for m in mine)
    per_type = {
        kind: {
            "support": c["gold"],
            "precision": round(c["correct"] / c["predicted"], 3) if c["predicted"] else None,
            "recall": round(c["found"] / c["gold"], 3) if c["gold"] else None,
            "supported": kind in OURS,
        }
        for kind, c in counts.items()
    }
    supported = [counts[k] for k in OURS]
    return {
        "verifier": "pii",
        "labelled_set": "presidio-evaluator 0.2.5 PresidioSentenceFaker, 1,000 en_US sentences, seed 42",
        "size": len(rows),
        "precision": round(sum(c["correct"] for c in supported) / max(1, sum(c["predicted"] for c in supported)), 3),
        "recall": round(sum(c["found"] for c in supported) / max(1, sum(c["gold"] for c in supported)), 3),
        "per_type": per_type,
        "throughput_rps": round(len(rows) / elapsed, 1),
        "label_source": "presidio-evaluator's generated sentences with known spans (tests/data/pii)",
    }


if __name__ == "__main__":
    print(json.dumps(row(), indent=2))
