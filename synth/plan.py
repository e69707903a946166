"""Everything checked before the first LLM call: plugins and their options, templates, inputs, a dry render of
every (topic, template) pair, then the growing of `topics.expand`; and the dry-run report of `synth plan`."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from synth.errors import SpecError, TemplateError, UserError
from synth.expand import Leaf, leaves, work_item
from synth.ids import stable_hash
from synth.llm.output import OutputMode, output_mode, schema_name
from synth.llm.pricing import Pricing, model_info
from synth.prompts import PromptLibrary, Template
from synth.sourcing import SourceSummary, sourced_item, summarize
from synth.specfile import LoadedSpec, Path_
from synth.specs import JobSpec
from synth.tasks import TASKS, Task, build_task
from synth.topiccache import grow_spec_topics, stand_in_spec
from synth.verify import VerifierOptions, parse_options


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
        item = work_item(self.spec, self.template_shas, leaf, index)
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


def prepare(loaded: LoadedSpec, library: PromptLibrary | None = None, *, check: bool = True) -> PreparedJob:
    """Validates everything that can be validated without a model; raises a UserError naming the problem.

    Reads every sourced topic's inputs once, end to end: a bad row stops the job here, before any spend.
    A distributed worker passes the job's shipped templates as `library` and `check=False`: it runs what the
    submitter already checked (inputs read, every template rendered), and may not even have the inputs.

    `topics: {expand: ...}` is checked against a stand-in leaf as deep as the grown ones; only once everything
    passed does a model grow the tree (the only model calls before a run), and the grown topics are checked
    again. The prepared spec carries the grown tree, so a submitted job ships concrete topics to its workers.
    """
    spec = loaded.spec
    if not check and spec.expansion is not None:
        raise UserError("topics.expand is not grown yet: a worker runs only jobs the submitter prepared (and grew)")
    problems: list[str] = []
    task = _build_task(loaded, problems)
    verifier_options = _verifier_options(loaded, problems)
    all_leaves = leaves(stand_in_spec(spec))
    if task is not None:
        problems.extend(_input_problems(loaded, task, all_leaves))
    if problems:
        raise SpecError(f"{loaded.source or 'spec'}: {len(problems)} problem(s)", problems)
    assert task is not None
    library = library or PromptLibrary.for_spec_dir(loaded.base_dir)
    templates = {name: library.get(name) for name in spec.templates}
    prepared = PreparedJob(spec, task, templates, verifier_options, all_leaves, loaded.base_dir)
    if not check:
        return prepared
    prepared = _checked(prepared, loaded)
    if spec.expansion is not None:  # the model calls come after every check that costs nothing
        grown = grow_spec_topics(spec, library)
        prepared = _checked(replace(prepared, spec=grown, leaves=leaves(grown), sources={}), loaded)
    return prepared


def _checked(prepared: PreparedJob, loaded: LoadedSpec) -> PreparedJob:
    """The job with its sourced leaves counted, once one item of each (topic, template) pair has rendered."""
    prepared = _count_sources(prepared, loaded)
    for leaf, template in _one_item_per_template(prepared):
        try:
            prepared.example(leaf, template)
        except TemplateError as exc:
            raise TemplateError(f"{exc} (topic {leaf.category})") from None
    return prepared


def _input_problems(loaded: LoadedSpec, task: Task, found: list[Leaf]) -> list[str]:
    """A task that reads inputs needs them on every topic; a task that reads none must not be given any."""
    readers = ", ".join(sorted(name for name, cls in TASKS.items() if cls.input_kind != "none"))
    problems = []
    target = "the spec" if loaded.spec.expansion is not None else "this topic (or the spec)"
    for leaf in found:
        where = _where(loaded, leaf)
        if task.input_kind != "none" and leaf.inputs is None:
            problems.append(f"{where}: task {task.name} generates from inputs: give {target} `inputs:`")
        elif task.input_kind == "none" and leaf.inputs is not None:
            hint = f"remove `inputs:`, or use a task that reads them ({readers})"
            problems.append(f"{where}: task {task.name} takes no inputs: {hint}")
    return problems


def _count_sources(prepared: PreparedJob, loaded: LoadedSpec) -> PreparedJob:
    """Reads each distinct input of the sourced leaves once (leaves inheriting it share one pass): quota = units."""
    counted, sources, read = [], {}, {}
    for leaf in prepared.leaves:
        if leaf.inputs is None:
            counted.append(leaf)
            continue
        key = stable_hash(leaf.inputs, leaf.max_units)
        if key not in read:
            read[key] = _summary(prepared, leaf, _where(loaded, leaf, inputs=True))
        sources[leaf.path] = read[key]
        counted.append(replace(leaf, quota=read[key].units))
    return replace(prepared, leaves=counted, sources=sources)


def _summary(prepared: PreparedJob, leaf: Leaf, where: str) -> SourceSummary:
    assert leaf.inputs is not None
    try:
        summary = summarize(prepared.spec, prepared.task, leaf, prepared.base_dir)
    except UserError as exc:
        raise UserError(f"{where}: {exc}") from None
    if summary.first is None and leaf.max_units != 0:
        raise SpecError(f"{where}: {leaf.inputs['path']} holds no input rows: nothing to generate from")
    return summary


def _where(loaded: LoadedSpec, leaf: Leaf, *, inputs: bool = False) -> str:
    """A leaf (or its `inputs:`) as the user wrote it; the leaves `topics.expand` grows inherit the spec's inputs."""
    if loaded.spec.expansion is not None:
        return loaded.locate(("inputs",) if inputs else ("topics", "expand"))
    return loaded.locate(("topics", *leaf.path, "inputs") if inputs else ("topics", *leaf.path))


