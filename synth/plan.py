"""Everything checked before the first LLM call: plugins and their options, templates, a dry render of
every (topic, template) pair; and the dry-run report of `synth plan`."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from synth.errors import SpecError, TemplateError, UserError
from synth.expand import Leaf, leaves, work_item
from synth.llm.pricing import Pricing, model_info
from synth.prompts import PromptLibrary, Template
from synth.specfile import LoadedSpec, Path_
from synth.specs import JobSpec
from synth.tasks import Task, build_task
from synth.topiccache import grow_spec_topics
from synth.verify import VerifierOptions, parse_options


@dataclass(frozen=True)
class PreparedJob:
    """A spec that passed every check, with its task, templates and validated verifier options."""

    spec: JobSpec
    task: Task
    templates: dict[str, Template]
    verifier_options: list[tuple[str, VerifierOptions]]
    leaves: list[Leaf]

    @property
    def template_shas(self) -> dict[str, str]:
        return {name: t.sha256 for name, t in self.templates.items()}

    @property
    def total_items(self) -> int:
        return sum(leaf.quota for leaf in self.leaves)

    @property
    def json_mode(self) -> bool:
        mode = self.spec.params.json_mode
        return mode == "on" or (mode == "auto" and Pricing(self.spec.model).supports_json)

    def render(self, leaf: Leaf, index: int) -> list[dict[str, str]]:
        item = work_item(self.spec, self.template_shas, leaf, index)
        return self.templates[item.template].render(template_variables(item.vars, self.task, self.json_mode))


def template_variables(item_vars: Mapping[str, Any], task: Task, json_mode: bool) -> dict[str, Any]:
    """What a template sees: the item's variables, the task's own, and whether the call asks for JSON."""
    return {**item_vars, **task.template_vars(), "json_mode": json_mode}


def prepare(loaded: LoadedSpec) -> PreparedJob:
    """Validates everything that can be validated without a model; raises a UserError naming the problem."""
    spec = loaded.spec
    problems: list[str] = []
    task = _build_task(loaded, problems)
    verifier_options = _verifier_options(loaded, problems)
    if problems:
        raise SpecError(f"{loaded.source or 'spec'}: {len(problems)} problem(s)", problems)
    assert task is not None
    library = PromptLibrary.for_spec_dir(loaded.base_dir)
    templates = {name: library.get(name) for name in spec.templates}
    prepared = PreparedJob(spec, task, templates, verifier_options, _leaves_or_stand_in(spec))
    _dry_render(prepared)
    if spec.expansion is not None:  # the only model calls before a run, once every check above has passed
        grown = grow_spec_topics(spec, library)
        prepared = PreparedJob(grown, task, templates, verifier_options, leaves(grown))
        _dry_render(prepared)
    return prepared


def _leaves_or_stand_in(spec: JobSpec) -> list[Leaf]:
    """The spec's leaves; for `topics.expand`, one leaf as deep as the grown ones will be, to render against."""
    if spec.expansion is None:
        return leaves(spec)
    path = (spec.expansion.root, *["subtopic"] * spec.expansion.depth)
    return [Leaf(path, spec.expansion.quota, None, dict(spec.vars))]


def _dry_render(prepared: PreparedJob) -> None:
    for leaf, index in _one_item_per_template(prepared):
        try:
            prepared.render(leaf, index)
        except TemplateError as exc:
            raise TemplateError(f"{exc} (topic {leaf.category})") from None


def _build_task(loaded: LoadedSpec, problems: list[str]) -> Task | None:
    ref = loaded.spec.task
    try:
        return build_task(ref.name, ref.options)
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


def _one_item_per_template(prepared: PreparedJob) -> Iterator[tuple[Leaf, int]]:
    """For every topic, one item index that uses each template (items take templates in turn)."""
    count = len(prepared.spec.templates)
    for leaf in prepared.leaves:
        for index in range(min(leaf.quota, count)):
            yield leaf, index


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
    json_mode: bool

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
    for leaf in prepared.leaves:
        for offset, template in enumerate(spec.templates):
            uses = len(range(offset, leaf.quota, len(spec.templates)))
            if not uses:
                continue
            messages = prepared.render(leaf, offset)
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
        json_mode=prepared.json_mode,
    )
