"""synth card: renders README.md (HF-style front matter), card.json and real PNG plots, and every number on it is
recomputed here from the records themselves (read with synth.read_records, compacted by id as an export does)."""

from __future__ import annotations

import json
import math
import re
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from matplotlib.image import imread

import synth
from synth.cli import main
from synth.dataset.card import make_card
from synth.llm import token_counter
from synth.llm.embeddings import load_embedder
from synth.records import Record, SampleChange, Usage, Verdict
from synth.store.run_store import RunStore
from synth.testing.records import failure, new_run, record, run_spec, write_records
from tests.dataset_runs import code_sample

QUOTAS_A = {"science/physics": 20, "science/biology": 10}
QUOTAS_B = {"code/easy": 8}


def verdict(
    verifier: str, passed: bool, reason: str | None = None, score: float | None = None, **extra: Any
) -> Verdict:
    return Verdict(verifier=verifier, version="2" if verifier == "judge" else "1", passed=passed, reason=reason,
                   score=score, **extra)  # fmt: skip


def judged(i: int, passed: bool) -> list[Verdict]:
    score = 4.0 + (i % 3) / 2 if passed else 2.0
    usage = Usage(prompt_tokens=50, completion_tokens=10, cost_usd=0.001)
    details = {"aggregate": {"clarity": score, "correctness": score - 0.5}, "scores": {"judge-a": {"clarity": 4}}}
    reason = None if passed else "judge_score_low"
    return [verdict("length", True, details={"chars": 40 + i}),
            verdict("judge", passed, reason, score, usage=usage, details=details)]  # fmt: skip


def pii(i: int) -> Verdict:
    changes = [SampleChange(field="output", spans=[(0, 5), (9, 12)], kinds=["EMAIL", "PHONE"], before_sha256="a",
                            after_sha256="b")] if i % 4 == 0 else []  # fmt: skip
    return verdict("pii", True, changes=changes)


def instruction(i: int, topic: str) -> dict[str, Any]:
    thing = ["heat", "light", "cells"][i % 3]
    return {"instruction": f"Describe {topic} experiment {i} in plain words.", "input": "",
            "output": f"Experiment {i} about {topic} shows how {thing} behaves."}  # fmt: skip


def science_records() -> list[Record]:
    rows = []
    for i in range(15):  # physics: 12 pass every verifier, 3 fail the judge
        ok = i < 12
        checks = [*judged(i, ok), *([pii(i)] if ok else [])]
        rows.append(record("instructions", instruction(i, "physics"), "science/physics", i, cost_usd=0.002,
                           verdicts=checks, status="accepted" if ok else "rejected",
                           reason=None if ok else "judge_score_low"))  # fmt: skip
    short = verdict("length", False, "too_short", details={"chars": 3})
    rows.append(record("instructions", instruction(20, "physics"), "science/physics", 20, status="rejected",
                       reason="too_short", verdicts=[short]))  # fmt: skip
    rows.append(record("instructions", {}, "science/physics", 21, status="rejected", reason="parse_error",
                       verdicts=[verdict("parse", False, "parse_error", details={"error": "no JSON"})]))  # fmt: skip
    for i in range(7):  # biology: 5 accepted, 2 caught by decontamination
        passed = i < 5
        checks = [*judged(i, True), pii(i), verdict("decontaminate", passed, None if passed else "benchmark_overlap",
                                                    details={"overlap": 0.1 if passed else 0.9})]  # fmt: skip
        reason = None if passed else "benchmark_overlap"
        rows.append(record("instructions", instruction(i, "biology"), "science/biology", i, verdicts=checks,
                           status="accepted" if passed else "rejected", reason=reason))  # fmt: skip
    return sorted(rows, key=lambda r: r.lineage.category)


