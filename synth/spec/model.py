"""The job spec: what to generate, with which model, checked how. Strict: unknown keys are errors."""

from __future__ import annotations

import re
from functools import cached_property
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator, model_validator

from synth.errors import UserError
from synth.ids import stable_hash
from synth.llm.config import (
    ModelConfig,
    ModelParams,
    RateLimit,
    RetryPolicy,
    StrictModel,
    check_api_base,
    check_key_variable,
)
from synth.spec.dataset import DatasetRef, TopupRound

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
ENV_VAR_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
# Fields that say how a job runs or which samples it keeps, not what an item is. Left out of spec_id so that
# changing them (or raising a quota) keeps every item id and a rerun picks up where the last one stopped. A
# changed verifier chain re-verifies: batch markers record the chain they passed (`verifier_fingerprint`).
# `dataset` says where accepted records count, not what they are.
EXECUTION_FIELDS = frozenset(
    {
        "concurrency",
        "rate_limit",
        "retry",
        "batch_size",
        "output",
        "transport",
        "api_base",
        "verifiers",
        "dataset",
        "dedup_index",
    }
)


class PluginRef(StrictModel):
    """A task or verifier by name, with its options. YAML: `- length` or `- {name: length, min_chars: 20}`."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _split_options(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {"name": data}
        if isinstance(data, dict) and "options" not in data:
            return {"name": data.get("name"), "options": {k: v for k, v in data.items() if k != "name"}}
        return data


class OutputSpec(StrictModel):
    dir: str | None = Field(None, description="Where records go; `--out` overrides it.")


Quota = Annotated[int, Field(ge=0, le=10_000_000)]
InputFormat = Literal["auto", "jsonl", "csv", "txt", "run", "md", "html", "pdf"]


class InputRef(StrictModel):
    """Where a sourced topic's inputs come from. YAML: `inputs: data/seeds.jsonl`, or a mapping of these fields."""

    path: str = Field(min_length=1, description="A file, a glob or a run directory; relative to the spec's folder.")
    field: str = Field(
        "text", min_length=1, description="The text: a JSON key (dotted for nested, e.g. sample.output), a CSV column."
    )
    format: InputFormat = Field("auto", description="auto: from the file name (a run directory is `run`).")
    limit: int | None = Field(None, ge=1, description="Read at most this many rows (duplicates skipped first).")
    follow_symlinks: bool = Field(
        False, description="Read files that symlinks lead to outside the input's folder (refused by default)."
    )

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        return {"path": data} if isinstance(data, str) else data

    def content(self) -> dict[str, Any]:
        """What decides the items (the limit only decides how many): part of spec_id."""
        return self.model_dump(mode="json", exclude={"limit", "follow_symlinks"})


class TopicNode(BaseModel):
    """A category. Keys other than the reserved ones below are its subtopics.

    A leaf has a `quota` (items to generate) or a `weight` (its share of the spec's `total`);
    `description` and `vars` reach the templates and are inherited by subtopics, and so is `inputs`: a leaf
    with inputs makes one item per unit of its inputs, its `quota` (optional) capping how many.
    """

    model_config = ConfigDict(extra="allow", frozen=True, allow_inf_nan=False)
    __pydantic_extra__: dict[str, TopicValue] = Field(init=False)

    quota: Quota | None = None
    weight: float | None = Field(None, gt=0, allow_inf_nan=False)
    description: str | None = None
    vars: dict[str, Any] = Field(default_factory=dict)
    inputs: InputRef | None = None

    @model_validator(mode="after")
    def _check_shape(self) -> TopicNode:
        for name in self.children():
            check_topic_name(name)
        if self.children() and (self.quota is not None or self.weight is not None):
            raise ValueError("a topic with subtopics takes no quota or weight: put them on its leaves")
        if self.quota is not None and self.weight is not None:
            raise ValueError("give a quota or a weight, not both")
        return self

    def children(self) -> dict[str, TopicNode]:
        extra = self.__pydantic_extra__ or {}
        return {name: as_topic(node) for name, node in extra.items()}


def _topic_kind(value: Any) -> str:
    if isinstance(value, TopicNode | dict):
        return "/topic"
    return "/empty" if value is None else "/quota"


# A topic is a mapping, a bare quota or nothing. Tagged so that a bad value gets the errors of its own shape
# only; the tags start with "/", which no topic name may contain, so error paths can drop them safely.
TopicValue = Annotated[
    Annotated[TopicNode, Tag("/topic")] | Annotated[Quota, Tag("/quota")] | Annotated[None, Tag("/empty")],
    Discriminator(_topic_kind),
]
TopicNode.model_rebuild()


def as_topic(node: TopicNode | int | None) -> TopicNode:
    """Expands the YAML shorthands `python: 20` (a quota) and `python:` (an empty leaf)."""
    if isinstance(node, TopicNode):
        return node
    return TopicNode(quota=node)


def check_topic_name(name: str) -> str:
    if not name.strip() or "/" in name:
        raise ValueError(f"topic name {name!r} must be non-empty and contain no '/'")
    return name


