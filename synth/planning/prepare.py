"""Everything checked before the first LLM call: plugins and their options, templates, inputs, a dry render of
every item's prompt, then the growing of `topics.expand`; and the dry-run report of `synth plan`."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from pydantic import ValidationError

from synth.errors import SpecError, TemplateError, UserError
from synth.ids import stable_hash
from synth.inputs.rows import Unit
from synth.llm.checks import model_notes, model_problems
from synth.planning.expand import Leaf, WorkItem, leaves, work_item
from synth.planning.job import PreparedJob
from synth.planning.sourcing import SourceSummary, leaf_units, sourced_item, summarize, unit_origin
from synth.prompts import PromptLibrary
from synth.spec.file import LoadedSpec, Path_
from synth.tasks import TASKS, Task, build_task
from synth.topics.cache import grow_spec_topics, stand_in_spec
from synth.verify.protocol import VerifierOptions
from synth.verify.registry import parse_options


def prepare(loaded: LoadedSpec, library: PromptLibrary | None = None, *, check: bool = True) -> PreparedJob:
    """Validates everything that can be validated without a model; raises a UserError naming the problem.

    Reads every sourced topic's inputs once, end to end, and renders every item's prompt: a bad row, or a row
    or topic a template cannot render, stops the job here, before any spend (a render costs ~60 µs).
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
        if check:
            problems.extend(_model_problems(loaded, task))
    if problems:
        raise SpecError(f"{loaded.source or 'spec'}: {len(problems)} problem(s)", problems)
    assert task is not None
    library = library or PromptLibrary.for_spec_dir(loaded.base_dir)
    templates = {name: library.get(name) for name in spec.templates}
    notes = tuple(note for model, _ in _models(loaded, task) for note in model_notes(model, spec.api_base))
    prepared = PreparedJob(spec, task, templates, verifier_options, all_leaves, loaded.base_dir, notes=notes)
    if not check:
        return prepared
    prepared = _checked(prepared, loaded)
    if spec.expansion is not None:  # the model calls come after every check that costs nothing
        grown = grow_spec_topics(spec, library)
        prepared = _checked(replace(prepared, spec=grown, leaves=leaves(grown), sources={}), loaded)
    return prepared


def prepare_chain(loaded: LoadedSpec) -> PreparedJob:
    """The spec's task and verifier chain, checked, without templates, topics or inputs: what a stage that only
    verifies needs (the finalize stage, `synth verify`). Its job generates nothing."""
    problems: list[str] = []
    task = _build_task(loaded, problems)
    verifier_options = _verifier_options(loaded, problems)
    if problems:
        raise SpecError(f"{loaded.source or 'spec'}: {len(problems)} problem(s)", problems)
    assert task is not None
    return PreparedJob(loaded.spec, task, {}, verifier_options, [], loaded.base_dir)


MAX_SHOWN_RENDER_FAILURES = 5


@dataclass
class RenderCheck:
    """Renders every item's prompt once, before anything is spent. Failures are grouped by message (one missing
    variable fails every item of a topic alike), each with the first item it failed on."""

    prepared: PreparedJob
    checked: int = 0
    failed: int = 0
    by_message: dict[str, tuple[str, int]] = field(default_factory=dict)

    def item(self, item: WorkItem, where: str) -> None:
        self.checked += 1
        try:
            self.prepared.render_item(item)
        except TemplateError as exc:
            self.failed += 1
            first, count = self.by_message.get(str(exc), (where, 0))
            self.by_message[str(exc)] = (first, count + 1)

    def topic(self, leaf: Leaf) -> None:
        """Every item of a topic leaf; just the first per template when nothing a template reads varies by item."""
        spec, shas = self.prepared.spec, self.prepared.template_shas
        varying = {name for name, t in self.prepared.templates.items() if t.may_read({"index", "seed"})}
        for index in range(leaf.quota):
            item = work_item(spec, shas, leaf, index)
            if item.template in varying or index < len(spec.templates):
                self.item(item, f"topic {leaf.category} item {index}")

    def sourced(self, leaf: Leaf, position: int, unit: Unit) -> None:
        item = sourced_item(self.prepared.spec, self.prepared.template_shas, leaf, position, unit)
        self.item(item, f"topic {leaf.category}, {unit_origin(unit)}")

    def raise_if_failed(self) -> None:
        if not self.failed:
            return
        shown = list(self.by_message.items())[:MAX_SHOWN_RENDER_FAILURES]
        lines = [
            f"{where}: {message}" + (f" (and {n - 1:,} more like it)" if n > 1 else "") for message, (where, n) in shown
        ]
        if len(self.by_message) > len(shown):
            lines.append(f"... and {len(self.by_message) - len(shown):,} other errors")
        listed = "".join(f"\n  {line}" for line in lines)
        raise TemplateError(f"{self.failed:,} of {self.checked:,} items do not render (nothing was spent):{listed}")


def _checked(prepared: PreparedJob, loaded: LoadedSpec) -> PreparedJob:
    """The job with its sourced leaves counted, once every item's prompt has rendered."""
    check = RenderCheck(prepared)
    prepared = _count_sources(prepared, loaded, check)
    for leaf in prepared.leaves:
        if leaf.inputs is None:
            check.topic(leaf)
    check.raise_if_failed()
    return prepared


def _models(loaded: LoadedSpec, task: Task) -> list[tuple[str, Path_]]:
    """Every model the job calls, with the field that names it."""
    spec = loaded.spec
    found: list[tuple[str, Path_]] = [(spec.model, ("model",))]
    if spec.expansion is not None and spec.expansion.model:
        found.append((spec.expansion.model, ("topics", "expand", "model")))
    found.extend((model, ("task", field)) for field, model in task.other_models().items())
    return found


def _model_problems(loaded: LoadedSpec, task: Task) -> list[str]:
    """A provider no one knows, a malformed endpoint URL, a missing GGUF file: found before any call."""
    api_base = loaded.spec.api_base
    return [
        f"{loaded.locate(where)}: {problem}"
        for model, where in _models(loaded, task)
        for problem in model_problems(model, api_base)
    ]


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


def _count_sources(prepared: PreparedJob, loaded: LoadedSpec, check: RenderCheck) -> PreparedJob:
    """Reads each distinct input of the sourced leaves once (leaves inheriting it share one pass): quota = units.
    Each unit's item is rendered in that pass; a leaf sharing an earlier leaf's inputs reads them again to
    render its own items (its topic's variables differ)."""
    counted, sources, read = [], {}, {}
    for leaf in prepared.leaves:
        if leaf.inputs is None:
            counted.append(leaf)
            continue
        key = stable_hash(leaf.inputs, leaf.max_units)
        if key not in read:
            read[key] = _summary(prepared, leaf, _where(loaded, leaf, inputs=True), check)
        else:
            for position, unit in enumerate(leaf_units(prepared.task, leaf, prepared.base_dir)):
                check.sourced(leaf, position, unit)
        sources[leaf.path] = read[key]
        counted.append(replace(leaf, quota=read[key].units))
    return replace(prepared, leaves=counted, sources=sources)


def _summary(prepared: PreparedJob, leaf: Leaf, where: str, check: RenderCheck) -> SourceSummary:
    assert leaf.inputs is not None
    try:
        summary = summarize(
            prepared.spec, prepared.task, leaf, prepared.base_dir, lambda at, unit: check.sourced(leaf, at, unit)
        )
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
            found.append((ref.name, parse_options(ref.name, ref.options, loaded.base_dir)))
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
