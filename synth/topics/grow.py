"""Grows a topic tree from one subject with a model, breadth-first, and writes it as the YAML `topics:` accepts.

Each topic of a level is asked for `degree` subtopics at once (the client's limiter bounds the calls in flight).
Answers are cleaned, not re-asked: a JSON list (or `{"subtopics": [...]}`), else a numbered or bulleted list;
names are trimmed, capped and deduplicated among siblings; a topic whose answer yields nothing stays a leaf.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field

from synth.ids import derive_seed
from synth.llm import LLMClient
from synth.llm.output import capped
from synth.prompts import Template
from synth.spec.model import EXPAND_KEY, RESERVED_TOPIC_KEYS, JobSpec, TopicExpansionSettings

logger = logging.getLogger(__name__)

EXPAND_TEMPLATE = "topics/expand.j2"
MAX_NAME_CHARS = 60
TopicTree = dict[str, "TopicTree"]
"""Topic name → subtopics; a leaf maps to an empty dict."""
Frontier = list[tuple[tuple[str, ...], TopicTree]]
"""The topics of one level: each path with the (still empty) mapping its subtopics go into."""

LIST_ITEM = re.compile(r"^[ \t]*(?:\d{1,3}[.)]|[-*•+])[ \t]+(.+?)[ \t]*$", re.MULTILINE)
DESCRIPTION_TAIL = re.compile(r"\s+[-–—]\s+.*$|:\s.*$|\s+\(.*\)$")
MARKUP = re.compile(r"\*+|`+")  # markdown emphasis and code marks around (or inside) a name
PUNCT_SPACE = re.compile(r"[\W_]+")
PLACEHOLDER = re.compile(r"[<>{}\[\]|]")


class Subtopics(BaseModel):
    """What an expansion call in JSON mode must answer: {"subtopics": ["<name>", ...]}."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    subtopics: list[str] = Field(min_length=1)


@dataclass
class GrownTree:
    """A grown tree under its root, the calls it took, and the topics whose answers gave no usable subtopic."""

    tree: TopicTree
    calls: int = 0
    bare: list[str] = field(default_factory=list)

    @property
    def leaf_count(self) -> int:
        return len(leaf_paths(self.tree))