def code_records() -> list[Record]:
    rows = []
    for i in range(8):
        passed = i < 6
        exec_ = verdict("code_exec", passed, None if passed else "tests_failed", 1.0 if passed else 1 / 3,
                        details={"tests_expected": 3, "tests_passed": 3 if passed else 1, "wall_s": 0.05})  # fmt: skip
        realism = verdict("realism", True, None, 0.6, details={"p_real": 0.6, "cv_auc": 0.71, "model_id": "m"})
        reason = None if passed else "tests_failed"
        rows.append(record("code", code_sample(i), "code/easy", i, model="openai/coder", template="code.j2",
                           verdicts=[exec_, *([realism] if passed else [])],
                           status="accepted" if passed else "rejected", reason=reason))  # fmt: skip
    return rows


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Run a (instructions), run b (code), and run c: a rerun of run a's spec that stored three records again."""
    root = tmp_path_factory.mktemp("card")
    science = science_records()
    failed = [failure("science/biology", ("failed", k)) for k in range(2)]
    write_records(new_run(root / "a", run_spec("instructions", QUOTAS_A)), science, 4, failed, cost_per_item_usd=0.01)
    write_records(new_run(root / "b", run_spec("code", QUOTAS_B)), code_records(), 4, cost_per_item_usd=0.03)
    again = [r for r in science if r.status == "accepted"][:3]
    write_records(new_run(root / "c", run_spec("instructions", QUOTAS_A)), again, 4, batch_salt="rerun")
    return [root / "a", root / "b", root / "c"]


