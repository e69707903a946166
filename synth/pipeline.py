"""One batch, start to finish: generate → parse → verifier chain → store. Every executor runs exactly this."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import TypeAdapter

from synth import __version__
from synth.errors import ModelError, ParseError, TemplateError, VerifierError
from synth.llm import LLMClient, OutputMode, token_counter
from synth.planning.expand import BatchRef, WorkItem
from synth.planning.job import PreparedJob
from synth.prompts import Template
from synth.records import PARSE_VERIFIER, FailedItem, Lineage, Record, Usage, Verdict, record_id_for
from synth.spec.model import JobSpec
from synth.store.marker import BatchMarker, StageUsage
from synth.store.run_store import RunStore
from synth.tasks import Task
from synth.tasks.base import Generation, Rejected, screen_output
from synth.verify.chain import run_chain
from synth.verify.protocol import RunState, Verifier, VerifierContext
from synth.verify.registry import build
from synth.verify.resources import Resources

logger = logging.getLogger(__name__)

ItemOutcome = list[Record] | FailedItem


@dataclass(frozen=True)
class Verification:
    """What the verify stage needs: a distributed verify worker builds only this, never a generation client."""

    verifiers: Sequence[Verifier]
    store: RunStore
    job_id: str
    fingerprint: str
    resources: Resources

    @classmethod
    def create(
        cls, prepared: PreparedJob, store: RunStore, state: RunState, resources: Resources, job_id: str
    ) -> Verification:
        """The verifier chain of the job, with the run's shared state, the model's tokenizer and the resources."""
        task, model = prepared.task, prepared.spec.model
        context = VerifierContext(
            claims=state,
            count_tokens=lambda text: token_counter(model)(text),
            text_fields=task.text_fields,
            resources=resources,
            task=task.name,
            prompt_fields=task.prompt_fields,
            buckets=state,
            dedup_index=prepared.spec.dedup_index,
        )
        verifiers = [build(name, opts.model_dump(), context) for name, opts in prepared.verifier_options]
        return cls(verifiers, store, job_id, prepared.spec.verifier_fingerprint, resources)

    async def aclose(self) -> None:
        for verifier in self.verifiers:
            await verifier.aclose()
        await self.resources.aclose()


@dataclass
class JobContext:
    """Everything the generate stage needs, built once per process (per work horse in RQ) and shared by its
    batches; `verification` is the verify stage's, where this process runs both (a local run)."""

    spec: JobSpec
    task: Task
    templates: dict[str, Template]
    llm: LLMClient
    store: RunStore
    run_id: str
    job_id: str
    json_mode: OutputMode
    """How the spec model's calls ask for their answer (`PreparedJob.json_mode`): recorded in lineage."""
    verification: Verification | None = None
    on_item: Callable[[WorkItem], None] = field(default=lambda item: None)

    @classmethod
    def for_generation(
        cls, prepared: PreparedJob, store: RunStore, llm: LLMClient, run_id: str, job_id: str
    ) -> JobContext:
        """The generate stage alone: a distributed generate worker hands its batches to the verify queue."""
        return cls(
            spec=prepared.spec,
            task=prepared.task,
            templates=prepared.templates,
            llm=llm,
            store=store,
            run_id=run_id,
            job_id=job_id,
            json_mode=prepared.json_mode,
        )

    @classmethod
    def create(
        cls, prepared: PreparedJob, store: RunStore, llm: LLMClient, state: RunState, run_id: str, job_id: str
    ) -> JobContext:
        """Both stages in one process: verifiers' model clients share the generation client's cache."""
        resources = Resources(lambda config: LLMClient(config, cache=llm.cache))
        ctx = cls.for_generation(prepared, store, llm, run_id, job_id)
        ctx.verification = Verification.create(prepared, store, state, resources, job_id)
        return ctx

    async def aclose(self) -> None:
        if self.verification is not None:
            await self.verification.aclose()


