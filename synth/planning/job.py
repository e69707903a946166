"""A PreparedJob: a spec that passed every check, with what generating its items needs."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synth.llm.output import OutputMode, output_mode
from synth.planning.expand import BatchRef, Leaf, WorkItem, leaf_batches, with_items, work_item
from synth.planning.sourcing import SourceSummary, sourced_batches, sourced_item
from synth.prompts import Template
from synth.spec.model import JobSpec
from synth.tasks import Task
from synth.verify.protocol import VerifierOptions


@dataclass(frozen=True)
class PreparedJob:
    """A spec that passed every check, with its task, templates and validated verifier options.

    Sourced leaves (topics with `inputs`) are counted here: their `quota` is their number of units, and
    `sources` holds what one pass over each found (keyed by leaf path). `base_dir` resolves input paths.
    """

    spec: JobSpec
    task: Task
    templates: dict[str, Template]
    verifier_options: list[tuple[str, VerifierOptions]]
    leaves: list[Leaf]
    base_dir: Path = field(default_factory=Path.cwd)
    sources: dict[tuple[str, ...], SourceSummary] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    """What deserves a look though it may work (a model litellm's map does not list): shown by validate and plan."""

    @property
    def template_shas(self) -> dict[str, str]:
        return {name: t.sha256 for name, t in self.templates.items()}

    @property
    def total_items(self) -> int:
        return sum(leaf.quota for leaf in self.leaves)

    @property
    def json_mode(self) -> OutputMode:
        """How the spec model's calls ask for the task's answer: what lineage records as `params.json_mode`."""
        return output_mode(self.spec.model, self.spec.params.json_mode, self.task.response_model())

    def render(self, leaf: Leaf, index: int) -> list[dict[str, str]]:
        """The prompt of item `index` of a topic leaf."""
        return self.render_item(work_item(self.spec, self.template_shas, leaf, index))

    def render_item(self, item: WorkItem) -> list[dict[str, str]]:
        """The prompt of a work item, as its first model call sends it."""
        return self.templates[item.template].render(self._vars(item.vars))

    def template_uses(self, leaf: Leaf) -> dict[str, int]:
        """How many of the leaf's items each template makes."""
        if leaf.path in self.sources:
            return self.sources[leaf.path].by_template
        count = len(self.spec.templates)
        return {t: len(range(offset, leaf.quota, count)) for offset, t in enumerate(self.spec.templates)}

    def example(self, leaf: Leaf, template: str) -> list[dict[str, str]]:
        """The prompt of the leaf's first item that uses `template` (for a sourced leaf: its first unit)."""
        summary = self.sources.get(leaf.path)
        if summary is None:
            return self.render(leaf, self.spec.templates.index(template))
        assert summary.first is not None, "prepare refuses a sourced leaf without units"
        item = sourced_item(self.spec, self.template_shas, leaf, 0, summary.first, template)
        return self.templates[template].render(self._vars(item.vars))

    def _vars(self, item_vars: Any) -> dict[str, Any]:
        return {**item_vars, **self.task.template_vars(), "json_mode": self.json_mode.is_json}

    def used_pairs(self) -> Iterator[tuple[Leaf, str]]:
        """Every (topic, template) pair that makes at least one item."""
        for leaf in self.leaves:
            for template, uses in self.template_uses(leaf).items():
                if uses:
                    yield leaf, template


def iter_batches(prepared: PreparedJob, batch_size: int) -> Iterator[BatchRef]:
    """Every batch of the job, with its items, topic leaves and sourced leaves alike, lazily.

    A sourced leaf's inputs are read once for all its batches; at most one batch of units is held at a time.
    """
    spec, shas = prepared.spec, prepared.template_shas
    for leaf in prepared.leaves:
        if leaf.inputs is None:
            yield from (with_items(spec, shas, batch) for batch in leaf_batches(spec, leaf, batch_size))
        else:
            yield from sourced_batches(spec, shas, prepared.task, leaf, prepared.base_dir, batch_size)
