"""How each task kind's sample reads as training data: one entry per kind in `KINDS`.

A kind has up to four readings, and every format is built from one of them:

    chat     one exchange: an optional system message, the user's turn, the assistant's answer
    alpaca   instruction, input, output
    pair     a preference pair: prompt, chosen, rejected
    text     one string for plain language modelling

A reading a kind does not have is None, with the reason in `refusals`: a format that needs it refuses the kind
(a UserError naming the format that can hold it) instead of writing something that is not that kind's data.
Sample fields that are not trained on but must not be lost (a code problem's tests, a QA pair's evidence) are
`metadata`: exports keep them in lineage.jsonl and in the metadata column of Parquet and HF exports.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from synth.errors import UserError
from synth.tasks.paraphrase import STYLE_HINTS

Sample = Mapping[str, Any]
Reading = Literal["chat", "alpaca", "pair", "text"]
DOC_QA_SYSTEM = "Answer the question using only the document."


@dataclass(frozen=True)
class Chat:
    system: str | None
    user: str
    assistant: str

    def prompt_messages(self) -> list[dict[str, str]]:
        system = [{"role": "system", "content": self.system}] if self.system else []
        return [*system, {"role": "user", "content": self.user}]

    def messages(self) -> list[dict[str, str]]:
        return [*self.prompt_messages(), {"role": "assistant", "content": self.assistant}]


@dataclass(frozen=True)
class Alpaca:
    instruction: str
    input: str
    output: str


@dataclass(frozen=True)
class Pair:
    prompt: str
    chosen: str
    rejected: str


@dataclass(frozen=True)
class KindMap:
    """One task kind's readings; None where it has none (and `refusals` says why, and what to use instead)."""

    chat: Callable[[Sample], Chat] | None
    alpaca: Callable[[Sample], Alpaca] | None
    pair: Callable[[Sample], Pair] | None
    text: Callable[[Sample], str] | None
    metadata: tuple[str, ...] = ()
    refusals: Mapping[Reading, str] = field(default_factory=dict)


def alpaca_text(reading: Alpaca) -> str:
    """The Alpaca prompt layout (Input left out when empty) followed by the response: one string to train on."""
    parts = [f"### Instruction:\n{reading.instruction}"]
    if reading.input:
        parts.append(f"### Input:\n{reading.input}")
    parts.append(f"### Response:\n{reading.output}")
    return "\n\n".join(parts)


def joined(*parts: str) -> str:
    return "\n\n".join(p for p in parts if p)


def fenced(code: str, language: str) -> str:
    return f"```{language}\n{code.rstrip()}\n```"


# --- instructions: instruction, input, output


def _instructions_alpaca(s: Sample) -> Alpaca:
    return Alpaca(s["instruction"], s.get("input") or "", s["output"])


def _instructions_chat(s: Sample) -> Chat:
    return Chat(None, joined(s["instruction"], s.get("input") or ""), s["output"])


# --- code: the problem (and the signature to implement) as the user, the solution as the assistant


def _code_request(s: Sample) -> str:
    language = s.get("language") or "python"
    return joined(s["problem"], f"Use this signature:\n{fenced(s['signature'], language)}")


def _code_chat(s: Sample) -> Chat:
    return Chat(None, _code_request(s), fenced(s["solution"], s.get("language") or "python"))


def _code_alpaca(s: Sample) -> Alpaca:
    return Alpaca(_code_request(s), "", fenced(s["solution"], s.get("language") or "python"))


# --- doc_qa: the long-context example, the document (or its window) in context before the question


def _doc_qa_chat(s: Sample) -> Chat:
    return Chat(DOC_QA_SYSTEM, f"<document>\n{s['context']}\n</document>\n\n{s['question']}", s["answer"])


def _doc_qa_alpaca(s: Sample) -> Alpaca:
    return Alpaca(s["question"], s["context"], s["answer"])


# --- paraphrase: a rewrite in the record's style


def _paraphrase_instruction(s: Sample) -> str:
    return f"Rewrite the text in {STYLE_HINTS.get(s['style'], s['style'])}."


def _paraphrase_chat(s: Sample) -> Chat:
    return Chat(None, joined(_paraphrase_instruction(s), s["source"]), s["paraphrase"])