@dataclass
class GeneratedBatch:
    """A batch between the stages: records before the verifier chain, failed items, and the calls' usage."""

    records: list[Record]
    failed: list[FailedItem]
    usage: StageUsage

    def to_bytes(self) -> bytes:
        """The batch as it waits for its verify job: one JSON line of failed items and usage, then the records as
        one JSON array that pydantic writes and reads in one pass. Not one JSON object holding the records as a
        string: json escaped that string on the way in and unescaped it on the way out (3 ms a batch of 128)."""
        head = {"failed": [f.model_dump(mode="json") for f in self.failed], "usage": self.usage.model_dump()}
        return json.dumps(head).encode() + b"\n" + _RECORDS.dump_json(self.records)

    @classmethod
    def from_bytes(cls, data: bytes) -> GeneratedBatch:
        head, _, records = data.partition(b"\n")  # neither json.dumps nor pydantic writes a raw newline
        fields = json.loads(head)
        if "records" in fields:  # one JSON object, as a worker before this format wrote it
            return cls.from_json(fields)
        failed = [FailedItem.model_validate(f) for f in fields["failed"]]
        return cls(_RECORDS.validate_json(records), failed, StageUsage.model_validate(fields["usage"]))

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> GeneratedBatch:
        """A batch in the older form, a dict with the records as one JSON text (verify jobs that carry it)."""
        records = _RECORDS.validate_json(data["records"])
        failed = [FailedItem.model_validate(f) for f in data["failed"]]
        return cls(records, failed, StageUsage.model_validate(data["usage"]))


_RECORDS = TypeAdapter(list[Record])


async def run_batch(batch: BatchRef, ctx: JobContext) -> BatchMarker:
    """Runs every item of the batch, verifies what parsed, and writes the batch. Returns its marker."""
    if ctx.verification is None:
        raise ValueError("run_batch needs a context with both stages (JobContext.create)")
    return await verify_batch(batch, await generate_batch(batch, ctx), ctx.verification)


async def generate_batch(batch: BatchRef, ctx: JobContext) -> GeneratedBatch:
    """The generate stage: one model call per item (cached), parsed into records or failed items."""
    outcomes = await asyncio.gather(*(generate_item(item, batch.batch_id, ctx) for item in batch.items))
    records = [r for outcome in outcomes if isinstance(outcome, list) for r in outcome]
    failed = [outcome for outcome in outcomes if isinstance(outcome, FailedItem)]
    return GeneratedBatch(records, failed, _usage(outcomes))


async def verify_batch(batch: BatchRef, generated: GeneratedBatch, stage: Verification) -> BatchMarker:
    """The verify stage: the verifier chain over what parsed, then the batch's shards and marker."""
    records, failed = generated.records, list(generated.failed)
    try:
        await run_chain(stage.verifiers, records)
    except VerifierError as exc:
        logger.error("verifier failed: batch=%s error=%s", batch.batch_id, exc)
        failed += _fail_all(batch, records, exc)
        records = []
    unjudged = {r.lineage.item_id: r for r in records if r.verdicts and r.verdicts[-1].error}
    if unjudged:  # a verifier could not judge these: their items fail (a rerun retries them), the rest stand
        failed += [_unjudged(record, batch.batch_id) for record in unjudged.values()]
        records = [r for r in records if r.lineage.item_id not in unjudged]
    for record in records:  # a rejected record keeps the model's raw output, whoever rejected it; an accepted one not
        if record.status == "accepted":
            record.raw_output = None
    write = stage.store.write_batch
    return await asyncio.to_thread(write, batch, records, failed, generated.usage, stage.job_id, stage.fingerprint)


async def generate_item(item: WorkItem, batch_id: str, ctx: JobContext) -> ItemOutcome:
    template = ctx.templates[item.template]
    try:
        generation = await ctx.task.generate(item, template, ctx.llm)
    except ModelError as exc:
        if exc.is_fatal:
            raise
        return _failed(item, batch_id, exc, exc.status)
    except TemplateError as exc:  # prepare renders every item first; a later call's prompt can still fail
        return _failed(item, batch_id, exc)
    finally:
        ctx.on_item(item)
    lineage = _lineage(item, batch_id, generation, ctx)
    return _records(item, generation, lineage, ctx)