def leaf_paths(tree: TopicTree, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths: list[tuple[str, ...]] = []
    for name, children in tree.items():
        paths.extend(leaf_paths(children, (*prefix, name)) if children else [(*prefix, name)])
    return paths


async def grow_tree(spec: JobSpec, template: Template, settings: TopicExpansionSettings) -> GrownTree:
    """Asks `spec.model` for the subtopics of each topic, level by level, `settings.depth` levels under the root.

    A model error that outlives the client's retries propagates: a half-grown tree is never returned.
    """
    grown = GrownTree({settings.root: {}})
    llm = LLMClient(spec.generation)
    try:
        level: Frontier = [((settings.root,), grown.tree[settings.root])]
        for _ in range(settings.depth):
            asks = (_subtopics(llm, template, settings, path) for path, _ in level)
            answers = await asyncio.gather(*asks)
            grown.calls += len(level)
            level = _attach(level, answers, grown)
    finally:
        await llm.aclose()
    return grown


def _attach(level: Frontier, answers: Sequence[list[str]], grown: GrownTree) -> Frontier:
    following: Frontier = []
    for (path, node), names in zip(level, answers, strict=True):
        if not names:
            grown.bare.append("/".join(path))
            logger.warning("topic stays a leaf: %s gave no usable subtopics", "/".join(path))
        for name in names:
            node[name] = {}
            following.append(((*path, name), node[name]))
    return following


async def _subtopics(
    llm: LLMClient, template: Template, settings: TopicExpansionSettings, path: tuple[str, ...]
) -> list[str]:
    """One topic's subtopics. In JSON mode the prompt asks for `Subtopics`; else for a bare JSON list of names."""
    answer = capped(Subtopics, "subtopics", settings.degree)
    variables = {
        "root": settings.root,
        "topic": path[-1],
        "path": list(path),
        "category": "/".join(path),
        "degree": settings.degree,
        "json_mode": llm.output_mode(answer).is_json,
    }
    messages = template.render(variables)
    seed = derive_seed(llm.params.seed, EXPAND_KEY, path)
    completion = await llm.complete(messages, seed, answer)
    return clean_names(parse_names(completion.text), parent=path[-1], limit=settings.degree)


def parse_names(text: str) -> list[str]:
    """Topic names from a JSON list of strings (bare, fenced, or as the one list in an object), else from the
    lines of a numbered or bulleted list, where a trailing description (`: …`, ` - …`, `(…)`) is cut off."""
    found = _json_names(text)
    if found is not None:
        return found
    return [DESCRIPTION_TAIL.sub("", MARKUP.sub("", item)) for item in LIST_ITEM.findall(text)]


def _json_names(text: str) -> list[str] | None:
    decoder = json.JSONDecoder()
    for match in re.finditer(r"[\[{]", text):
        try:
            value, _ = decoder.raw_decode(text, match.start())
        except json.JSONDecodeError:
            continue
        names = _names_in(value)
        if names is not None:
            return names
    return None


def _names_in(value: Any) -> list[str] | None:
    if isinstance(value, dict):
        lists = [v for v in value.values() if isinstance(v, list)]
        return _names_in(lists[0]) if len(lists) == 1 else None
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return list(value)
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        named = [v.get("name") or v.get("topic") or v.get("title") for v in value]
        return [n for n in named if isinstance(n, str)] or None
    return None


def clean_names(names: Sequence[str], parent: str, limit: int) -> list[str]:
    """Trimmed, capped, usable as topic keys, distinct from each other and from the parent; at most `limit`."""
    seen = {normalize(parent)}
    kept: list[str] = []
    for raw in names:
        name = _cap(" ".join(raw.strip().strip("\"'`*_").split()).rstrip(".,;:"))
        key = normalize(name)
        if not key or "/" in name or name in RESERVED_TOPIC_KEYS or name == EXPAND_KEY or key in seen:
            continue
        if PLACEHOLDER.search(name):  # `<name`, `{name}`: the prompt's example echoed back, not a topic
            continue
        seen.add(key)
        kept.append(name)
    return kept[:limit]


def normalize(name: str) -> str:
    """Case, width, punctuation and spacing folded: `Data-Structures` and `data structures` are one topic."""
    return PUNCT_SPACE.sub(" ", unicodedata.normalize("NFKC", name).casefold()).strip()


def _cap(name: str) -> str:
    if len(name) <= MAX_NAME_CHARS:
        return name
    cut = name[:MAX_NAME_CHARS]
    return (cut.rsplit(" ", 1)[0] if " " in cut else cut).rstrip(".,;:- ")


def topics_mapping(tree: TopicTree, quota: int | None) -> dict[str, Any]:
    """The tree as `topics:` takes it: leaves get `{quota: N}`, or stay `{}` when quota is None."""
    return {
        name: topics_mapping(children, quota) if children else ({"quota": quota} if quota is not None else {})
        for name, children in tree.items()
    }


def tree_from_mapping(data: Any) -> TopicTree | None:
    """The names of a `topics_mapping` read back (quotas dropped); None when `data` is not one."""
    if not isinstance(data, dict) or not data:
        return None
    tree: TopicTree = {}
    for name, value in data.items():
        children = {k: v for k, v in value.items() if k not in RESERVED_TOPIC_KEYS} if isinstance(value, dict) else {}
        if not isinstance(name, str) or (value is not None and not isinstance(value, dict | int)):
            return None
        sub = tree_from_mapping(children) if children else {}
        if sub is None:
            return None
        tree[name] = sub
    return tree


def render_yaml(tree: TopicTree, quota: int | None, header: Sequence[str]) -> str:
    """YAML with a `#` header: what `topics:` accepts, in the model's order, for a person to review."""
    body = yaml.safe_dump(topics_mapping(tree, quota), sort_keys=False, allow_unicode=True, width=1000)
    return "".join(f"# {line}\n".replace("# \n", "#\n") for line in header) + body
