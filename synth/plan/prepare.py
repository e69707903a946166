"""Everything checked before the first LLM call: plugins and their options, templates, inputs, a dry render of
every (topic, template) pair, then the growing of `topics.expand`; and the dry-run report of `synth plan`."""

from __future__ import annotations

from dataclasses import replace

from pydantic import ValidationError

from synth.errors import SpecError, TemplateError, UserError
from synth.ids import stable_hash
from synth.plan.expand import Leaf, leaves
from synth.plan.job import PreparedJob
from synth.plan.sourcing import SourceSummary, summarize
from synth.prompts import PromptLibrary
from synth.spec.file import LoadedSpec, Path_
from synth.tasks import TASKS, Task, build_task
from synth.topics.cache import grow_spec_topics, stand_in_spec
from synth.verify.protocol import VerifierOptions
from synth.verify.registry import parse_options


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
    for leaf, template in prepared.used_pairs():
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