RESERVED_TOPIC_KEYS = frozenset(TopicNode.model_fields)  # a subtopic may not be named like these
EXPAND_KEY = "expand"
MAX_EXPANDED_LEAVES = 10_000


class TopicExpansionSettings(StrictModel):
    """`topics: {expand: {...}}`: a model grows the topic tree from one subject when the job is prepared."""

    root: str = Field(min_length=1, max_length=120, description="The subject at the top of the tree.")
    depth: int = Field(2, ge=1, le=4, description="Levels of subtopics under the root.")
    degree: int = Field(5, ge=1, le=50, description="Subtopics asked for per topic.")
    quota: int = Field(10, ge=1, le=10_000_000, description="Items per leaf of the grown tree.")
    model: str | None = Field(None, min_length=1, description="Model that grows the tree (default: the spec's).")

    @field_validator("root")
    @classmethod
    def _root_is_a_topic_name(cls, root: str) -> str:
        check_topic_name(root.strip())
        if root.strip() == EXPAND_KEY:
            raise ValueError(f"the root may not be {EXPAND_KEY!r}: that key marks a topic expansion")
        return root.strip()

    @model_validator(mode="after")
    def _bounded(self) -> TopicExpansionSettings:
        if self.degree**self.depth > MAX_EXPANDED_LEAVES:
            raise ValueError(f"degree**depth is over {MAX_EXPANDED_LEAVES:,} leaves: lower depth or degree")
        return self


class TopicExpansion(StrictModel):
    expand: TopicExpansionSettings

    @model_validator(mode="before")
    @classmethod
    def _alone(cls, data: Any) -> Any:
        if isinstance(data, dict) and set(data) - {EXPAND_KEY}:
            others = ", ".join(sorted(str(k) for k in set(data) - {EXPAND_KEY}))
            raise ValueError(f"`{EXPAND_KEY}` grows the whole tree, so topics takes no other keys (found {others})")
        return data


def _topics_kind(value: Any) -> str:
    is_expansion = isinstance(value, TopicExpansion) or (isinstance(value, dict) and EXPAND_KEY in value)
    return "/expand" if is_expansion else "/tree"


# `topics:` is a tree, or `{expand: {...}}`, which `synth.topics.grow` turns into a tree before anything runs.
Topics = Annotated[
    Annotated[TopicExpansion, Tag("/expand")] | Annotated[dict[str, TopicValue], Field(min_length=1), Tag("/tree")],
    Discriminator(_topics_kind),
]


