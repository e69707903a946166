"""The dry-run report of `synth plan`: counts, one rendered prompt per template, token and cost estimates."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from synth.llm.output import OutputMode, schema_name
from synth.llm.pricing import Pricing, model_info
from synth.llm.transport import key_destination
from synth.planning.job import PreparedJob


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
    key_destinations: list[dict[str, str]]
    """API keys sent to an endpoint other than their provider's own: model, variable, url."""

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
    for leaf, template in prepared.used_pairs():
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
        key_destinations=_key_destinations(prepared),
    )


def _key_destinations(prepared: PreparedJob) -> list[dict[str, str]]:
    config = prepared.spec.generation
    found = key_destination(config.model, config.api_base, config.api_key_env)
    return [asdict(found)] if found is not None else []


def _schema_name(prepared: PreparedJob) -> str | None:
    answer = prepared.task.response_model()
    return schema_name(answer) if answer is not None and prepared.json_mode is OutputMode.SCHEMA else None
