"""`synth card`: a README.md a person reads before training on the data, with HF-style YAML front matter, PNG
plots under plots/, and every number it prints in card.json (what tests and scripts check against).

Sections: summary; counts per category against targets; acceptance by verifier and reason; cost per accepted
sample; token lengths of prompts and responses; diversity; verifier evidence; lineage; known limitations.
"""

from __future__ import annotations

import json
import math
import statistics
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from synth import __version__
from synth.dataset.balance import file_targets, spec_targets
from synth.dataset.diversity import EmbeddingSpread, distinct_n, spread
from synth.dataset.index import RecordIndex
from synth.dataset.runs import RunSet
from synth.dataset.stats import SAMPLE_SIZE, CardStats, Texts, gather
from synth.store.atomic import write_atomic

NEAR_DUPLICATE = 0.95
TASK_CATEGORIES = {"doc_qa": "question-answering", "translate": "translation", "backtranslation": "translation"}
HIGH_REJECTION = 0.5


@dataclass(frozen=True)
class Measures:
    """Text measures over the sampled accepted records."""

    tokenizer: str
    prompt_tokens: list[int]
    response_tokens: list[int]
    distinct: dict[int, float | None]
    spread: EmbeddingSpread | None


def measure(sample: Sequence[Texts], model: str, embed: bool = True) -> Measures:
    from synth.llm import token_counter

    count = token_counter(model)
    responses = [t.response for t in sample]
    spread_ = None
    if embed and len(sample) >= 2:
        from synth.llm.embeddings import load_embedder

        spread_ = spread(load_embedder().encode(responses))
    return Measures(
        tokenizer=f"litellm token_counter for {model}",
        prompt_tokens=[count(t.prompt) for t in sample],
        response_tokens=[count(r) for r in responses],
        distinct={n: distinct_n(responses, n) for n in (1, 2, 3)},
        spread=spread_,
    )


def summary(values: Sequence[int]) -> dict[str, float | int | None]:
    if not values:
        return {"mean": None, "median": None, "p90": None, "max": None}
    ordered = sorted(values)
    p90 = ordered[math.ceil(0.9 * len(ordered)) - 1]  # nearest rank
    return {"mean": statistics.fmean(ordered), "median": statistics.median(ordered), "p90": p90, "max": ordered[-1]}


def card_numbers(stats: CardStats, measures: Measures, targets: dict[str, int], targets_from: str) -> dict[str, Any]:
    numbers = stats.as_dict()
    spread_ = measures.spread
    nearest = [float(x) for x in spread_.nearest] if spread_ is not None else []
    numbers |= {
        "synth_version": __version__,
        "targets": targets,
        "targets_from": targets_from or "none",
        "sample": {"size": len(measures.prompt_tokens), "of_accepted": stats.accepted},
        "tokens": {"tokenizer": measures.tokenizer, "prompt": summary(measures.prompt_tokens),
                   "response": summary(measures.response_tokens)},
        "diversity": {
            **{f"distinct_{n}": value for n, value in measures.distinct.items()},
            "embedding_dispersion": spread_.dispersion if spread_ else None,
            "mean_pairwise_similarity": spread_.mean_pairwise_similarity if spread_ else None,
            "nearest_neighbour_mean": statistics.fmean(nearest) if nearest else None,
            "near_duplicate_share": sum(x >= NEAR_DUPLICATE for x in nearest) / len(nearest) if nearest else None,
        },
    }  # fmt: skip
    return numbers


def make_card(
    paths: Sequence[Path], out: Path, targets_file: Path | None = None, sample_size: int = SAMPLE_SIZE
) -> dict[str, Any]:
    """Writes README.md, card.json and plots/ for the runs at `paths` into `out`; returns card.json's numbers."""
    runs = RunSet(paths)
    targets, source = (
        (file_targets(targets_file), f"--targets {targets_file.name}") if targets_file else spec_targets(runs)
    )
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".synth-card-", dir=out) as work:
        index = RecordIndex(Path(work) / "card.sqlite")
        try:
            stats = gather(runs, index, sample_size)
        finally:
            index.close()
    model = stats.lineage.models.most_common(1)[0][0] if stats.lineage.models else "gpt-4o-mini"
    measures = measure(stats.sample, model)
    numbers = card_numbers(stats, measures, targets, source)
    images = draw(out / "plots", stats, measures, targets)
    text = front_matter(numbers, out) + render(numbers, images)
    write_atomic(out / "card.json", [json.dumps(numbers, indent=2) + "\n"])
    write_atomic(out / "README.md", [text])
    return numbers


