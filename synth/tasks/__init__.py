"""Generation kinds. Each owns its prompt variables, its sample shape and its parser."""

from __future__ import annotations

from typing import Any

from synth.errors import UserError
from synth.tasks.backtranslation import BacktranslationTask
from synth.tasks.base import Task, TaskOptions
from synth.tasks.code.task import CodeTask
from synth.tasks.doc_qa.task import DocQaTask
from synth.tasks.instructions import InstructionsTask
from synth.tasks.paraphrase import ParaphraseTask
from synth.tasks.preference import PreferenceTask
from synth.tasks.translate import TranslateTask

TASKS: dict[str, type[Task]] = {
    cls.name: cls
    for cls in (
        InstructionsTask,
        ParaphraseTask,
        BacktranslationTask,
        DocQaTask,
        CodeTask,
        TranslateTask,
        PreferenceTask,
    )
}


def task_class(name: str) -> type[Task]:
    try:
        return TASKS[name]
    except KeyError:
        raise UserError(f"unknown task {name!r}; known tasks: {', '.join(sorted(TASKS))}") from None


def build_task(name: str, options: dict[str, Any], model: str = "") -> Task:
    cls = task_class(name)
    return cls(cls.Options.model_validate(options), model)


__all__ = ["TASKS", "Task", "TaskOptions", "build_task", "task_class"]
