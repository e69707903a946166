"""`synth topics expand`: a model grows a topic tree from one subject into a YAML file to review before generating."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from pathlib import Path

import click
from pydantic import ValidationError

from synth.cli.exits import handles_errors
from synth.errors import UserError
from synth.prompts import PromptLibrary
from synth.spec.file import MODEL_ENV_VAR, override_path, validate_spec
from synth.spec.model import JobSpec, TopicExpansionSettings
from synth.store.atomic import write_atomic
from synth.topics.cache import header_lines
from synth.topics.grow import EXPAND_TEMPLATE, grow_tree, render_yaml

BUNDLED_MODEL = "local/smollm2"
# What `--set` may change here: how calls are made, not what a job generates.
CLIENT_FIELDS = frozenset(
    {"model", "params", "api_base", "api_key_env", "transport", "concurrency", "rate_limit", "retry"}
)


@click.group()
def topics() -> None:
    """Grow topic trees with a model, to review and paste under a spec's `topics:`."""


@topics.command()
@click.argument("root")
@click.option("--depth", default=2, show_default=True, type=click.IntRange(1, 4), help="Levels under the root.")
@click.option("--degree", default=5, show_default=True, type=click.IntRange(1, 50), help="Subtopics per topic.")
@click.option("--quota", default=10, show_default=True, type=click.IntRange(1), help="Items per leaf.")
@click.option("-o", "--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="YAML file to write.")
@click.option("--model", help="Any litellm model string (default: SYNTH_MODEL, else the bundled local/smollm2).")
@click.option("--seed", type=click.IntRange(0), help="Base seed of the calls (default 0).")
@click.option("--set", "overrides", multiple=True, metavar="PATH=VALUE", help="e.g. --set api_base=http://…/v1")
@click.option("--force", is_flag=True, help="Overwrite OUT if it exists.")
@handles_errors
def expand(
    root: str,
    depth: int,
    degree: int,
    quota: int,
    out: Path,
    model: str | None,
    seed: int | None,
    overrides: tuple[str, ...],
    force: bool,
) -> None:
    """Ask a model for DEGREE subtopics of ROOT, then of each of those, DEPTH levels deep; write the tree to OUT."""
    if out.exists() and not force:
        raise UserError(f"{out} exists (edits in it would be lost); pass --force to overwrite it")
    settings = _settings(root, depth, degree, quota)
    spec = client_spec(model, seed, overrides)
    template = PromptLibrary.for_spec_dir(Path.cwd()).get(EXPAND_TEMPLATE)
    grown = asyncio.run(grow_tree(spec, template, settings))
    header = header_lines(settings, spec.model, grown, "synth topics expand")
    try:
        write_atomic(out, [render_yaml(grown.tree, quota, header)])
    except OSError as exc:
        raise UserError(f"cannot write {out}: {exc.strerror or exc}") from None
    if spec.model == BUNDLED_MODEL and not model:
        click.echo(f"no --model or {MODEL_ENV_VAR}: grown offline by the bundled {BUNDLED_MODEL} (small and weak; "
                   "pass --model for a better tree)")  # fmt: skip
    bare = f"; {len(grown.bare)} topic(s) gave no usable subtopics (see the header)" if grown.bare else ""
    click.echo(f"wrote {out}: {grown.leaf_count} leaves, {grown.calls} model calls{bare}. Review it, then paste it "
               "under `topics:` in a spec.")  # fmt: skip


def _settings(root: str, depth: int, degree: int, quota: int) -> TopicExpansionSettings:
    try:
        return TopicExpansionSettings(root=root, depth=depth, degree=degree, quota=quota)
    except ValidationError as exc:
        raise UserError("; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())) from None


def _bundled_model() -> str:
    """With no model given, the bundled local one (offline, like the quickstart; weak, so the CLI says so)."""
    from synth.llm.local import has_llama_cpp, resolve_gguf  # imports litellm: only when it is needed

    try:
        resolve_gguf(BUNDLED_MODEL.removeprefix("local/"))
    except UserError:
        raise UserError(f"no model configured: pass --model or set {MODEL_ENV_VAR}") from None
    if not has_llama_cpp():
        raise UserError(f"no model configured: pass --model or set {MODEL_ENV_VAR}")
    return BUNDLED_MODEL


def client_spec(model: str | None, seed: int | None, overrides: Sequence[str]) -> JobSpec:
    """A spec that only says how to call the model (the LLM client takes a spec); the rest are placeholders."""
    for item in overrides:
        if str(override_path(item)[0]) not in CLIENT_FIELDS:
            raise UserError(f"--set {item!r}: only {', '.join(sorted(CLIENT_FIELDS))} apply to topics expand")
    if not model and not os.environ.get(MODEL_ENV_VAR):
        model = _bundled_model()
    raw: dict[str, object] = {"name": "topics-expand", "task": "instructions", "templates": [EXPAND_TEMPLATE]}
    raw |= {"topics": {"placeholder": 1}, "params": {"seed": seed or 0}} | ({"model": model} if model else {})
    return validate_spec(raw, overrides, origin="topics expand")
