"""`topics: {expand: ...}` in a spec: the tree is grown once, kept as YAML in a cache, and read back on reruns.

The cache key covers everything that shapes the tree (root, depth, degree, model, params, seed and the expansion
template's sha256), not the quota, so `validate`, `plan` and `run` of one spec grow it once between them.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import ValidationError

from synth.errors import UserError
from synth.ids import stable_hash
from synth.prompts import PromptLibrary, Template
from synth.spec.model import JobSpec, TopicExpansionSettings
from synth.store.atomic import write_atomic
from synth.topics.grow import (
    EXPAND_TEMPLATE,
    GrownTree,
    TopicTree,
    grow_tree,
    render_yaml,
    topics_mapping,
    tree_from_mapping,
)

logger = logging.getLogger(__name__)

CACHE_ENV_VAR = "SYNTH_CACHE_DIR"
CACHE_FORMAT = 1
CACHE_NOTE = "Cached by synth: delete this file to grow the tree again; leaves take the spec's quota."
T = TypeVar("T")


def cache_dir() -> Path:
    """`$SYNTH_CACHE_DIR/topics`, else `~/.cache/synth/topics`."""
    root = os.environ.get(CACHE_ENV_VAR) or str(Path.home() / ".cache" / "synth")
    return Path(root).expanduser() / "topics"


def grow_spec_topics(spec: JobSpec, library: PromptLibrary) -> JobSpec:
    """The spec with its `topics.expand` replaced by the grown tree (from the cache when it holds it)."""
    settings = spec.expansion
    if settings is None:
        return spec
    client = spec.model_copy(update={"model": settings.model or spec.model})
    template = library.get(EXPAND_TEMPLATE)
    path = cache_dir() / f"{cache_key(settings, client, template.sha256)}.yaml"
    tree = _read(path)
    if tree is None:
        tree = _grow(client, template, settings, path, spec.name)
    else:
        logger.info("topics.expand: using the tree cached at %s", path)
    try:
        return with_topics(spec, tree, settings)
    except ValidationError as exc:
        problem = exc.errors()[0]["msg"]
        raise UserError(
            f"the topic tree cached at {path} is not valid ({problem}): delete it to grow it again"
        ) from None


def cache_key(settings: TopicExpansionSettings, client: JobSpec, template_sha256: str) -> str:
    """What shapes the tree: root, depth, degree, model, sampling params with the seed, and the prompt."""
    params = client.params.model_dump(mode="json", exclude={"timeout_s"})
    return stable_hash(CACHE_FORMAT, settings.root, settings.depth, settings.degree, client.model, params,
                       client.params.seed, template_sha256)  # fmt: skip


def _grow(client: JobSpec, template: Template, settings: TopicExpansionSettings, path: Path, origin: str) -> TopicTree:
    grown = run_blocking(grow_tree(client, template, settings))
    header = [*header_lines(settings, client.model, grown, f"spec {origin}"), CACHE_NOTE]
    _write(path, render_yaml(grown.tree, None, header))
    logger.warning(
        "topics.expand grew %d leaves under %r in %d model calls; the tree is cached at %s",
        grown.leaf_count, settings.root, grown.calls, path,
    )  # fmt: skip
    return grown.tree


def stand_in_spec(spec: JobSpec) -> JobSpec:
    """For `topics.expand`, the spec with one chain of topics as deep as the grown tree will be, to check the job
    against before any model call (templates render, inputs read); any other spec as it is."""
    settings = spec.expansion
    if settings is None:
        return spec
    chain: TopicTree = {}
    for _ in range(settings.depth):
        chain = {"subtopic": chain}
    return with_topics(spec, {settings.root: chain}, settings)


def with_topics(spec: JobSpec, tree: TopicTree, settings: TopicExpansionSettings) -> JobSpec:
    data = spec.model_dump(mode="json", exclude={"topics"})
    return JobSpec.model_validate({**data, "topics": topics_mapping(tree, settings.quota)})


def header_lines(settings: TopicExpansionSettings, model: str, grown: GrownTree, origin: str) -> list[str]:
    """The comment on top of a grown tree: how it was made, so a reader can judge it and make it again."""
    bare = f"; no usable subtopics for: {', '.join(grown.bare)}" if grown.bare else ""
    return [
        f"Topic tree grown by synth ({origin}) on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC.",
        f"root={settings.root!r} depth={settings.depth} degree={settings.degree} model={model}",
        f"{grown.leaf_count} leaves from {grown.calls} model calls{bare}.",
        "Review and edit it (rename, merge, delete, set quotas) before generating;",
        "it is what a spec's `topics:` accepts.",
        "",
    ]


def _read(path: Path) -> TopicTree | None:
    try:
        tree = tree_from_mapping(yaml.safe_load(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        logger.warning("ignoring unreadable topic cache %s: %s", path, exc)
        return None
    if tree is None:
        logger.warning("ignoring topic cache %s: not a topic tree", path)
    return tree


def _write(path: Path, text: str) -> None:
    """Atomic (temp file, fsync, rename): a crash never leaves half a tree for the next run to trust."""
    try:
        write_atomic(path, [text])
    except OSError as exc:
        raise UserError(
            f"cannot write the topic cache {path}: {exc}; set {CACHE_ENV_VAR} to a writable folder"
        ) from exc


def run_blocking(coroutine: Coroutine[Any, Any, T]) -> T:
    """Runs a coroutine to completion from sync code, also when called inside a running loop (the API server)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()
