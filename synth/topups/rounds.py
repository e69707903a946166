"""A top-up round as a job: the dataset's base spec pruned to the thin categories, each with the items its
plan sized, marked with the round (part of spec_id, so every item id is new) and a seed of its own."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from synth.ids import derive_seed
from synth.planning.job import PreparedJob
from synth.planning.prepare import prepare
from synth.prompts import PromptLibrary
from synth.spec.file import LoadedSpec
from synth.spec.model import JobSpec, TopicNode
from synth.topups.dataset import Dataset


def round_spec(base: JobSpec, quotas: Mapping[str, int], number: int) -> JobSpec:
    """The base spec with only the categories in `quotas`, each with that many items, as round `number`."""
    raw = base.model_dump(mode="json", exclude={"total", "output", "topup"})
    raw["topics"] = _pruned(base.topic_roots(), (), quotas)
    raw["topup"] = {"dataset": base.dataset.name if base.dataset else base.name, "round": number}
    # The same prompt with the same seed gives the same sample back: each round samples afresh.
    raw["params"] = {**raw["params"], "seed": derive_seed(base.params.seed, "topup", number)}
    return JobSpec.model_validate(raw)


def _pruned(nodes: Mapping[str, TopicNode], prefix: tuple[str, ...], quotas: Mapping[str, int]) -> dict[str, Any]:
    """The branches that lead to a category in `quotas`, keeping the descriptions and vars its leaf inherits."""
    kept: dict[str, Any] = {}
    for name, node in nodes.items():
        path = (*prefix, name)
        inherited = {k: v for k, v in (("description", node.description), ("vars", node.vars)) if v}
        children = node.children()
        if children:
            below = _pruned(children, path, quotas)
            if below:
                kept[name] = {**inherited, **below}
        elif quotas.get("/".join(path)):
            kept[name] = {**inherited, "quota": quotas["/".join(path)]}
    return kept


def prepare_round(dataset: Dataset, quotas: Mapping[str, int], number: int) -> PreparedJob:
    """Checks the round as any job is checked (every template rendered) from the dataset's own templates."""
    spec = round_spec(dataset.base_spec, quotas, number)
    loaded = LoadedSpec(spec, Path(dataset.base_dir) / "spec.yaml")
    return prepare(loaded, PromptLibrary.from_sources(dataset.templates))
