"""The card's PNGs. matplotlib's object API (Figure + its Agg canvas): no pyplot state, no display needed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

DPI = 110
ACCEPTED, REJECTED, TARGET = "#2a9d8f", "#e76f51", "#264653"
MAX_BARS = 30  # categories beyond this are summed into "other" so a label stays readable
REASON_COLOURS = ("#e76f51", "#f4a261", "#e9c46a", "#8ab17d", "#b5838d", "#6d6875", "#9c6644", "#bc4749")


def _save(figure: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=DPI)
    return path


def _height(rows: int) -> float:
    return max(2.4, 0.32 * rows + 1.2)


def counts(path: Path, accepted: Mapping[str, int], targets: Mapping[str, int]) -> Path:
    """Accepted records per category as bars, each category's target as a tick."""
    names = sorted(set(accepted) | set(targets))[:MAX_BARS]
    figure = Figure(figsize=(8, _height(len(names))))
    ax = figure.subplots()
    rows = range(len(names))
    ax.barh(rows, [accepted.get(n, 0) for n in names], color=ACCEPTED, label="accepted")
    with_target = [(i, targets[n]) for i, n in enumerate(names) if n in targets]
    if with_target:
        ax.scatter([t for _, t in with_target], [i for i, _ in with_target], marker="|", s=300, color=TARGET,
                   linewidths=2.5, label="target", zorder=3)  # fmt: skip
    ax.set_yticks(list(rows), names)
    ax.invert_yaxis()
    ax.set_xlabel("records")
    ax.set_title("Accepted records per category against target")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize="small")
    return _save(figure, path)


def acceptance(path: Path, verifiers: Mapping[str, tuple[int, Mapping[str, int]]]) -> Path:
    """Per verifier: samples it passed, and its rejections stacked by reason."""
    names = list(verifiers)
    reasons = sorted({r for _, by in verifiers.values() for r in by})
    figure = Figure(figsize=(8, _height(len(names))))
    ax = figure.subplots()
    rows = range(len(names))
    left = [float(verifiers[n][0]) for n in names]
    ax.barh(rows, left, color=ACCEPTED, label="passed")
    for number, reason in enumerate(reasons):
        widths = [float(verifiers[n][1].get(reason, 0)) for n in names]
        colour = REASON_COLOURS[number % len(REASON_COLOURS)]
        ax.barh(rows, widths, left=left, color=colour, label=f"rejected: {reason}")
        left = [a + b for a, b in zip(left, widths, strict=True)]
    ax.set_yticks(list(rows), names)
    ax.invert_yaxis()
    ax.set_xlabel("samples judged")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title("Acceptance by verifier and reason")
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize="small")
    return _save(figure, path)


def cost(path: Path, per_accepted: Mapping[str, float]) -> Path:
    names = sorted(per_accepted)[:MAX_BARS]
    figure = Figure(figsize=(8, _height(len(names))))
    ax = figure.subplots()
    ax.barh(range(len(names)), [per_accepted[n] for n in names], color=TARGET)
    ax.set_yticks(list(range(len(names))), names)
    ax.invert_yaxis()
    ax.set_xlabel("USD per accepted sample (generation + verification)")
    ax.set_title("Cost per accepted sample")
    return _save(figure, path)


def token_lengths(path: Path, prompts: Sequence[int], responses: Sequence[int], tokenizer: str) -> Path:
    figure = Figure(figsize=(9, 3.4))
    for ax, values, title in zip(figure.subplots(1, 2), (prompts, responses), ("prompts", "responses"), strict=True):
        ax.hist(values, bins=min(40, max(5, len(set(values)))), color=ACCEPTED)
        ax.set_title(f"{title} (n={len(values):,})")
        ax.set_xlabel(f"tokens ({tokenizer})")
        ax.set_ylabel("samples")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    return _save(figure, path)


def nearest_neighbour(path: Path, similarities: Sequence[float]) -> Path:
    figure = Figure(figsize=(8, 3.4))
    ax = figure.subplots()
    ax.hist(similarities, bins=40, range=(min(0.0, min(similarities, default=0.0)), 1.0), color=TARGET)
    ax.set_xlabel("cosine similarity to the nearest other response (all-MiniLM-L6-v2)")
    ax.set_ylabel("responses")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title("Nearest-neighbour similarity (near 1: near-duplicates)")
    return _save(figure, path)


def scores(path: Path, by_verifier: Mapping[str, Sequence[float]]) -> Path:
    names = list(by_verifier)
    figure = Figure(figsize=(4 * max(1, len(names)), 3.2))
    axes = figure.subplots(1, len(names), squeeze=False)[0]
    for ax, name in zip(axes, names, strict=True):
        values = by_verifier[name]
        ax.hist(values, bins=min(30, max(5, len(set(values)))), color=ACCEPTED)
        ax.set_title(f"{name} (n={len(values):,})")
        ax.set_xlabel("score")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0].set_ylabel("samples")
    return _save(figure, path)
