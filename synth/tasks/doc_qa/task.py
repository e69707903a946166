"""Questions from long documents: K question/answer pairs per chunk, each with an evidence quote, each turned into
a long-context training example (the whole document, or a window around the chunk, as its context)."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from synth.inputs.chunking import Chunk, TokenCounter, approx_tokens, chunk_document
from synth.inputs.documents import Document
from synth.inputs.rows import Unit
from synth.llm import token_counter
from synth.llm.output import capped
from synth.planning.expand import WorkItem
from synth.tasks.base import Generation, OptionsOf, Rejected, Task, TaskOptions, extract_json, validate_samples
from synth.tasks.doc_qa.evidence import locate
from synth.tasks.doc_qa.long_context import ContextAssembler, ContextWindow

logger = logging.getLogger(__name__)

LIST_KEYS = ("pairs", "items", "questions", "qa")


class DocQaPair(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    question: str = Field(min_length=1, validation_alias=AliasChoices("question", "q"))
    answer: str = Field(min_length=1, validation_alias=AliasChoices("answer", "a"))
    evidence: str = Field(min_length=1, validation_alias=AliasChoices("evidence", "quote", "evidence_quote", "support"))

    @field_validator("question", "answer", "evidence", mode="before")
    @classmethod
    def _strip(cls, value: Any) -> Any:
        return value.strip() if isinstance(value, str) else value


class AnswerPosition(BaseModel):
    """Where the evidence lies in the example's context: offsets (end exclusive), start relative to its length."""

    start: int
    end: int
    relative: float
    chunk_start: int
    chunk_end: int


class DocQaExample(DocQaPair):
    """An accepted pair: the long-context training example, with the context and where its answer lies in it."""

    context: str
    answer_position: AnswerPosition


