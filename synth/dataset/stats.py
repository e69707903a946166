"""What a dataset card reports, gathered in one pass over the kept copy of every record, plus the runs' batch
markers (spend) and failed items.

Verifier evidence is found generically, by verifier name: each verifier's pass rate, rejections by reason,
error verdicts, score distribution, the means of its numeric details (tests passed, p_real, judge criteria...),
run-level figures its details carry (any key naming a kappa or an AUC), and the edits it made (a PII scrub's
spans by kind). A new verifier shows up on the card without a change here.

Text measures (token lengths, diversity) use a seeded sample of at most `sample_size` accepted records: the
ones whose id hashes lowest, so the sample does not depend on the order the runs are read in.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from synth.dataset.index import RecordIndex, category_of
from synth.dataset.kinds import KINDS
from synth.dataset.runs import RunSet

SAMPLE_SIZE = 2000
EVIDENCE_KEY = re.compile(r"kappa|auc", re.IGNORECASE)
MAX_DETAIL_KEYS = 12


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def details_of(verdict: dict[str, Any]) -> dict[str, Any]:
    """A stored verdict's details: JSON text in record files (a column of one type for Arrow), a mapping before."""
    details = verdict.get("details") or {}
    loaded = json.loads(details) if isinstance(details, str) else details
    return loaded if isinstance(loaded, dict) else {}


@dataclass
class VerifierStats:
    position: int = 0
    """Its earliest place in a record's verdicts: the chain's order, for showing them in it."""
    versions: set[str] = field(default_factory=set)
    seen: int = 0
    passed: int = 0
    errors: int = 0
    rejected_by_reason: Counter[str] = field(default_factory=Counter)
    scores: list[float] = field(default_factory=list)
    detail_sums: dict[str, list[float]] = field(default_factory=dict)
    """Numeric detail → [sum, count]; one level of nesting is flattened (judge criteria: aggregate.clarity)."""
    evidence: dict[str, float] = field(default_factory=dict)
    changed: int = 0
    spans_by_kind: Counter[str] = field(default_factory=Counter)

    def add(self, verdict: dict[str, Any]) -> None:
        self.versions.add(str(verdict.get("version", "")))
        self.seen += 1
        if verdict.get("passed"):
            self.passed += 1
        else:
            self.rejected_by_reason[verdict.get("reason") or "unknown"] += 1
        self.errors += bool(verdict.get("error"))
        if _is_number(verdict.get("score")):
            self.scores.append(float(verdict["score"]))
        self._add_details(details_of(verdict))
        changes = verdict.get("changes") or []
        if changes:
            self.changed += 1
            self.spans_by_kind.update(kind for change in changes for kind in change.get("kinds") or ["unlabelled"])

    def _add_details(self, details: dict[str, Any]) -> None:
        flat = {k: v for k, v in details.items() if _is_number(v)}
        for key, value in details.items():
            if isinstance(value, dict):
                flat.update({f"{key}.{k}": v for k, v in value.items() if _is_number(v)})
        for key, value in flat.items():
            if EVIDENCE_KEY.search(key):
                self.evidence[key] = float(value)
            elif key in self.detail_sums or len(self.detail_sums) < MAX_DETAIL_KEYS:
                sums = self.detail_sums.setdefault(key, [0.0, 0])
                sums[0] += float(value)
                sums[1] += 1

    @property
    def pass_rate(self) -> float | None:
        return self.passed / self.seen if self.seen else None

    def detail_means(self) -> dict[str, float]:
        return {key: total / count for key, (total, count) in sorted(self.detail_sums.items()) if count}

    def as_dict(self) -> dict[str, Any]:
        scores = self.scores
        return {
            "versions": sorted(self.versions),
            "seen": self.seen,
            "passed": self.passed,
            "pass_rate": self.pass_rate,
            "errors": self.errors,
            "rejected_by_reason": dict(self.rejected_by_reason.most_common()),
            "scores": {"count": len(scores), "mean": sum(scores) / len(scores) if scores else None},
            "detail_means": self.detail_means(),
            "evidence": self.evidence,
            "changed_records": self.changed,
            "spans_by_kind": dict(self.spans_by_kind.most_common()),
        }


