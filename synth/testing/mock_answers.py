"""What the mock OpenAI server answers: a valid answer for whichever task sent the request, so any spec can be
dry-run offline.

The task is found from the request's `response_format` schema name where the call sent one, else from what the
prompt asks for (`Reply as {"pairs": ...}`, `<passage>`, `### Signature`, numbered lines...); the count of items
from the schema's `maxItems`, else from the prompt ("Write 3 questions"). Answers take their substance from the
prompt (a doc_qa evidence quote is a sentence of the passage, a paraphrase rewrites the quoted text), and are
distinct per request, derived from the request key. A schema of no known task gets a value built from the schema.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from typing import Any

WORDS = (
    "design", "compare", "explain", "refactor", "summarize", "translate", "debug", "outline", "estimate", "plan",
    "review", "draft", "classify", "optimize", "document", "test", "schedule", "negotiate", "analyze", "visualize",
)  # fmt: skip
NOUNS = (
    "a caching layer", "a quarterly report", "a sorting routine", "a customer email", "a database index",
    "a travel budget", "a unit test suite", "a press release", "a recipe", "a migration plan", "a pivot table",
    "a commit history", "a job posting",
)  # fmt: skip
SUBTOPIC_WORDS = (
    "basics", "tools", "techniques", "history", "safety", "planning", "mistakes", "examples", "theory", "practice",
    "terms", "trends", "costs", "myths", "checklists", "troubleshooting", "measurement", "materials", "roles",
    "rules", "variants", "case studies", "regional styles", "advanced methods", "for beginners",
)  # fmt: skip
REPHRASINGS = ("In other words:", "Put differently:", "To say it another way:", "Rephrased:", "Said plainly:")
CODE_TASKS = (
    ("returns the sum of the even numbers in a list of integers", "sum(v for v in values if v % 2 == 0)",
     [([], 0), ([1, 2, 3, 4], 6), ([-2, 5], -2)]),
    ("returns the largest number in a list of integers, or 0 for an empty list", "max(values, default=0)",
     [([], 0), ([3, 9, 2], 9), ([-5, -1], -1)]),
    ("counts the negative numbers in a list of integers", "sum(1 for v in values if v < 0)",
     [([], 0), ([-1, 2, -3], 2), ([4], 0)]),
)  # fmt: skip
SCHEMA_TASKS = {
    "InstructionSample": "instructions",
    "InstructionItems": "instructions",
    "ParaphraseList": "paraphrase",
    "Translation": "backtranslation",
    "DocQaPairs": "doc_qa",
    "CodeAnswer": "code",
    "Subtopics": "topics",
}
PROMPT_MARKERS = (  # (task, what its prompt says), first match wins
    ("doc_qa", re.compile(r"<passage>|\"pairs\"")),
    ("code", re.compile(r"### Signature|\"entry_point\"")),
    ("paraphrase", re.compile(r"\"paraphrases\"|paraphrase.*numbered line", re.S | re.I)),
    ("topics", re.compile(r"\"subtopics\"|subtopics of", re.I)),
    ("backtranslation", re.compile(r"\"translation\"|Translate the text", re.I)),
    ("labelled", re.compile(r"Instruction:\s*$")),
)
COUNT_PATTERNS = {
    "doc_qa": r"Write (\d+) question",
    "paraphrase": r"Write (\d+) paraphrase",
    "topics": r"List (\d+) distinct subtopics",
    "instructions": r"Write (\d+) new",
}


def answer_for(key: str, body: dict[str, Any]) -> str:
    """The reply text for one chat request; `key` identifies the request (its messages and seed)."""
    schema_name, schema = _schema_of(body)
    prompt = "\n".join(str(m.get("content", "")) for m in body.get("messages") or [])
    task = SCHEMA_TASKS.get(schema_name or "") or _task_in(prompt)
    if task is None and schema is not None:
        return json.dumps(value_from_schema(schema, key))
    count = _count(task or "instructions", prompt, schema)
    return BUILDERS[task or "instructions"](key, prompt, count)


def default_reply(key: str, body: dict[str, Any] | None = None) -> str:
    """A valid instructions sample, distinct per key."""
    return json.dumps(_instruction(key))


def _instruction(key: str) -> dict[str, str]:
    h = int(key, 16) if re.fullmatch(r"[0-9a-f]+", key) else int(_digest(key), 16)
    verb, noun = WORDS[h % len(WORDS)], NOUNS[(h >> 8) % len(NOUNS)]
    return {
        "instruction": f"Please {verb} {noun} for me (request {key[:8]}).",
        "input": "",
        "output": f"Here is how to {verb} {noun}: first gather the facts, then work step by step. Ref {key}.",
    }


def _instructions(key: str, prompt: str, count: int) -> str:
    if count == 1 and '"items"' not in prompt:
        return default_reply(key)
    return json.dumps({"items": [_instruction(_digest(key, i)) for i in range(count)]})


def _labelled(key: str, prompt: str, count: int) -> str:
    sample = _instruction(key)
    return f"Instruction: {sample['instruction']}\nOutput: {sample['output']}"


def _doc_qa(key: str, prompt: str, count: int) -> str:
    sentences = _sentences(_between(prompt, "<passage>", "</passage>") or _quoted(prompt) or prompt)
    start = int(_digest(key), 16) % max(len(sentences), 1)
    pairs = []
    for i in range(count):
        evidence = sentences[(start + i) % len(sentences)] if sentences else prompt[:80]
        opening = " ".join(evidence.split()[:5])
        question = f"What does the passage say about “{opening}”? (ref {key[:6]}-{i + 1})"
        pairs.append({"question": question, "answer": evidence, "evidence": evidence})
    return json.dumps({"pairs": pairs})


def _code(key: str, prompt: str, count: int) -> str:
    name = f"solve_{_digest(key)[:6]}"
    task, body, cases = CODE_TASKS[int(_digest(key), 16) % len(CODE_TASKS)]
    topic = _match(r'about "([^"]+)"', prompt) or "lists"
    signature = f"def {name}(values: list[int]) -> int:"
    tests = "".join(f"assert {name}({given!r}) == {expected!r}\n" for given, expected in cases)
    answer = {
        "problem": f"Write {name}(values) that {task}. A {topic} warm-up (ref {key[:8]}).",
        "entry_point": name,
        "signature": signature,
        "solution": f"{signature}\n    return {body}\n",
        "tests": tests,
    }
    return json.dumps(answer)


def _paraphrase(key: str, prompt: str, count: int) -> str:
    source = _quoted(prompt) or "the text"
    offset = int(_digest(key), 16)
    found = [
        f"{REPHRASINGS[(offset + i) % len(REPHRASINGS)]} {source} (variant {key[:6]}-{i + 1})" for i in range(count)
    ]
    if re.search(r"numbered line", prompt, re.I):
        return "\n".join(f"{i}. {text}" for i, text in enumerate(found, 1))
    return json.dumps({"paraphrases": found})


def _backtranslation(key: str, prompt: str, count: int) -> str:
    """A reversible stand-in: to a pivot, the text tagged with the language; back, the tag taken off."""
    text = _quoted(prompt) or ""
    target = _match(r"to ([A-Z][\w -]*?)\. ", prompt) or "French"
    tagged = re.fullmatch(r"(.*) \[[\w -]+\]", text, re.S)
    translation = tagged.group(1) if tagged else f"{text} [{target}]"
    return json.dumps({"translation": translation}) if '"translation"' in prompt else translation


def _topics(key: str, prompt: str, count: int) -> str:
    topic = _match(r'subtopics of "([^"]+)"', prompt) or "topic"
    stem = topic if len(topic) <= 30 else " ".join(topic.split()[-2:])
    names = [f"{stem} {word}" for word in SUBTOPIC_WORDS[:count]]
    return json.dumps({"subtopics": names} if '"subtopics"' in prompt else names)


BUILDERS: dict[str, Callable[[str, str, int], str]] = {
    "instructions": _instructions,
    "labelled": _labelled,
    "doc_qa": _doc_qa,
    "code": _code,
    "paraphrase": _paraphrase,
    "backtranslation": _backtranslation,
    "topics": _topics,
}


def value_from_schema(schema: dict[str, Any], key: str, root: dict[str, Any] | None = None) -> Any:
    """A value valid under `schema` (objects, arrays, strings, numbers, enums, anyOf, local $refs)."""
    root = root or schema
    if "$ref" in schema:
        return value_from_schema(_resolve(schema["$ref"], root), key, root)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    for combinator in ("anyOf", "oneOf"):
        if combinator in schema:
            options = [o for o in schema[combinator] if o.get("type") != "null"] or schema[combinator]
            return value_from_schema(options[0], key, root)
    if "allOf" in schema:
        return value_from_schema({k: v for part in schema["allOf"] for k, v in part.items()}, key, root)
    kind = schema.get("type", "object")
    kind = next((k for k in kind if k != "null"), "null") if isinstance(kind, list) else kind
    return SCALARS.get(kind, _object)(schema, key, root)


def _object(schema: dict[str, Any], key: str, root: dict[str, Any]) -> Any:
    properties = schema.get("properties", {})
    return {name: value_from_schema(sub, f"{key}.{name}", root) for name, sub in properties.items()}


def _array(schema: dict[str, Any], key: str, root: dict[str, Any]) -> Any:
    size = max(int(schema.get("minItems", 1)), 1)
    size = min(size, int(schema.get("maxItems", size)))
    return [value_from_schema(schema.get("items", {"type": "string"}), f"{key}[{i}]", root) for i in range(size)]


def _string(schema: dict[str, Any], key: str, root: dict[str, Any]) -> Any:
    text = f"mock {key} {_digest(key)[:8]}"
    return text.ljust(int(schema.get("minLength", 0)), "x")[: schema.get("maxLength")]


def _number(schema: dict[str, Any], key: str, root: dict[str, Any]) -> Any:
    low = schema.get("minimum", schema.get("exclusiveMinimum", 0) + (1 if "exclusiveMinimum" in schema else 0))
    value = max(low, 1) if "maximum" not in schema else min(max(low, 1), schema["maximum"])
    return int(value) if schema.get("type") == "integer" else float(value)


SCALARS: dict[str, Callable[[dict[str, Any], str, dict[str, Any]], Any]] = {
    "object": _object,
    "array": _array,
    "string": _string,
    "integer": _number,
    "number": _number,
    "boolean": lambda schema, key, root: True,
    "null": lambda schema, key, root: None,
}


def _resolve(ref: str, root: dict[str, Any]) -> dict[str, Any]:
    node: Any = root
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    resolved: dict[str, Any] = node
    return resolved


def _schema_of(body: dict[str, Any]) -> tuple[str | None, dict[str, Any] | None]:
    fmt = body.get("response_format") or {}
    inner = fmt.get("json_schema") if isinstance(fmt, dict) else None
    if not isinstance(inner, dict) or not isinstance(inner.get("schema"), dict):
        return None, None
    return inner.get("name"), inner["schema"]


def _task_in(prompt: str) -> str | None:
    return next((task for task, marker in PROMPT_MARKERS if marker.search(prompt)), None)


def _count(task: str, prompt: str, schema: dict[str, Any] | None) -> int:
    """How many items the answer holds: the schema's bound where it sets one, else what the prompt asks for."""
    bound = _max_items(schema) if schema else None
    asked = _match(COUNT_PATTERNS.get(task, r"(?!)"), prompt)
    count = int(asked) if asked else 1
    return min(count, bound) if bound else count


def _max_items(schema: dict[str, Any]) -> int | None:
    arrays = [sub for sub in schema.get("properties", {}).values() if sub.get("type") == "array"]
    return next((int(a["maxItems"]) for a in arrays if "maxItems" in a), None)


def _sentences(text: str) -> list[str]:
    parts = re.split(r"(?<=[.!?])\s+|\n{2,}", text.strip())
    return [p.strip() for p in parts if len(p.strip()) >= 12]


def _between(text: str, start: str, end: str) -> str | None:
    found = re.search(re.escape(start) + r"\s*(.*?)\s*" + re.escape(end), text, re.S)
    return found.group(1) if found else None


def _quoted(text: str) -> str | None:
    return _between(text, '"""', '"""')


def _match(pattern: str, text: str) -> str | None:
    found = re.search(pattern, text)
    return found.group(1) if found else None


def _digest(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]
