"""quality on tests/data/quality/labelled.jsonl: real SmolLM2-135M samples from the offline quickstart, labelled good
or junk by hand (how: tests/data/quality/README.md). Precision and recall are those of "junk": the share of rejected
samples that are junk, and the share of junk samples rejected. `dev` rows were read while the rules were written;
`held_out` rows were labelled before the verifier ever ran on them (one regex bug they exposed was fixed after:
see the README). Few samples of a 135M model are good, so precision rests on few good rows: κ says how few.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from synth.verify.protocol import VerifierContext
from synth.verify.registry import build

from ._metrics import binary_scores, make_record, verify_timed

ROOT = Path(__file__).resolve().parents[2]
LABELLED = ROOT / "tests" / "data" / "quality" / "labelled.jsonl"
QUICKSTART = ROOT / "configs" / "quickstart.yaml"
THROUGHPUT_RECORDS = 20_000
# Defects a reader sees on the surface, which quality targets; the others (off-task, not a task, incomplete,
# degenerate) need a judge that reads for meaning.
SURFACE_DEFECTS = {"echo", "scaffolding", "meta", "refusal", "wrong_language"}


class NoClaims:
    """quality never claims anything; a verifier context still needs a claim index."""

    async def claim(self, namespace: str, key: str, owner: str) -> str:
        raise AssertionError("quality does not claim keys")


def quickstart_options() -> dict[str, Any]:
    """quality's options as the quickstart, where the labelled samples come from, sets them."""
    for entry in yaml.safe_load(QUICKSTART.read_text())["verifiers"]:
        if entry == "quality" or (isinstance(entry, dict) and entry["name"] == "quality"):
            return {} if isinstance(entry, str) else {k: v for k, v in entry.items() if k != "name"}
    raise AssertionError("configs/quickstart.yaml does not run quality")


def row() -> dict[str, object]:
    rows = [json.loads(line) for line in LABELLED.read_text().splitlines()]
    context = VerifierContext(claims=NoClaims(), count_tokens=len, text_fields=("instruction", "input", "output"))
    options = quickstart_options()
    verifier = build("quality", options, context)
    records = [make_record(r["id"], r["task"], r["sample"]) for r in rows]
    verdicts, _ = verify_timed(verifier, records)
    rejected = [not v.passed for v in verdicts]
    truth = [r["label"] == "junk" for r in rows]
    scores = binary_scores(truth, rejected)
    splits = []
    for split in ("held_out", "dev"):
        picked = [i for i, r in enumerate(rows) if r["split"] == split]
        if not picked:
            continue
        s = binary_scores([truth[i] for i in picked], [rejected[i] for i in picked])
        splits.append(f"{split} ({len(picked)}): P {s['precision']:.3f} R {s['recall']:.3f}")
    surface = [i for i, r in enumerate(rows) if set(r["defects"]) & SURFACE_DEFECTS]
    caught = sum(rejected[i] for i in surface)
    splits.append(f"surface-defect junk ({len(surface)}): R {caught / len(surface):.3f}")
    repeated = (records * (THROUGHPUT_RECORDS // len(records) + 1))[:THROUGHPUT_RECORDS]
    _, rps = verify_timed(verifier, repeated)
    return {
        "verifier": "quality",
        "labelled_set": f"SmolLM2-135M quickstart + paraphrase: {sum(truth)} junk, {len(rows) - sum(truth)} good",
        "positive": "junk (rejected)",
        "size": len(rows),
        "precision": scores["precision"],
        "recall": scores["recall"],
        "kappa": scores["kappa"],
        "throughput_rps": rps,
        "label_source": "hand-labelled (tests/data/quality/README.md)",
        "notes": "; ".join([*splits, f"options {options or 'default'} (as in configs/quickstart.yaml)"]),
    }