def verifier_labels(verdicts: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Each verdict with its verifier's name; a verifier the chain runs twice (length on two fields) is told
    apart by its place: `length`, then `length #2`."""
    seen: Counter[str] = Counter()
    for verdict in verdicts:
        name = str(verdict["verifier"])
        seen[name] += 1
        yield (name if seen[name] == 1 else f"{name} #{seen[name]}"), verdict


@dataclass
class CategoryStats:
    accepted: int = 0
    rejected: int = 0
    failed: int = 0
    rejected_by_reason: Counter[str] = field(default_factory=Counter)
    cost_usd: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "rejected": self.rejected,
            "failed": self.failed,
            "rejected_by_reason": dict(self.rejected_by_reason.most_common()),
            "cost_usd": self.cost_usd,
            "cost_per_accepted_usd": self.cost_usd / self.accepted if self.accepted else None,
        }


@dataclass
class LineageStats:
    tasks: Counter[str] = field(default_factory=Counter)
    models: Counter[str] = field(default_factory=Counter)
    templates: dict[str, set[str]] = field(default_factory=dict)
    synth_versions: Counter[str] = field(default_factory=Counter)
    specs: dict[str, str] = field(default_factory=dict)
    first_created: str = ""
    last_created: str = ""

    def add(self, row: dict[str, Any]) -> None:
        lineage = row["lineage"]
        self.tasks[row["task"]] += 1
        self.models[lineage["model"]] += 1
        self.templates.setdefault(lineage["template"], set()).add(lineage["template_sha256"][:12])
        self.synth_versions[lineage["synth_version"]] += 1
        self.specs[lineage["spec_id"]] = lineage["spec_name"]
        created = str(lineage.get("created_at") or "")
        if created:
            self.first_created = min(self.first_created or created, created)
            self.last_created = max(self.last_created, created)

    def as_dict(self) -> dict[str, Any]:
        return {
            "tasks": dict(self.tasks.most_common()),
            "models": dict(self.models.most_common()),
            "templates": {name: sorted(shas) for name, shas in sorted(self.templates.items())},
            "synth_versions": dict(self.synth_versions.most_common()),
            "specs": dict(sorted(self.specs.items())),
            "created": [self.first_created, self.last_created],
        }


@dataclass(frozen=True)
class Texts:
    """One accepted record's prompt and response as its kind reads them (chat: system and user / assistant;
    preference: prompt / chosen)."""

    record_id: str
    prompt: str
    response: str


def texts_of(row: dict[str, Any]) -> Texts | None:
    kind = KINDS.get(row["task"])
    try:
        if kind is not None and kind.chat is not None:
            chat = kind.chat(row["sample"])
            return Texts(row["record_id"], "\n\n".join(filter(None, [chat.system, chat.user])), chat.assistant)
        if kind is not None and kind.pair is not None:
            pair = kind.pair(row["sample"])
            return Texts(row["record_id"], pair.prompt, pair.chosen)
    except (KeyError, TypeError):
        return None
    return None


@dataclass
class CardStats:
    runs: list[dict[str, Any]] = field(default_factory=list)
    categories: dict[str, CategoryStats] = field(default_factory=dict)
    verifiers: dict[str, VerifierStats] = field(default_factory=dict)
    lineage: LineageStats = field(default_factory=LineageStats)
    failed_by_error: Counter[str] = field(default_factory=Counter)
    generation_usd: float = 0.0
    verification_usd: float = 0.0
    records_read: int = 0
    duplicates: int = 0
    sample_size: int = SAMPLE_SIZE
    _sample: list[tuple[int, str, Texts]] = field(default_factory=list)

    def add_record(self, row: dict[str, Any]) -> None:
        category = self.categories.setdefault(category_of(row), CategoryStats())
        for position, (label, verdict) in enumerate(verifier_labels(row.get("verdicts") or [])):
            stats = self.verifiers.setdefault(label, VerifierStats(position=position))
            stats.position = min(stats.position, position)
            stats.add(verdict)
        if row["status"] == "rejected":
            category.rejected += 1
            category.rejected_by_reason[row.get("reason") or "unknown"] += 1
            return
        category.accepted += 1
        self.lineage.add(row)
        self._offer(row)

    def add_failed(self, category: str, error_type: str) -> None:
        self.categories.setdefault(category, CategoryStats()).failed += 1
        self.failed_by_error[error_type] += 1

    def add_spend(self, category: str, generation_usd: float, verification_usd: float) -> None:
        self.categories.setdefault(category, CategoryStats()).cost_usd += generation_usd + verification_usd
        self.generation_usd += generation_usd
        self.verification_usd += verification_usd

    def _offer(self, row: dict[str, Any]) -> None:
        """Keeps the `sample_size` accepted records whose ids hash lowest (a heap of the largest kept hash)."""
        rank = int(hashlib.sha256(row["record_id"].encode()).hexdigest()[:15], 16)
        if len(self._sample) >= self.sample_size and -self._sample[0][0] <= rank:
            return
        texts = texts_of(row)
        if texts is None:
            return
        entry = (-rank, texts.record_id, texts)
        if len(self._sample) >= self.sample_size:
            heapq.heapreplace(self._sample, entry)
        else:
            heapq.heappush(self._sample, entry)

    @property
    def sample(self) -> list[Texts]:
        """The sampled records' texts, in id-hash order."""
        return [texts for _, _, texts in sorted(self._sample, key=lambda entry: -entry[0])]

    def in_chain_order(self) -> list[tuple[str, VerifierStats]]:
        """Verifiers as the chain runs them (the task's own `parse` first), first seen first among equals."""
        return sorted(self.verifiers.items(), key=lambda item: item[1].position)

    @property
    def accepted(self) -> int:
        return sum(c.accepted for c in self.categories.values())

    @property
    def rejected(self) -> int:
        return sum(c.rejected for c in self.categories.values())

    @property
    def failed(self) -> int:
        return sum(c.failed for c in self.categories.values())

    @property
    def cost_usd(self) -> float:
        return self.generation_usd + self.verification_usd

    @property
    def cost_per_accepted_usd(self) -> float | None:
        return self.cost_usd / self.accepted if self.accepted else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "runs": self.runs,
            "records": {"read": self.records_read, "duplicates": self.duplicates, "accepted": self.accepted,
                        "rejected": self.rejected, "failed": self.failed},
            "spend": {"generation_usd": self.generation_usd, "verification_usd": self.verification_usd,
                      "total_usd": self.cost_usd, "cost_per_accepted_usd": self.cost_per_accepted_usd},
            "categories": {name: c.as_dict() for name, c in sorted(self.categories.items())},
            "failed_by_error": dict(self.failed_by_error.most_common()),
            "verifiers": {name: v.as_dict() for name, v in self.in_chain_order()},
            "lineage": self.lineage.as_dict(),
        }  # fmt: skip


def gather(runs: RunSet, index: RecordIndex, sample_size: int = SAMPLE_SIZE) -> CardStats:
    """Every record of `runs` (compacted by id through `index`), their failed items and their spend."""
    stats = CardStats(sample_size=sample_size)
    stats.runs = [{"path": str(r.root), "run_id": r.run_id, "spec_id": r.info.get("spec_id"),
                   "spec_name": r.info.get("spec_name")} for r in runs.runs]  # fmt: skip
    index.add(runs.rows())
    index.add_failed(runs.failed())
    stats.records_read, stats.duplicates = index.rows_read, index.duplicates
    for _status, line in runs.pick(index.winners()):
        stats.add_record(json.loads(line))
    for _item, category, _template, error_type in index.failed_not_made():
        stats.add_failed(category, error_type)
    for _run, marker in runs.markers():
        category = "/".join(marker.category)
        stats.add_spend(category, marker.usage.cost_usd, marker.verification_usage.cost_usd)
    return stats