class JobSpec(StrictModel):
    """A whole job: model, task, templates, topics with quotas, verifier chain and how to run it."""

    name: str = Field(pattern=NAME_PATTERN, max_length=128)
    description: str = ""
    model: str = Field(min_length=1, description="Any litellm model string, e.g. openai/gpt-4o-mini.")
    params: ModelParams = Field(default_factory=ModelParams)
    api_base: str | None = Field(None, description="OpenAI-compatible base URL; else OPENAI_API_BASE/BASE_URL.")
    api_key_env: str | None = Field(
        None,
        pattern=ENV_VAR_PATTERN,
        description="Name of the env var that holds the API key (never the key); it ends in KEY, TOKEN or SECRET.",
    )
    transport: Literal["auto", "litellm", "direct"] = Field(
        "auto", description="direct: synth's own HTTP client for OpenAI-compatible servers; auto picks it for them."
    )
    task: PluginRef
    templates: list[str] = Field(min_length=1, description="Prompt templates (Jinja2), used round-robin per topic.")
    vars: dict[str, Any] = Field(default_factory=dict, description="Variables every template sees.")
    inputs: InputRef | None = Field(None, description="Inputs every topic uses unless it names its own.")
    topics: Topics
    total: Quota | None = Field(None, description="Items shared among topics that have a weight, not a quota.")
    verifiers: list[PluginRef] = Field(default_factory=list)
    concurrency: int = Field(16, ge=1, le=4096, description="Most LLM calls in flight; adapts down on 429s.")
    rate_limit: RateLimit = Field(default_factory=RateLimit)
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    batch_size: int = Field(32, ge=1, le=10_000, description="Items per batch: the unit of storage and of resume.")
    output: OutputSpec = Field(default_factory=OutputSpec)
    dataset: DatasetRef | None = Field(None, description="The dataset these records count toward, with targets.")
    topup: TopupRound | None = Field(None, description="Set by `synth topup` on the rounds it submits; never by hand.")

    _api_base = field_validator("api_base")(check_api_base)

    _key_variable = field_validator("api_key_env")(check_key_variable)
    dedup_index: str | None = Field(
        None,
        min_length=1,
        description="A cross-run dedup index (a name under $SYNTH_INDEX_DIR, or a path): near_dedup rejects what "
        "earlier runs in it accepted, and this run's accepted records join it when the run completes.",
    )

    @field_validator("topics")
    @classmethod
    def _check_topic_names(cls, topics: TopicExpansion | dict[str, Any]) -> TopicExpansion | dict[str, Any]:
        for name in topics if isinstance(topics, dict) else ():
            check_topic_name(name)
        return topics

    @field_validator("templates")
    @classmethod
    def _check_templates(cls, templates: list[str]) -> list[str]:
        if len(set(templates)) != len(templates):
            raise ValueError("templates are listed twice")
        for name in templates:
            if name.startswith("/") or ".." in re.split(r"[/\\]", name):
                raise ValueError(f"template {name!r} must be a relative path inside a prompts folder")
        return templates

    @model_validator(mode="after")
    def _check_sizes(self) -> JobSpec:
        if self.expansion is not None:
            if self.total is not None:
                raise ValueError("total is set but topics.expand gives every leaf a quota: nothing to share it among")
            return self
        sized: list[tuple[tuple[str, ...], TopicNode]] = []
        unsized: list[tuple[tuple[str, ...], TopicNode]] = []
        sourced: list[tuple[tuple[str, ...], TopicNode]] = []
        for path, node, inputs in _leaves(self.topic_roots(), (), self.inputs):
            if inputs is not None and node.weight is not None:
                raise ValueError(
                    f"topics.{'.'.join(path)} has inputs: give it a quota (at most that many items) or none "
                    "(one item per input), not a weight"
                )
            group = sourced if inputs is not None else sized if node.quota is not None else unsized
            group.append((path, node))
        if self.total is None and unsized:
            path, node = unsized[0]
            if node.weight is None:
                raise ValueError(f"topics.{'.'.join(path)}: give it a quota, or a weight and a spec-level total")
            raise ValueError(f"topics.{'.'.join(path)} has a weight, so the spec needs `total:` to share out")
        if self.total is not None and not unsized:
            raise ValueError("total is set but every topic has a quota or inputs: nothing to share it among")
        has_sourced = any(node.quota != 0 for _, node in sourced)
        if not any(node.quota for _, node in sized) and not (self.total and unsized) and not has_sourced:
            raise ValueError("every quota is 0: nothing to generate")
        return self

    @cached_property
    def generation(self) -> ModelConfig:
        """The generation model's config: the spec's model fields, limits and retry policy."""
        return ModelConfig(
            model=self.model,
            params=self.params,
            api_base=self.api_base,
            api_key_env=self.api_key_env,
            transport=self.transport,
            concurrency=self.concurrency,
            rate_limit=self.rate_limit,
            retry=self.retry,
        )

    @property
    def expansion(self) -> TopicExpansionSettings | None:
        """The settings of `topics: {expand: ...}`, or None when the spec spells its topic tree out."""
        return self.topics.expand if isinstance(self.topics, TopicExpansion) else None

    def topic_roots(self) -> dict[str, TopicNode]:
        """The topic tree's top level. A spec with `topics.expand` has none until `prepare` grows it."""
        if isinstance(self.topics, TopicExpansion):
            raise UserError("topics.expand is not grown yet: prepare the job (synth.planning.prepare.prepare) first")
        return {name: as_topic(node) for name, node in self.topics.items()}

    @cached_property
    def spec_id(self) -> str:
        """Hash of what decides each item's content; execution knobs and quotas are left out."""
        excluded = set(EXECUTION_FIELDS) | {"total", "description", "topics", "inputs", "topup"}
        content = self.model_dump(mode="json", exclude=excluded)
        if isinstance(self.topics, TopicExpansion):  # a prepared job's spec carries the grown tree instead
            content["topics"] = self.topics.model_dump(mode="json")
        else:
            content["topics"] = {name: _topic_content(node) for name, node in self.topic_roots().items()}
        if self.inputs is not None:  # only when set: specs without inputs keep the spec_id they always had
            content["inputs"] = self.inputs.content()
        if self.topup is not None:  # likewise: a top-up round renames its items, ordinary runs keep theirs
            content["topup"] = self.topup.model_dump(mode="json")
        return stable_hash(content)

    @cached_property
    def verifier_fingerprint(self) -> str:
        """Hash of the verifier chain: a batch verified by another chain is verified again."""
        return stable_hash([ref.model_dump(mode="json") for ref in self.verifiers])


def _leaves(
    topics: dict[str, TopicNode], prefix: tuple[str, ...], inputs: InputRef | None
) -> list[tuple[tuple[str, ...], TopicNode, InputRef | None]]:
    """Every leaf with the inputs it uses: its own, else its nearest ancestor's."""
    found: list[tuple[tuple[str, ...], TopicNode, InputRef | None]] = []
    for name, node in topics.items():
        children = node.children()
        own = node.inputs or inputs
        found.extend(_leaves(children, (*prefix, name), own) if children else [((*prefix, name), node, own)])
    return found


def _topic_content(node: TopicNode) -> dict[str, Any]:
    children = {name: _topic_content(child) for name, child in node.children().items()}
    content: dict[str, Any] = {"description": node.description, "vars": node.vars, "children": children}
    if node.inputs is not None:
        content["inputs"] = node.inputs.content()
    return content