def draw(folder: Path, stats: CardStats, measures: Measures, targets: dict[str, int]) -> dict[str, str]:
    """Every plot the data allows; {name: path relative to the card}."""
    from synth.dataset import plots  # matplotlib costs every `synth` command ~0.5 s to import: only a card pays it

    made: dict[str, Path] = {}
    accepted = {name: c.accepted for name, c in stats.categories.items()}
    made["counts"] = plots.counts(folder / "counts.png", accepted, targets)
    verifiers = {name: (v.passed, v.rejected_by_reason) for name, v in stats.in_chain_order()}
    if verifiers:
        made["acceptance"] = plots.acceptance(folder / "acceptance.png", verifiers)
    per_accepted = {n: c.cost_usd / c.accepted for n, c in stats.categories.items() if c.accepted and c.cost_usd}
    if per_accepted:
        made["cost"] = plots.cost(folder / "cost.png", per_accepted)
    if measures.prompt_tokens:
        tokenizer = measures.tokenizer.rsplit(" ", 1)[-1]
        made["tokens"] = plots.token_lengths(
            folder / "token_lengths.png", measures.prompt_tokens, measures.response_tokens, tokenizer
        )
    if measures.spread is not None:
        made["nearest"] = plots.nearest_neighbour(
            folder / "nearest_neighbour.png", [float(x) for x in measures.spread.nearest]
        )
    scored = {name: v.scores for name, v in stats.in_chain_order() if v.scores}
    if scored:
        made["scores"] = plots.scores(folder / "scores.png", scored)
    return {name: f"plots/{path.name}" for name, path in made.items()}


def front_matter(numbers: dict[str, Any], out: Path) -> str:
    tasks = sorted(numbers["lineage"]["tasks"])
    meta: dict[str, Any] = {
        "pretty_name": dataset_name(numbers),
        "license": "other",
        "task_categories": sorted({TASK_CATEGORIES.get(t, "text-generation") for t in tasks} or {"text-generation"}),
        "tags": ["synthetic", "synth", *tasks],
        "size_categories": [size_category(numbers["records"]["accepted"])],
    }
    configs = export_configs(out)
    if configs:
        meta["configs"] = configs
    return "---\n" + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True) + "---\n\n"


def dataset_name(numbers: dict[str, Any]) -> str:
    return ", ".join(sorted({str(run["spec_name"]) for run in numbers["runs"]})) or "synth dataset"


