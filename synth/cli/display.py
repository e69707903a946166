"""What the CLI shows: a live progress bar fed by the executor, and the tables at the end of a run or plan."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from synth.executors.local import RunProgress
from synth.store.totals import Totals

REFRESH_PER_S = 4
MAX_CATEGORY_ROWS = 30


class LiveProgress:
    """A one-line live status: items done/total, accepted, rejected, failed, tokens, cost, rate.

    Only on a terminal: piped into a log, a run prints just its summary.
    """

    def __init__(self, console: Console) -> None:
        self.console = console
        self._live: Live | None = None
        if console.is_terminal:
            self._live = Live(Text("starting…"), console=console, refresh_per_second=REFRESH_PER_S)

    def __enter__(self) -> LiveProgress:
        if self._live is not None:
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)

    def update(self, progress: RunProgress) -> None:
        if self._live is not None:
            self._live.update(status_line(progress))


def status_line(p: RunProgress) -> Text:
    t = p.totals
    done = min(p.generated, p.total_items)
    fresh = max(0, done - p.resumed_items)
    rate = fresh / p.elapsed_s if p.elapsed_s > 0 else 0.0
    width = 24
    filled = int(width * done / p.total_items) if p.total_items else width
    line = Text()
    line.append("█" * filled + "░" * (width - filled), style="cyan")
    line.append(f" {done:,}/{p.total_items:,} items  ")
    line.append(f"✓ {t.accepted:,}", style="green")
    line.append(f"  ✗ {t.rejected:,}", style="yellow")
    line.append(f"  ! {t.failed:,}", style="red" if t.failed else "")
    stats = p.llm.stats if p.llm else None  # a distributed job's progress has no client: count finished batches
    tokens = (stats.prompt_tokens + stats.completion_tokens) if stats else t.prompt_tokens + t.completion_tokens
    cost = stats.cost_usd if stats else t.cost_usd
    line.append(f"  {tokens:,} tok  ${cost:.4f}  {rate:,.1f} items/s")
    if stats and stats.rate_limited and p.llm is not None:
        line.append(f"  429s {stats.rate_limited:,} (limit {int(p.llm.limiter.limit)})", style="yellow")
    return line


def add_outcomes(table: Table, totals: Totals) -> None:
    """Accepted, rejected by reason and failed by error: the rows every summary of records shows."""
    table.add_row("accepted", f"[green]{totals.accepted:,}[/]")
    table.add_row("rejected", f"[yellow]{totals.rejected:,}[/]")
    for reason, count in totals.rejected_by_reason.most_common():
        table.add_row(f"  rejected.{reason}", f"{count:,}")
    table.add_row("failed", f"[red]{totals.failed:,}[/]" if totals.failed else "0")
    for error, count in totals.failed_by_error.most_common():
        table.add_row(f"  failed.{error}", f"{count:,}")
    categories = sorted(totals.by_category.items())
    if len(categories) > 1:  # what a thin category looks like: few accepted against its quota
        table.add_row("by category", "accepted / rejected / failed")
        for category, counts in categories[:MAX_CATEGORY_ROWS]:
            top = counts.rejected_by_reason.most_common(1)
            why = f"  (mostly {top[0][0]})" if top else ""
            table.add_row(f"  {category}{why}", f"{counts.accepted:,} / {counts.rejected:,} / {counts.failed:,}")
        if len(categories) > MAX_CATEGORY_ROWS:
            table.add_row(f"  … {len(categories) - MAX_CATEGORY_ROWS:,} more", "")


def add_spend(table: Table, totals: Totals) -> None:
    """Generation and verification spend apart, and what one accepted sample cost."""
    gen, ver = totals.generation, totals.verification
    table.add_row("LLM calls (cached)", f"{gen.calls:,} ({gen.cached_calls:,})")
    table.add_row("tokens in / out", f"{gen.prompt_tokens:,} / {gen.completion_tokens:,}")
    table.add_row("cost: generation", f"${gen.cost_usd:.4f}")
    if ver.calls:
        table.add_row("cost: verification", f"${ver.cost_usd:.4f} ({ver.calls:,} calls)")
    per_sample = totals.cost_per_accepted_usd
    table.add_row("cost per accepted sample", f"${per_sample:.5f}" if per_sample is not None else "–")


def summary_table(totals: Totals, progress: RunProgress | None = None) -> Table:
    table = Table(title="run summary", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_row("items", f"{totals.items:,}")
    add_outcomes(table, totals)
    add_spend(table, totals)
    if progress is not None:
        fresh = max(0, progress.generated - progress.resumed_items)
        table.add_row("wall time", f"{progress.elapsed_s:.1f} s")
        table.add_row("rate", f"{fresh / max(progress.elapsed_s, 1e-9):,.1f} items/s")
        table.add_row("output", str(progress.out))
    return table


def plan_tables(report: Any) -> list[Any]:
    counts = Table(title=f"plan: {report.total_items:,} items", title_justify="left")
    counts.add_column("category")
    counts.add_column("items", justify="right")
    for category, n in report.by_category.items():
        counts.add_row(category, f"{n:,}")
    templates = Table(title="templates", title_justify="left")
    templates.add_column("template")
    templates.add_column("items", justify="right")
    for name, n in report.by_template.items():
        templates.add_row(name, f"{n:,}")
    cost = (
        f"${report.cost_low_usd:.4f} – ${report.cost_high_usd:.4f}"
        if report.model_known
        else "unknown (model not in litellm's cost map)"
    )
    estimate = Table(title="estimate", show_header=False, title_justify="left")
    estimate.add_column(style="bold")
    estimate.add_column(justify="right")
    estimate.add_row("prompt tokens", f"{report.prompt_tokens:,}")
    estimate.add_row("completion tokens (max)", f"{report.max_completion_tokens:,}")
    estimate.add_row("cost", cost)
    schema = f" ({report.response_schema})" if report.response_schema else ""
    estimate.add_row("JSON mode", report.json_mode + schema)
    return [counts, templates, estimate, *_key_tables(report)]


def _key_tables(report: Any) -> list[Any]:
    """Says so when a key leaves for an endpoint that is not its provider's own (a shared spec may name any)."""
    if not report.key_destinations:
        return []
    keys = Table(title="API key sent to a non-default endpoint", title_justify="left", title_style="yellow")
    keys.add_column("model")
    keys.add_column("key from")
    keys.add_column("sent to")
    for found in report.key_destinations:
        keys.add_row(found["model"], f"${found['variable']}", found["url"])
    return [keys]
