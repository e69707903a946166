"""Run directories for the dataset tests: real records of every task kind, written through RunStore.write_batch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from synth.records import Record
from synth.tasks.backtranslation import BacktranslationSample
from synth.tasks.code.task import CodeSample
from synth.tasks.instructions import InstructionSample
from synth.tasks.paraphrase import ParaphraseSample
from synth.testing.records import new_run, record, run_spec, write_records

CATEGORIES = ("science/physics", "science/biology", "cooking")


def instructions_sample(i: int, category: str) -> dict[str, Any]:
    return InstructionSample(
        instruction=f"Explain {category} idea number {i}.", input="", output=f"Idea {i}: x."
    ).model_dump()


def code_sample(i: int) -> dict[str, Any]:
    return CodeSample(
        problem=f"Return n plus {i}.",
        entry_point="add",
        signature="def add(n: int) -> int:",
        solution=f"def add(n: int) -> int:\n    return n + {i}\n",
        tests=f"assert add(1) == {1 + i}",
    ).model_dump()


def doc_qa_sample(i: int, document: str) -> dict[str, Any]:
    context = f"{document} says the harbour opens at dawn. Ships leave at {i}."
    position = {"start": 0, "end": 10, "relative": 0.0, "chunk_start": 0, "chunk_end": len(context)}
    question = f"When do ships leave ({document}, {i})?"
    return {
        "question": question,
        "answer": f"At {i}.",
        "evidence": f"Ships leave at {i}.",
        "context": context,
        "answer_position": position,
    }


def paraphrase_sample(i: int, source: str) -> dict[str, Any]:
    return ParaphraseSample(source=source, paraphrase=f"{source}, said another way ({i})", style="casual").model_dump()


def backtranslation_sample(i: int) -> dict[str, Any]:
    return BacktranslationSample(
        source_text=f"The boat {i} is red.",
        source_language="English",
        pivot_language="French",
        pivot_text=f"Le bateau {i} est rouge.",
        back_translation=f"The boat {i} is red.",
        pivot_model="openai/mock-model",
    ).model_dump()


def translate_sample(i: int) -> dict[str, Any]:
    """The translate task's fields (synth.tasks.translate.TranslateSample)."""
    return {
        "source_text": f"The cat {i} sleeps.",
        "source_language": "English",
        "target_language": "German",
        "translation": f"Die Katze {i} schläft.",
    }


def preference_sample(i: int) -> dict[str, Any]:
    """The preference task's fields (synth.tasks.preference.PreferenceSample)."""
    candidates = [
        {"candidate_id": f"c{k}", "index": k, "text": f"answer {k}", "scores": {"helpful": 5 - k}} for k in range(2)
    ]
    return {
        "prompt": f"Name a colour ({i}).",
        "chosen": "Blue.",
        "rejected": "I cannot.",
        "chosen_score": 4.5,
        "rejected_score": 1.5,
        "margin": 3.0,
        "candidates": candidates,
    }


def kind_records(task: str, n: int = 12) -> list[Record]:
    """n accepted records of `task`, spread over CATEGORIES; doc_qa over 4 documents, paraphrases over 4 sources."""
    found = []
    for i in range(n):
        category = CATEGORIES[i % len(CATEGORIES)]
        extra: dict[str, Any] = {}
        if task == "doc_qa":
            document = f"doc{i % 4}"
            sample = doc_qa_sample(i, document)
            extra["source"] = {"document_sha256": f"sha-{document}", "document_path": f"{document}.txt"}
            extra["parent_ids"] = [f"sha-{document}", f"chunk-{i}"]
        elif task == "paraphrase":
            sample = paraphrase_sample(i, f"source text {i % 4}")
            extra["parent_ids"] = [f"input-{i % 4}"]
        else:
            sample = SAMPLES[task](i, category)
        found.append(record(task, sample, category, (task, i), **extra))
    return sorted(found, key=lambda r: r.lineage.category)


SAMPLES = {
    "instructions": instructions_sample,
    "code": lambda i, _: code_sample(i),
    "backtranslation": lambda i, _: backtranslation_sample(i),
    "translate": lambda i, _: translate_sample(i),
    "preference": lambda i, _: preference_sample(i),
}
KIND_NAMES = ("instructions", "code", "doc_qa", "paraphrase", "backtranslation", "translate", "preference")


def kind_run(root: Path, task: str, records: list[Record] | None = None, batch_size: int = 4) -> Path:
    store = new_run(root, run_spec(task, CATEGORIES))
    write_records(store, records if records is not None else kind_records(task), batch_size)
    return root
