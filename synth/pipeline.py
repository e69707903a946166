"""One batch, start to finish: generate → parse → verifier chain → store. Every executor runs exactly this."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from synth import __version__
from synth.errors import ModelError, ParseError, VerifierError
from synth.expand import BatchRef, WorkItem
from synth.ids import canonical_json, sha256_text
from synth.llm import Completion, LLMClient, token_counter
from synth.plan import PreparedJob, template_variables
from synth.prompts import Template
from synth.records import FailedItem, Lineage, Record, Usage, Verdict, record_id_for
from synth.specs import JobSpec
from synth.store import RunStore
from synth.tasks import Task
from synth.tasks.base import screen_output
from synth.verify import ClaimIndex, Verifier, VerifierContext, build, run_chain

logger = logging.getLogger(__name__)

ItemOutcome = list[Record] | FailedItem


@dataclass
class JobContext:
    """Everything a batch needs, built once per process (per work horse in RQ) and shared by its batches."""

    spec: JobSpec
    task: Task
    templates: dict[str, Template]
    llm: LLMClient
    verifiers: Sequence[Verifier]
    store: RunStore
    run_id: str
    job_id: str
    json_mode: bool
    on_item: Callable[[WorkItem], None] = field(default=lambda item: None)

    @classmethod
    def create(
        cls, prepared: PreparedJob, store: RunStore, llm: LLMClient, claims: ClaimIndex, run_id: str, job_id: str
    ) -> JobContext:
        """The context both executors build: verifiers get the run's shared claims and the model's tokenizer."""
        model = prepared.spec.model
        verifier_context = VerifierContext(
            claims=claims,
            count_tokens=lambda text: token_counter(model)(text),
            text_fields=prepared.task.text_fields,
        )
        return cls(
            spec=prepared.spec,
            task=prepared.task,
            templates=prepared.templates,
            llm=llm,
            verifiers=[build(name, opts.model_dump(), verifier_context) for name, opts in prepared.verifier_options],
            store=store,
            run_id=run_id,
            job_id=job_id,
            json_mode=prepared.json_mode,
        )


async def run_batch(batch: BatchRef, ctx: JobContext) -> dict[str, Any]:
    """Runs every item of the batch, verifies what parsed, and writes the batch. Returns its marker."""
    outcomes = await asyncio.gather(*(generate_item(item, batch.batch_id, ctx) for item in batch.items))
    records = [r for outcome in outcomes if isinstance(outcome, list) for r in outcome]
    failed = [outcome for outcome in outcomes if isinstance(outcome, FailedItem)]
    try:
        await run_chain(ctx.verifiers, records)
    except VerifierError as exc:
        logger.error("verifier failed: batch=%s error=%s", batch.batch_id, exc)
        failed += _fail_all(batch, records, exc)
        records = []
    usage = _usage(outcomes)
    write = ctx.store.write_batch
    return await asyncio.to_thread(write, batch, records, failed, usage, ctx.job_id, ctx.spec.verifier_fingerprint)


async def generate_item(item: WorkItem, batch_id: str, ctx: JobContext) -> ItemOutcome:
    template = ctx.templates[item.template]
    messages = template.render(template_variables(item.vars, ctx.task, ctx.json_mode))
    try:
        completion = await ctx.llm.complete(messages, item.seed, ctx.json_mode)
    except ModelError as exc:
        if exc.is_fatal:
            raise
        return FailedItem(
            item_id=item.item_id,
            batch_id=batch_id,
            category=list(item.category),
            template=item.template,
            error_type=type(exc).__name__,
            error=str(exc),
            status_code=exc.status,
        )
    finally:
        ctx.on_item(item)
    lineage = _lineage(item, batch_id, messages, completion, ctx)
    return _records(item, completion, messages, lineage, ctx)


def _records(
    item: WorkItem, completion: Completion, messages: list[dict[str, str]], lineage: Lineage, ctx: JobContext
) -> list[Record]:
    try:
        screen_output(completion.text, completion.finish_reason, messages)
        parsed = ctx.task.parse(completion.text, completion.finish_reason)
        samples = [ctx.task.finish_sample(sample, item.vars) for sample in parsed]
    except ParseError as exc:
        verdict = Verdict(
            verifier="parse", version=ctx.task.version, passed=False, reason=exc.reason, details={"error": str(exc)}
        )
        return [
            Record(
                record_id=record_id_for(item.item_id, 0),
                status="rejected",
                reason=exc.reason,
                task=ctx.task.name,
                sample={},
                lineage=lineage,
                verdicts=[verdict],
                raw_output=completion.text,
            )
        ]
    return [
        Record(
            record_id=record_id_for(item.item_id, index),
            status="accepted",
            task=ctx.task.name,
            sample=sample,
            lineage=lineage.model_copy(update={"sample_index": index}),
        )
        for index, sample in enumerate(samples)
    ]


def _lineage(
    item: WorkItem, batch_id: str, messages: list[dict[str, str]], completion: Completion, ctx: JobContext
) -> Lineage:
    params = ctx.spec.params
    return Lineage(
        run_id=ctx.run_id,
        job_id=ctx.job_id,
        batch_id=batch_id,
        item_id=item.item_id,
        spec_id=ctx.spec.spec_id,
        spec_name=ctx.spec.name,
        task=item.task,
        template=item.template,
        template_sha256=item.template_sha256,
        prompt_sha256=sha256_text(canonical_json(messages)),
        model=ctx.spec.model,
        params={
            "temperature": params.temperature,
            "top_p": params.top_p,
            "max_tokens": params.max_tokens,
            "json_mode": ctx.json_mode,
        },
        seed=item.seed,
        category=list(item.category),
        parent_ids=list(item.parent_ids),
        usage=Usage(
            prompt_tokens=completion.prompt_tokens,
            completion_tokens=completion.completion_tokens,
            cost_usd=completion.cost_usd,
        ),
        cached=completion.cached,
        synth_version=__version__,
    )


def _usage(outcomes: Sequence[ItemOutcome]) -> dict[str, Any]:
    """Per-call usage, counted once per item (an item's records share one call); cached calls cost nothing new."""
    calls = [o[0].lineage for o in outcomes if isinstance(o, list) and o]
    fresh = [lin for lin in calls if not lin.cached]
    return {
        "calls": len(calls),
        "cached_calls": len(calls) - len(fresh),
        "prompt_tokens": sum(lin.usage.prompt_tokens for lin in fresh),
        "completion_tokens": sum(lin.usage.completion_tokens for lin in fresh),
        "cost_usd": sum(lin.usage.cost_usd for lin in fresh),
    }


def _fail_all(batch: BatchRef, records: Sequence[Record], exc: Exception) -> list[FailedItem]:
    item_ids = {r.lineage.item_id for r in records}
    return [
        FailedItem(
            item_id=item.item_id,
            batch_id=batch.batch_id,
            category=list(item.category),
            template=item.template,
            error_type=type(exc).__name__,
            error=str(exc),
        )
        for item in batch.items
        if item.item_id in item_ids
    ]