class DocQaPairs(BaseModel):
    """What a call must answer: {"pairs": [{"question": ..., "answer": ..., "evidence": ...}, ...]}."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    pairs: list[DocQaPair] = Field(min_length=1)


class DocQaOptions(TaskOptions):
    pairs_per_chunk: int = Field(3, ge=1, le=20, description="Question/answer pairs asked for per chunk.")
    chunk_tokens: int = Field(512, ge=32, le=131_072, description="Most tokens in a chunk the model reads.")
    overlap_tokens: int = Field(64, ge=0, description="Most tokens consecutive chunks share; below chunk_tokens.")
    context_budget_tokens: int = Field(
        8192, ge=32, le=2_000_000, description="Most tokens of a training example's context; at least chunk_tokens."
    )
    tokenizer: Literal["model", "approx"] = Field(
        "model", description="model: the spec model's tokenizer (litellm, cl100k if unknown); approx: a fast estimate."
    )

    @field_validator("overlap_tokens")
    @classmethod
    def _overlap_below_chunk(cls, value: int, info: ValidationInfo) -> int:
        chunk = info.data.get("chunk_tokens")
        if chunk is not None and value >= chunk:
            raise ValueError(f"must be below chunk_tokens ({chunk}), or chunks would never advance")
        return value

    @field_validator("context_budget_tokens")
    @classmethod
    def _budget_holds_chunk(cls, value: int, info: ValidationInfo) -> int:
        chunk = info.data.get("chunk_tokens")
        if chunk is not None and value < chunk:
            raise ValueError(f"must be at least chunk_tokens ({chunk}): the context holds the whole chunk")
        return value


class DocQaTask(Task):
    name: ClassVar[str] = "doc_qa"
    version: ClassVar[str] = "1"
    Options: ClassVar[type[TaskOptions]] = DocQaOptions
    Sample: ClassVar[type[BaseModel]] = DocQaPair
    text_fields: ClassVar[tuple[str, ...]] = ("question", "answer")
    prompt_fields: ClassVar[tuple[str, ...]] = ("question",)
    Accepted: ClassVar[type[BaseModel] | None] = DocQaExample
    input_kind: ClassVar[Literal["none", "rows", "documents"]] = "documents"

    opts = OptionsOf(DocQaOptions)

    def template_vars(self) -> dict[str, Any]:
        return {"n": self.opts.pairs_per_chunk}

    def response_model(self) -> type[BaseModel] | None:
        return capped(DocQaPairs, "pairs", self.opts.pairs_per_chunk)

    def count_tokens(self) -> TokenCounter:
        """The tokenizer chunks and contexts are measured with."""
        if self.opts.tokenizer == "approx":
            return approx_tokens
        if not self.model:
            raise ValueError("doc_qa counts tokens with the spec's model: build the task with it")
        return token_counter(self.model)

    def units(self, inputs: Iterator[Any]) -> Iterator[Unit]:
        """One unit per chunk of every document; a document seen before (same text) is skipped."""
        options, count = self.opts, self.count_tokens()
        seen: set[str] = set()
        for doc in inputs:
            assert isinstance(doc, Document), f"doc_qa reads documents, got {type(doc).__name__}"
            if doc.sha256 in seen:
                logger.warning("skipping duplicate document: doc=%s sha256=%s", doc.doc_id, doc.sha256[:12])
                continue
            seen.add(doc.sha256)
            assembler = ContextAssembler(doc, options.context_budget_tokens, count)
            for chunk in chunk_document(doc, options.chunk_tokens, options.overlap_tokens, count):
                yield chunk_unit(doc, chunk, assembler.around(chunk))

    def parse(self, text: str, finish_reason: str | None = None) -> list[dict[str, Any]]:
        """The pairs of one answer: a list, or an object holding one under `pairs` (or `items`), or one pair."""
        value = extract_json(text, finish_reason)
        if isinstance(value, dict):
            value = next((value[key] for key in LIST_KEYS if isinstance(value.get(key), list)), value)
        return validate_samples(DocQaPair, value, text)[: self.opts.pairs_per_chunk]

    def parse_generation(self, item: WorkItem, generation: Generation) -> list[dict[str, Any] | Rejected]:
        """Each pair whose evidence is in the chunk becomes a long-context example; the others are rejected."""
        pairs = self.parse(generation.text, generation.finish_reason)
        return [training_example(pair, item.vars) for pair in pairs]


def chunk_unit(doc: Document, chunk: Chunk, window: ContextWindow) -> Unit:
    """A chunk's unit: what the prompt shows (`chunk_text`) and the context the example will be given."""
    context = {
        "text": doc.text[window.start : window.end],
        "chunk_start": window.chunk_start,
        "chunk_end": window.chunk_end,
    }
    variables = {"chunk_text": chunk.text, "document_path": doc.path, "document_id": doc.doc_id, "context": context}
    source = {
        "document_sha256": doc.sha256,
        "document_path": doc.path,
        "document_id": doc.doc_id,
        "chunk_id": chunk.chunk_id,
        "chunk_index": chunk.index,
        "chunk_start": chunk.start,
        "chunk_end": chunk.end,
        "chunk_tokens": chunk.token_count,
        "context_start": window.start,
        "context_end": window.end,
        "context_tokens": window.token_count,
        "context_chars": window.chars,
        "context_is_whole_document": window.is_whole_document,
        "chunk_relative_position": window.relative_position,
    }
    return Unit(chunk.chunk_id, variables, (doc.sha256, chunk.chunk_id), source)


def training_example(pair: dict[str, Any], item_vars: Mapping[str, Any]) -> dict[str, Any] | Rejected:
    """The pair with its context and where its evidence lies in it; rejected when the evidence is not in the chunk."""
    found = locate(pair["evidence"], item_vars["chunk_text"])
    if found is None:
        return Rejected(pair, "evidence_not_found", "the evidence quote is not in the chunk the question came from")
    context = item_vars["context"]
    start, end = context["chunk_start"] + found[0], context["chunk_start"] + found[1]
    text = context["text"]
    position = {
        "start": start,
        "end": end,
        "relative": round(start / max(len(text), 1), 4),
        "chunk_start": context["chunk_start"],
        "chunk_end": context["chunk_end"],
    }
    return {**pair, "context": text, "answer_position": position}