def _build_task(loaded: LoadedSpec, problems: list[str]) -> Task | None:
    ref = loaded.spec.task
    try:
        return build_task(ref.name, ref.options, loaded.spec.model)
    except UserError as exc:
        problems.append(f"{loaded.locate(('task',))}: {exc}")
    except ValidationError as exc:
        problems.extend(_option_problems(exc, ("task",), loaded))
    return None


def _verifier_options(loaded: LoadedSpec, problems: list[str]) -> list[tuple[str, VerifierOptions]]:
    found = []
    for index, ref in enumerate(loaded.spec.verifiers):
        try:
            found.append((ref.name, parse_options(ref.name, ref.options)))
        except UserError as exc:
            problems.append(f"{loaded.locate(('verifiers', index))}: {exc}")
        except ValidationError as exc:
            problems.extend(_option_problems(exc, ("verifiers", index), loaded))
    return found


def _option_problems(exc: ValidationError, prefix: Path_, loaded: LoadedSpec) -> list[str]:
    out = []
    for err in exc.errors():
        loc = (*prefix, *err["loc"])
        message = "unknown option (typo?)" if err["type"] == "extra_forbidden" else err["msg"]
        out.append(f"{loaded.locate(loc)}: {message}")
    return out


def _one_item_per_template(prepared: PreparedJob) -> Iterator[tuple[Leaf, str]]:
    """Every (topic, template) pair that makes at least one item."""
    for leaf in prepared.leaves:
        for template, uses in prepared.template_uses(leaf).items():
            if uses:
                yield leaf, template


@dataclass(frozen=True)
class PlanReport:
    total_items: int
    by_category: dict[str, int]
    by_template: dict[str, int]
    examples: dict[str, list[dict[str, str]]]
    prompt_tokens: int
    max_completion_tokens: int
    model_known: bool
    cost_low_usd: float
    cost_high_usd: float
    json_mode: str
    """"schema", "object" or "off": how the calls ask for their answer (see `synth.llm.output`)."""
    response_schema: str | None
    """The name of the JSON Schema every call sends, in "schema" mode."""

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def plan_report(prepared: PreparedJob, count_tokens: Any) -> PlanReport:
    """Counts per category and template, one rendered prompt per template, and token and cost estimates.

    Prompt tokens are counted on one rendering per (topic, template) pair and scaled by its item count;
    completion tokens are bounded by max_tokens, with a low estimate at a quarter of it.
    """
    spec = prepared.spec
    by_template: dict[str, int] = dict.fromkeys(spec.templates, 0)
    examples: dict[str, list[dict[str, str]]] = {}
    prompt_tokens = 0
    for leaf, template in _one_item_per_template(prepared):
        uses = prepared.template_uses(leaf)[template]
        messages = prepared.example(leaf, template)
        examples.setdefault(template, messages)
        by_template[template] += uses
        prompt_tokens += uses * count_tokens("\n".join(m["content"] for m in messages))
    completion_tokens = prepared.total_items * spec.params.max_tokens
    pricing = Pricing(spec.model)
    return PlanReport(
        total_items=prepared.total_items,
        by_category={leaf.category: leaf.quota for leaf in prepared.leaves},
        by_template=by_template,
        examples=examples,
        prompt_tokens=prompt_tokens,
        max_completion_tokens=completion_tokens,
        model_known=model_info(spec.model) is not None,
        cost_low_usd=pricing.estimate(prompt_tokens, completion_tokens // 4),
        cost_high_usd=pricing.estimate(prompt_tokens, completion_tokens),
        json_mode=prepared.json_mode.value,
        response_schema=_schema_name(prepared),
    )


def _schema_name(prepared: PreparedJob) -> str | None:
    answer = prepared.task.response_model()
    return schema_name(answer) if answer is not None and prepared.json_mode is OutputMode.SCHEMA else None
