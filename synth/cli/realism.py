"""`synth realism fit`: how machine-made do a run's samples read? A classifier of real vs generated text."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from synth.cli.exits import handles_errors
from synth.llm.embeddings import DEFAULT_EMBEDDING_MODEL, load_embedder
from synth.realism.model import RealismModel, fit
from synth.realism.texts import real_texts, run_texts

console = Console(highlight=False)
MODEL_FILE = "realism_model.json"
RUN_DIR = click.Path(exists=True, file_okay=False, path_type=Path)


@click.group()
def realism() -> None:
    """Real-vs-synthetic classifier: fit it on real examples and runs, then filter with the `realism` verifier."""


@realism.command(name="fit")
@click.option("--real", "real_path", required=True, type=click.Path(exists=True, path_type=Path),
              help="Real examples: JSONL, CSV, text lines, or a run directory.")  # fmt: skip
@click.option("--field", default="text", show_default=True, help="The text of a real row (JSON key, CSV column).")
@click.option("--run", "runs", required=True, multiple=True, type=RUN_DIR,
              help="A run directory whose accepted samples are the generated side (repeatable).")  # fmt: skip
@click.option("--sample-field", "sample_fields", multiple=True, help="Sample fields to compare (default: the task's).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help=f"Default: FIRST_RUN/{MODEL_FILE}.")
@click.option("--embedding-model", default=DEFAULT_EMBEDDING_MODEL, show_default=True)
@handles_errors
def fit_command(
    real_path: Path, field: str, runs: tuple[Path, ...], sample_fields: tuple[str, ...], out: Path | None,
    embedding_model: str,
) -> None:  # fmt: skip
    """Embed the real rows and the runs' accepted samples, fit logistic regression, and report cross-validated
    ROC AUC (0.5: indistinguishable) overall, per category and per template. Saves the model as JSON."""
    real = real_texts(real_path, field)
    generated = run_texts(runs, sample_fields or None)
    embedder = load_embedder(embedding_model)
    vectors = embedder.encode(real + [g.text for g in generated])  # one call for both sides: full batches
    real_vectors, generated_vectors = vectors[: len(real)], vectors[len(real) :]
    groups = {"category": [g.category for g in generated], "template": [g.template for g in generated]}
    sources = {"real": str(real_path), "real_field": field, "runs": [str(r) for r in runs]}
    model, _ = fit(real_vectors, generated_vectors, groups, embedding_model, sources)
    target = out or runs[0] / MODEL_FILE
    model.save(target)
    console.print(report(model))
    console.print(f"saved {target} (model {model.model_id}): use it with `- {{name: realism, model: {target}}}`")


def report(model: RealismModel) -> Table:
    table = Table(title=f"real vs generated: cross-validated ROC AUC {model.cv_auc} ({model.folds} folds; 0.5 = "
                  f"indistinguishable)", title_justify="left")  # fmt: skip
    for column in ("group", "generated rows", "ROC AUC"):
        table.add_column(column, justify="left" if column == "group" else "right")
    table.add_row("all", str(model.n_synthetic), f"{model.cv_auc:.3f}")
    for kind, groups in model.by_group.items():
        ranked = sorted(groups.items(), key=lambda item: -(item[1].auc or 0.0))
        for name, score in ranked:
            table.add_row(f"{kind}: {name}", str(score.n), "—" if score.auc is None else f"{score.auc:.3f}")
    return table