@pytest.fixture(scope="module")
def card(runs: list[Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("card-out")
    return out, make_card(runs, out)


def compacted(runs: list[Path]) -> dict[str, Record]:
    """Every record once, the later copy winning, straight from the runs through the public API."""
    found: dict[str, Record] = {}
    for run in runs:
        for status in ("accepted", "rejected"):
            found.update((r.record_id, r) for r in synth.read_records(run, status))  # type: ignore[arg-type]
    return found


def readme(out: Path) -> tuple[dict[str, Any], str]:
    text = (out / "README.md").read_text()
    match = re.match(r"---\n(.*?)\n---\n", text, re.DOTALL)
    assert match is not None
    return yaml.safe_load(match.group(1)), text[match.end() :]


# --- counts, acceptance, cost ----------------------------------------------------------------------------------------


def test_counts_per_category_and_targets_match_the_records(runs, card):
    out, numbers = card
    records = compacted(runs)
    by_category: dict[str, Counter[str]] = defaultdict(Counter)
    for r in records.values():
        by_category["/".join(r.lineage.category)][r.status] += 1
    made = {r.lineage.item_id for r in records.values()}
    failed = [f for run in runs for f in synth.read_failed(run) if f.item_id not in made]
    for f in failed:
        by_category["/".join(f.category)]["failed"] += 1
    assert {n: {k: c[k] for k in ("accepted", "rejected", "failed")} for n, c in numbers["categories"].items()} == {
        n: {k: c[k] for k in ("accepted", "rejected", "failed")} for n, c in by_category.items()
    }
    assert numbers["records"] == {"read": 35, "duplicates": 3, "accepted": 23, "rejected": 9, "failed": 2}
    assert numbers["targets"] == {**QUOTAS_A, **QUOTAS_B}
    _, body = readme(out)
    assert "| science/physics | 20 | 12 | 60.0% | 5 | 0 | judge_score_low |" in body
    assert "| science/biology | 10 | 5 | 50.0% | 2 | 2 | benchmark_overlap |" in body
    assert "| code/easy | 8 | 6 | 75.0% | 2 | 0 | tests_failed |" in body


def test_acceptance_by_verifier_and_reason_matches_the_verdicts(runs, card):
    out, numbers = card
    seen: Counter[str] = Counter()
    passed: Counter[str] = Counter()
    reasons: dict[str, Counter[str]] = defaultdict(Counter)
    for r in compacted(runs).values():
        for v in r.verdicts:
            seen[v.verifier] += 1
            passed[v.verifier] += v.passed
            if not v.passed:
                reasons[v.verifier][v.reason or ""] += 1
    got = numbers["verifiers"]
    assert set(got) == {"code_exec", "decontaminate", "judge", "length", "parse", "pii", "realism"}
    for name, stats in got.items():
        assert (stats["seen"], stats["passed"]) == (seen[name], passed[name])
        assert stats["rejected_by_reason"] == dict(reasons[name])
    _, body = readme(out)
    assert "| judge | 2 | 22 | 19 | 86.4% | 0 | judge_score_low 3 |" in body
    assert "| decontaminate | 1 | 7 | 5 | 71.4% | 0 | benchmark_overlap 2 |" in body
    assert "| code_exec | 1 | 8 | 6 | 75.0% | 0 | tests_failed 2 |" in body


def test_cost_per_accepted_sample_is_everything_spent_over_what_was_accepted(runs, card):
    out, numbers = card
    spent = sum(RunStore(run).totals().cost_usd for run in runs)
    generation = sum(RunStore(run).totals().generation.cost_usd for run in runs)
    judge_calls = sum(1 for run in runs for r in synth.read_records(run, "accepted") for v in r.verdicts if v.usage)
    judge_calls += sum(1 for run in runs for r in synth.read_records(run, "rejected") for v in r.verdicts if v.usage)
    assert numbers["spend"]["total_usd"] == pytest.approx(spent)
    assert numbers["spend"]["verification_usd"] == pytest.approx(0.001 * judge_calls)
    assert numbers["spend"]["generation_usd"] == pytest.approx(generation)
    assert numbers["spend"]["cost_per_accepted_usd"] == pytest.approx(spent / 23)
    _, body = readme(out)
    assert f"| cost per accepted sample | ${spent / 23:,.4f} |" in body


# --- text measures -------------------------------------------------------------------------------------------------


def expected_texts(runs: list[Path]) -> list[tuple[str, str]]:
    pairs = []
    for r in compacted(runs).values():
        if r.status != "accepted":
            continue
        s = r.sample
        if r.task == "instructions":
            pairs.append((s["instruction"], s["output"]))
        else:
            prompt = f"{s['problem']}\n\nUse this signature:\n```python\n{s['signature']}\n```"
            pairs.append((prompt, f"```python\n{s['solution'].rstrip()}\n```"))
    return pairs


def distinct(texts: list[str], n: int) -> float:
    grams = [
        tuple(ws[i : i + n]) for t in texts for ws in [re.findall(r"\w+", t.lower())] for i in range(len(ws) - n + 1)
    ]
    return len(set(grams)) / len(grams)


def test_token_lengths_are_the_models_token_counts_of_prompts_and_responses(runs, card):
    _, numbers = card
    pairs = expected_texts(runs)
    count = token_counter("openai/mock-model")  # the most common generation model of the accepted records
    prompts = sorted(count(p) for p, _ in pairs)
    responses = sorted(count(r) for _, r in pairs)
    tokens = numbers["tokens"]
    assert numbers["sample"] == {"size": 23, "of_accepted": 23}
    assert tokens["prompt"]["mean"] == pytest.approx(sum(prompts) / len(prompts))
    assert tokens["prompt"]["max"] == prompts[-1]
    assert tokens["response"]["p90"] == responses[math.ceil(0.9 * len(responses)) - 1]
    assert tokens["response"]["median"] == pytest.approx(float(np.median(responses)))


def test_diversity_is_distinct_n_and_embedding_spread_of_the_responses(runs, card):
    _, numbers = card
    responses = [r for _, r in expected_texts(runs)]
    diversity = numbers["diversity"]
    for n in (1, 2, 3):
        assert diversity[f"distinct_{n}"] == pytest.approx(distinct(responses, n))
    vectors = load_embedder().encode(responses)
    similarity = vectors @ vectors.T
    np.fill_diagonal(similarity, -np.inf)
    nearest = np.clip(similarity.max(axis=1), -1, 1)
    assert diversity["nearest_neighbour_mean"] == pytest.approx(float(nearest.mean()), abs=1e-5)
    assert diversity["near_duplicate_share"] == pytest.approx(float((nearest >= 0.95).mean()))
    centroid = vectors.sum(axis=0) / np.linalg.norm(vectors.sum(axis=0))
    assert diversity["embedding_dispersion"] == pytest.approx(float((1 - vectors @ centroid).mean()), abs=1e-5)


# --- verifier evidence and lineage -----------------------------------------------------------------------------------


def test_verifier_evidence_is_found_by_verifier_name_and_details(runs, card):
    out, numbers = card
    v = numbers["verifiers"]
    judge_scores = [x.score for r in compacted(runs).values() for x in r.verdicts if x.verifier == "judge"]
    assert v["judge"]["scores"]["mean"] == pytest.approx(sum(judge_scores) / len(judge_scores))
    clarity = [
        x.details["aggregate"]["clarity"] for r in compacted(runs).values() for x in r.verdicts if x.verifier == "judge"
    ]
    assert v["judge"]["detail_means"]["aggregate.clarity"] == pytest.approx(sum(clarity) / len(clarity))
    assert v["code_exec"]["detail_means"]["tests_passed"] == pytest.approx((6 * 3 + 2 * 1) / 8)
    assert v["realism"]["evidence"] == {"cv_auc": 0.71}
    assert (v["pii"]["changed_records"], v["pii"]["spans_by_kind"]) == (5, {"EMAIL": 5, "PHONE": 5})
    _, body = readme(out)
    assert "| realism | 0.600 | cv_auc 0.710 |" in body
    assert "| pii | 5 | EMAIL 5, PHONE 5 |" in body


def test_lineage_names_models_templates_versions_and_specs(runs, card):
    _, numbers = card
    accepted = [r for r in compacted(runs).values() if r.status == "accepted"]
    lineage = numbers["lineage"]
    assert lineage["models"] == dict(Counter(r.lineage.model for r in accepted).most_common())
    assert set(lineage["templates"]) == {"t.j2", "code.j2"}
    assert lineage["synth_versions"] == {"0.1.0": 23}
    assert lineage["tasks"] == {"instructions": 17, "code": 6}
    assert {run["spec_id"] for run in numbers["runs"]} == {
        json.loads((r / "run.json").read_text())["spec_id"] for r in runs
    }


# --- the files -----------------------------------------------------------------------------------------------------


def test_the_card_has_hub_front_matter_every_section_and_real_plots(card):
    out, numbers = card
    meta, body = readme(out)
    assert meta["size_categories"] == ["n<1K"]
    assert meta["task_categories"] == ["text-generation"]
    assert {"synthetic", "instructions", "code"} <= set(meta["tags"])
    sections = re.findall(r"^## (.+)$", body, re.MULTILINE)
    assert sections == ["Summary", "Counts per category", "Acceptance by verifier and reason",
                        "Cost per accepted sample", "Token lengths", "Diversity", "Verifier evidence", "Lineage",
                        "Known limitations"]  # fmt: skip
    plots = re.findall(r"!\[[^]]*\]\((plots/[^)]+\.png)\)", body)
    names = ("counts", "acceptance", "cost", "token_lengths", "nearest_neighbour", "scores")
    assert sorted(plots) == sorted(f"plots/{n}.png" for n in names)
    for plot in plots:
        assert (out / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        pixels = imread(out / plot)
        assert min(pixels.shape[:2]) > 200
        assert float(pixels[..., :3].std()) > 0.05  # something is drawn
    assert json.loads((out / "card.json").read_text()) == numbers
    assert "- 3 categories are below target: code/easy, science/biology, science/physics." in body
    assert meta["pretty_name"] == "code-records, instructions-records"
    assert "No deduplication verifier ran." in body


def test_the_cli_writes_a_card(runs, tmp_path):
    result = CliRunner().invoke(main, ["card", *map(str, runs), "--out", str(tmp_path / "card"), "--sample", "5"])
    assert result.exit_code == 0, result.output
    numbers = json.loads((tmp_path / "card" / "card.json").read_text())
    assert numbers["sample"] == {"size": 5, "of_accepted": 23}
    assert "seeded sample of 5 records" in (tmp_path / "card" / "README.md").read_text()