def size_category(n: int) -> str:
    """The Hub's size buckets."""
    bounds = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
              (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M")]  # fmt: skip
    return next((label for bound, label in bounds if n < bound), "100M<n<1B")


def export_configs(out: Path) -> list[dict[str, Any]]:
    """The Hub's `configs` for an export in the same folder (JSONL or Parquet files per split)."""
    path = out / "export.json"
    if not path.exists():
        return []
    exported = json.loads(path.read_text())
    suffix = {"jsonl": ".jsonl", "parquet": ".parquet"}.get(exported.get("container", ""))
    if suffix is None:
        return []
    files = [{"split": name, "path": f"{name}{suffix}"} for name in exported.get("splits", {})]
    return [{"config_name": "default", "data_files": files}]


# --- the README's sections ----------------------------------------------------------------------------------------


def money(value: float | None) -> str:
    return "—" if value is None else f"${value:,.4f}"


def percent(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"


def number(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "—"
    return f"{value:,}" if isinstance(value, int) else f"{value:.{digits}f}"


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return [*lines, *("| " + " | ".join(cells) + " |" for cells in rows), ""]


def image(images: dict[str, str], name: str, alt: str) -> list[str]:
    return [f"![{alt}]({images[name]})", ""] if name in images else []


def render(n: dict[str, Any], images: dict[str, str]) -> str:
    sections = [
        _title(n), _summary(n), _counts(n, images), _acceptance(n, images), _cost(n, images), _tokens(n, images),
        _diversity(n, images), _evidence(n, images), _lineage(n), _limitations(n),
    ]  # fmt: skip
    return "\n".join(line for section in sections for line in section)


def _title(n: dict[str, Any]) -> list[str]:
    name = dataset_name(n)
    tasks = ", ".join(n["lineage"]["tasks"]) or "no"
    runs = len(n["runs"])
    return [f"# {name}", "", f"Synthetic {tasks} data generated and verified by synth {n['synth_version']} "
            f"from {runs} run{'s' * (runs != 1)}. Every record keeps its lineage (spec, template, model, seed) "
            "and every verifier's verdict.", ""]  # fmt: skip


def _summary(n: dict[str, Any]) -> list[str]:
    r, s = n["records"], n["spend"]
    rows = [
        ["accepted records", number(r["accepted"])],
        ["rejected records", number(r["rejected"])],
        ["failed items", number(r["failed"])],
        ["categories", number(len(n["categories"]))],
        ["records stored twice, counted once", number(r["duplicates"])],
        ["spend", money(s["total_usd"])],
        ["of which generation / verification", f"{money(s['generation_usd'])} / {money(s['verification_usd'])}"],
        ["cost per accepted sample", money(s["cost_per_accepted_usd"])],
    ]  # fmt: skip
    return ["## Summary", "", *table(["measure", "value"], rows)]


def _counts(n: dict[str, Any], images: dict[str, str]) -> list[str]:
    targets = n["targets"]
    rows = []
    for name in sorted(set(n["categories"]) | set(targets)):
        c = n["categories"].get(name, {"accepted": 0, "rejected": 0, "failed": 0, "rejected_by_reason": {}})
        target = targets.get(name)
        fill = percent(c["accepted"] / target) if target else "—"
        reason = next(iter(c["rejected_by_reason"]), "—")
        rows.append(
            [name, number(target), number(c["accepted"]), fill, number(c["rejected"]), number(c["failed"]), reason]
        )
    header = ["category", "target", "accepted", "fill", "rejected", "failed", "main rejection reason"]
    intro = f"Targets: {n['targets_from']}."
    return [
        "## Counts per category",
        "",
        intro,
        "",
        *table(header, rows),
        *image(images, "counts", "accepted per category"),
    ]


def _acceptance(n: dict[str, Any], images: dict[str, str]) -> list[str]:
    rows = []
    for name, v in n["verifiers"].items():
        reasons = ", ".join(f"{reason} {count:,}" for reason, count in v["rejected_by_reason"].items()) or "—"
        rows.append([name, ", ".join(v["versions"]), number(v["seen"]), number(v["passed"]), percent(v["pass_rate"]),
                     number(v["errors"]), reasons])  # fmt: skip
    note = "`parse` is the task's own check of the model's output; the others run in the spec's order, and a "
    note += "sample stops at its first rejection."
    header = ["verifier", "version", "judged", "passed", "pass rate", "errors", "rejections by reason"]
    body = [note, "", *table(header, rows)] if rows else ["No verifier judged these records.", ""]
    return ["## Acceptance by verifier and reason", "", *body, *image(images, "acceptance", "acceptance by verifier")]


def _cost(n: dict[str, Any], images: dict[str, str]) -> list[str]:
    s = n["spend"]
    rows = [[name, money(c["cost_usd"]), number(c["accepted"]), money(c["cost_per_accepted_usd"])]
            for name, c in n["categories"].items()]  # fmt: skip
    lines = [f"Spent {money(s['total_usd'])}: {money(s['generation_usd'])} generating, "
             f"{money(s['verification_usd'])} verifying; {money(s['cost_per_accepted_usd'])} per accepted sample "
             "(cached calls cost nothing).", ""]  # fmt: skip
    header = ["category", "spend", "accepted", "per accepted"]
    return [
        "## Cost per accepted sample",
        "",
        *lines,
        *table(header, rows),
        *image(images, "cost", "cost per accepted sample"),
    ]


def _tokens(n: dict[str, Any], images: dict[str, str]) -> list[str]:
    t, sample = n["tokens"], n["sample"]
    rows = [[which, *(number(t[which][k], 1) if isinstance(t[which][k], float) else number(t[which][k])
                      for k in ("mean", "median", "p90", "max"))] for which in ("prompt", "response")]  # fmt: skip
    intro = f"Counted with {t['tokenizer']} (cl100k_base where litellm does not know the model's tokenizer), over "
    intro += f"{sample['size']:,} of {sample['of_accepted']:,} accepted records."
    header = ["tokens", "mean", "median", "p90", "max"]
    return ["## Token lengths", "", intro, "", *table(header, rows), *image(images, "tokens", "token lengths")]


def _diversity(n: dict[str, Any], images: dict[str, str]) -> list[str]:
    d = n["diversity"]
    rows = [
        ["distinct-1 / distinct-2 / distinct-3 (responses)", " / ".join(number(d[f"distinct_{k}"]) for k in (1, 2, 3))],
        ["embedding dispersion (mean cosine distance to the centroid)", number(d["embedding_dispersion"])],
        ["mean pairwise cosine similarity", number(d["mean_pairwise_similarity"])],
        ["mean nearest-neighbour similarity", number(d["nearest_neighbour_mean"])],
        [f"responses with a near-duplicate (cosine ≥ {NEAR_DUPLICATE})", percent(d["near_duplicate_share"])],
    ]
    intro = f"Over the same {n['sample']['size']:,} sampled responses; embeddings by all-MiniLM-L6-v2."
    return [
        "## Diversity",
        "",
        intro,
        "",
        *table(["measure", "value"], rows),
        *image(images, "nearest", "nearest-neighbour similarity"),
    ]


def _evidence(n: dict[str, Any], images: dict[str, str]) -> list[str]:
    lines = ["## Verifier evidence", ""]
    rows = []
    for name, v in n["verifiers"].items():
        details = ", ".join(f"{key} {value:.3g}" for key, value in v["detail_means"].items()) or "—"
        evidence = ", ".join(f"{key} {value:.3f}" for key, value in v["evidence"].items()) or "—"
        rows.append([name, number(v["scores"]["mean"]), evidence, details])
    lines += table(["verifier", "mean score", "κ / AUC", "mean of numeric details"], rows) if rows else ["None.", ""]
    lines += image(images, "scores", "score distributions")
    edits = [[name, number(v["changed_records"]), ", ".join(f"{k} {c:,}" for k, c in v["spans_by_kind"].items()) or "—"]
             for name, v in n["verifiers"].items() if v["changed_records"]]  # fmt: skip
    if edits:
        lines += ["Samples verifiers rewrote (e.g. PII scrubbed), with the spans by kind:", ""]
        lines += table(["verifier", "records changed", "spans by kind"], edits)
    return lines


def _lineage(n: dict[str, Any]) -> list[str]:
    lin = n["lineage"]
    verifiers = ", ".join(f"{name} {'/'.join(v['versions'])}" for name, v in n["verifiers"].items()) or "none"
    rows = [
        ["models", ", ".join(f"{m} ({c:,})" for m, c in lin["models"].items()) or "—"],
        ["templates", ", ".join(f"{t} ({'/'.join(shas)})" for t, shas in lin["templates"].items()) or "—"],
        ["synth versions", ", ".join(lin["synth_versions"]) or "—"],
        ["verifier versions", verifiers],
        ["specs", ", ".join(f"{name} ({sid})" for sid, name in lin["specs"].items()) or "—"],
        ["runs", ", ".join(r["run_id"] for r in n["runs"])],
        ["created", " to ".join(x for x in lin["created"] if x) or "—"],
    ]
    return ["## Lineage", "", "Every record's full lineage is in the runs (and in an export's lineage.jsonl).", "",
            *table(["of the accepted records", ""], rows)]  # fmt: skip


def _limitations(n: dict[str, Any]) -> list[str]:
    return ["## Known limitations", "", *(f"- {item}" for item in limitations(n)), ""]


def limitations(n: dict[str, Any]) -> list[str]:
    """What a reader must know before training on the data, from what the numbers show and what did not run."""
    found = []
    models = ", ".join(n["lineage"]["models"]) or "the generation model"
    found.append(f"Synthetic text written by {models}: it carries their errors and biases; the verifiers above "
                 "check what they check, not truth in general.")  # fmt: skip
    if any("mock" in m for m in n["lineage"]["models"]):
        found.append("Made with a mock model: templated text for testing the pipeline, not training data.")
    thin = [name for name, target in n["targets"].items() if n["categories"].get(name, {}).get("accepted", 0) < target]
    if thin:
        found.append(
            f"{len(thin)} categor{'y is' if len(thin) == 1 else 'ies are'} below target: {', '.join(sorted(thin)[:8])}."
        )
    generated = n["records"]["accepted"] + n["records"]["rejected"]
    if generated and n["records"]["rejected"] / generated >= HIGH_REJECTION:
        found.append(f"{percent(n['records']['rejected'] / generated)} of generated samples were rejected: what "
                     "remains is what passed the checks, which may narrow the distribution.")  # fmt: skip
    names = set(n["verifiers"])
    for word, what in (("judge", "No LLM judge scored these samples: quality beyond the listed checks is unmeasured."),
                       ("dedup", "No deduplication verifier ran."),
                       ("decontam", "No decontamination check against public benchmarks ran.")):  # fmt: skip
        if not any(word in name for name in names):
            found.append(what)
    if n["sample"]["size"] < n["sample"]["of_accepted"]:
        found.append(f"Token lengths and diversity are measured on a seeded sample of {n['sample']['size']:,} records.")
    share = n["diversity"]["near_duplicate_share"]
    if share:
        found.append(f"{percent(share)} of sampled responses have a near-duplicate (cosine ≥ {NEAR_DUPLICATE}).")
    return found