def _paraphrase_alpaca(s: Sample) -> Alpaca:
    return Alpaca(_paraphrase_instruction(s), s["source"], s["paraphrase"])


# --- translate and backtranslation: a translation pair (backtranslation: source → pivot, the round trip checked it)


def _translation(source: str, target: str) -> str:
    return f"Translate the text from {source} to {target}."


def _translate_chat(s: Sample) -> Chat:
    instruction = _translation(s["source_language"], s["target_language"])
    return Chat(None, joined(instruction, s["source_text"]), s["translation"])


def _translate_alpaca(s: Sample) -> Alpaca:
    return Alpaca(_translation(s["source_language"], s["target_language"]), s["source_text"], s["translation"])


def _backtranslation_chat(s: Sample) -> Chat:
    instruction = _translation(s["source_language"], s["pivot_language"])
    return Chat(None, joined(instruction, s["source_text"]), s["pivot_text"])


def _backtranslation_alpaca(s: Sample) -> Alpaca:
    return Alpaca(_translation(s["source_language"], s["pivot_language"]), s["source_text"], s["pivot_text"])


# --- preference: prompt, chosen, rejected (DPO); one answer alone would drop what the record is for


def _preference_pair(s: Sample) -> Pair:
    return Pair(s["prompt"], s["chosen"], s["rejected"])


ONE_ANSWER = "its records hold one answer per prompt; a preference format needs a chosen and a rejected answer "
ONE_ANSWER += "(make pairs with the preference task)"
PAIRED = "its records are preference pairs (two answers to one prompt): export them with --format dpo, or "
PAIRED += "--format parquet/hf --shape dpo"
SINGLE: dict[Reading, str] = {"pair": ONE_ANSWER}

KINDS: dict[str, KindMap] = {
    "instructions": KindMap(
        _instructions_chat, _instructions_alpaca, None, lambda s: alpaca_text(_instructions_alpaca(s)), (), SINGLE
    ),
    "code": KindMap(
        _code_chat, _code_alpaca, None, lambda s: alpaca_text(_code_alpaca(s)),
        ("language", "difficulty", "entry_point", "signature", "tests", "test_functions"), SINGLE,
    ),
    "doc_qa": KindMap(
        _doc_qa_chat, _doc_qa_alpaca, None, lambda s: alpaca_text(_doc_qa_alpaca(s)),
        ("evidence", "answer_position"), SINGLE,
    ),
    "paraphrase": KindMap(
        _paraphrase_chat, _paraphrase_alpaca, None, lambda s: alpaca_text(_paraphrase_alpaca(s)), ("style",), SINGLE
    ),
    "translate": KindMap(
        _translate_chat, _translate_alpaca, None, lambda s: alpaca_text(_translate_alpaca(s)),
        ("source_language", "target_language"), SINGLE,
    ),
    "backtranslation": KindMap(
        _backtranslation_chat, _backtranslation_alpaca, None, lambda s: alpaca_text(_backtranslation_alpaca(s)),
        ("source_language", "pivot_language", "back_translation", "pivot_model"), SINGLE,
    ),
    "preference": KindMap(
        None, None, _preference_pair, None,
        ("chosen_score", "rejected_score", "margin", "candidates"),
        {"chat": PAIRED, "alpaca": PAIRED, "text": PAIRED},
    ),
}  # fmt: skip


def kind_map(task: str) -> KindMap:
    try:
        return KINDS[task]
    except KeyError:
        known = ", ".join(sorted(KINDS))
        raise UserError(
            f"no export mapping for task {task!r} (known: {known}); add it to synth.dataset.kinds"
        ) from None


def reader(task: str, reading: Reading, format_name: str) -> Callable[[Sample], Any]:
    """The function that reads `task`'s samples as `reading`; a UserError when the kind has no such reading."""
    kind = kind_map(task)
    found: Callable[[Sample], Any] | None = getattr(kind, reading)
    if found is None:
        why = kind.refusals.get(reading, f"it has no {reading} reading")
        raise UserError(f"format {format_name} cannot hold {task} records: {why}")
    return found


def metadata_of(task: str, sample: Sample) -> dict[str, Any]:
    return {name: sample[name] for name in kind_map(task).metadata if name in sample}