def _failed(item: WorkItem, batch_id: str, exc: Exception, status: int | None = None) -> FailedItem:
    return FailedItem(
        item_id=item.item_id,
        batch_id=batch_id,
        category=list(item.category),
        template=item.template,
        error_type=type(exc).__name__,
        error=str(exc),
        status_code=status,
    )


def _records(item: WorkItem, generation: Generation, lineage: Lineage, ctx: JobContext) -> list[Record]:
    """One record per sample, the task's own rejections included; one rejected record when nothing parsed."""
    try:
        screen_output(generation.text, generation.finish_reason, generation.messages)
        parsed = ctx.task.parse_generation(item, generation)
        samples = [s if isinstance(s, Rejected) else ctx.task.finish_sample(s, item.vars) for s in parsed]
    except ParseError as exc:
        samples = [Rejected({}, exc.reason, str(exc))]
    records = []
    for index, sample in enumerate(samples):
        sample_lineage = lineage.model_copy(update={"sample_index": index})
        records.append(_record(record_id_for(item.item_id, index), sample, sample_lineage, ctx, generation.text))
    return records


def _record(record_id: str, sample: dict[str, Any] | Rejected, lineage: Lineage, ctx: JobContext, raw: str) -> Record:
    """An accepted record, or a rejected one that says why. Both carry the raw output to the verify stage: a
    verifier's rejection keeps it too (the stage drops it from the records it accepts)."""
    task = ctx.task
    if not isinstance(sample, Rejected):  # raw output kept until the verifiers have spoken (see verify_batch)
        return Record(
            record_id=record_id, status="accepted", task=task.name, sample=sample, lineage=lineage, raw_output=raw
        )
    details = {"error": sample.message}
    verdict = Verdict(
        verifier=PARSE_VERIFIER, version=task.version, passed=False, reason=sample.reason, details=details
    )
    return Record(
        record_id=record_id,
        status="rejected",
        reason=sample.reason,
        task=task.name,
        sample=task.full_sample(sample.sample),
        lineage=lineage,
        verdicts=[verdict],
        raw_output=raw,
    )


def _lineage(item: WorkItem, batch_id: str, generation: Generation, ctx: JobContext) -> Lineage:
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
        prompt_sha256=generation.prompt_sha256,
        model=ctx.spec.model,
        params={
            "temperature": params.temperature,
            "top_p": params.top_p,
            "max_tokens": params.max_tokens,
            "json_mode": ctx.json_mode.value,
        },
        seed=item.seed,
        category=list(item.category),
        parent_ids=list(item.parent_ids),
        source=dict(item.source),
        usage=Usage(
            prompt_tokens=generation.prompt_tokens,
            completion_tokens=generation.completion_tokens,
            cost_usd=generation.cost_usd,
            calls=len(generation.calls),
            cached_calls=sum(1 for call in generation.calls if call.cached),
        ),
        cached=generation.cached,
        synth_version=__version__,
    )


def _usage(outcomes: Sequence[ItemOutcome]) -> StageUsage:
    """Usage counted once per item (an item's records share its calls: one, or two for a back-translation);
    cached calls cost nothing new."""
    calls = [o[0].lineage for o in outcomes if isinstance(o, list) and o]
    fresh = [lin for lin in calls if not lin.cached]
    return StageUsage(
        calls=sum(lin.usage.calls for lin in calls),
        cached_calls=sum(lin.usage.cached_calls for lin in calls),
        prompt_tokens=sum(lin.usage.prompt_tokens for lin in fresh),
        completion_tokens=sum(lin.usage.completion_tokens for lin in fresh),
        cost_usd=sum(lin.usage.cost_usd for lin in fresh),
    )


def _unjudged(record: Record, batch_id: str) -> FailedItem:
    verdict = record.verdicts[-1]
    return FailedItem(
        item_id=record.lineage.item_id,
        batch_id=batch_id,
        category=record.lineage.category,
        template=record.lineage.template,
        error_type=verdict.reason or "verifier_error",
        error=f"{verdict.verifier}: {verdict.details.get('error', 'could not judge the sample')}",
    )


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
