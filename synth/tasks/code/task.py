"""Programming problems: a statement, a reference solution and unit tests a sandboxed verifier can run as they are.

The model answers in JSON (when the job uses JSON mode) or in fenced sections (`### Problem`, `### Signature`,
`### Solution`, `### Tests`, each code in a ```python block). Either way the code is checked statically with
`ast` (never run here): it parses, the solution defines the declared signature at top level, and the tests assert,
call the entry point and import nothing but the solution's own names.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from synth.errors import ParseError
from synth.tasks.base import OptionsOf, Task, TaskOptions, extract_json, validated
from synth.tasks.code.pycheck import check_python

LANGUAGES = ("python",)
IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]*$"
# `### Solution`, `## Tests:` ... at the start of a line; the section runs to the next such heading.
HEADING = re.compile(
    r"^[ \t]*#{1,4}[ \t]*(problem|signature|entry[ _]point|solution|tests?)[ \t]*:?[ \t]*$", re.I | re.M
)
CODE_FENCE = re.compile(r"```[ \t]*(?:python|py|python3)?[ \t]*\n(.*?)^[ \t]*```", re.I | re.M | re.S)
OPEN_FENCE = re.compile(r"```", re.M)
SECTION_FIELD = {"test": "tests", "entry point": "entry_point"}  # headings whose field has another name


class CodeOptions(TaskOptions):
    language: str = Field("python", description="Programming language of problem, solution and tests.")
    difficulty: str = Field(
        "medium", min_length=1, max_length=40, description="Default difficulty; a `difficulty` var in the spec wins."
    )

    @field_validator("language")
    @classmethod
    def _supported(cls, value: str) -> str:
        if value not in LANGUAGES:
            raise ValueError(f"language {value!r} is not supported yet; the code task supports: {', '.join(LANGUAGES)}")
        return value


class CodeSample(BaseModel):
    """One problem. `tests` run in the namespace the solution defines (no imports); `test_functions` are the
    top-level test functions to call after that (empty when the tests are top-level asserts)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    language: Literal["python"] = "python"
    difficulty: str = "medium"
    problem: str = Field(min_length=1)
    entry_point: str = Field("", pattern=r"^$|" + IDENTIFIER)
    signature: str = Field(min_length=1)
    solution: str = Field(min_length=1)
    tests: str = ""
    test_functions: list[str] = Field(default_factory=list)

    @field_validator("problem", "entry_point", "signature", mode="before")
    @classmethod
    def _strip(cls, value: Any) -> Any:
        return value.strip() if isinstance(value, str) else value

    @field_validator("solution", "tests", mode="before")
    @classmethod
    def _unfence(cls, value: Any) -> Any:
        """Code inside a JSON string sometimes still wears its ``` fence."""
        if not isinstance(value, str):
            return value
        match = CODE_FENCE.search(value)
        return match.group(1).strip("\n") if match and value.strip().startswith("```") else value.strip("\n")


class CodeAnswer(BaseModel):
    """What a call in JSON mode must answer: the fields the prompt asks for. `CodeSample` is what is kept."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    problem: str = Field(min_length=1)
    entry_point: str = Field(pattern=IDENTIFIER)
    signature: str = Field(min_length=1)
    solution: str = Field(min_length=1)
    tests: str = Field(min_length=1)


class CodeTask(Task):
    name: ClassVar[str] = "code"
    version: ClassVar[str] = "1"
    Options: ClassVar[type[TaskOptions]] = CodeOptions
    Sample: ClassVar[type[BaseModel]] = CodeSample
    text_fields: ClassVar[tuple[str, ...]] = ("problem", "solution", "tests")
    prompt_fields: ClassVar[tuple[str, ...]] = ("problem",)

    opts = OptionsOf(CodeOptions)

    def template_vars(self) -> dict[str, Any]:
        return {"language": self.opts.language, "default_difficulty": self.opts.difficulty}

    def response_model(self) -> type[BaseModel] | None:
        return CodeAnswer

    def finish_sample(self, sample: dict[str, Any], variables: Mapping[str, Any]) -> dict[str, Any]:
        """A `difficulty` var of the item (spec or topic `vars:`) overrides the option's default."""
        difficulty = variables.get("difficulty")
        return {**sample, "difficulty": str(difficulty)} if difficulty is not None else sample

    def parse(self, text: str, finish_reason: str | None = None) -> list[dict[str, Any]]:
        fields = parse_sections(text, finish_reason) if HEADING.search(text) else _json_fields(text, finish_reason)
        language = self.opts.language
        if str(fields.get("language", language)).lower() != language:
            raise ParseError("schema_error", f"language: {fields['language']!r}, not the task's", text)
        sample = validated(CodeSample, {**fields, "language": language, "difficulty": self.opts.difficulty}, text)
        checked = check_python(sample.entry_point, sample.signature, sample.solution, sample.tests, text)
        update = {
            "entry_point": checked.entry_point,
            "signature": checked.signature,
            "tests": checked.tests,
            "test_functions": checked.test_functions,
        }
        return [sample.model_copy(update=update).model_dump()]


def _json_fields(text: str, finish_reason: str | None) -> dict[str, Any]:
    value = extract_json(text, finish_reason)
    if not isinstance(value, dict):
        raise ParseError("schema_error", "(root): one JSON object, not a list", text)
    return value


def parse_sections(text: str, finish_reason: str | None) -> dict[str, str]:
    """Fields from `### Problem` / `### Signature` / `### Solution` / `### Tests` sections; the first of each wins.
    Code sections need a closed ``` block; one left open at max_tokens is `truncated`."""
    fields: dict[str, str] = {}
    for label, body in _sections(text):
        fields.setdefault(SECTION_FIELD.get(label, label), body)
    if finish_reason == "length" and not {"solution", "tests"} <= fields.keys():
        raise ParseError("truncated", "output cut off at max_tokens before the solution and tests", text)
    for name in ("signature", "solution", "tests"):
        if name in fields:
            fields[name] = _code_block(fields[name], name, name != "signature", finish_reason, text)
    if "entry_point" in fields:
        fields["entry_point"] = fields["entry_point"].strip("`").strip()
    return fields


def _sections(text: str) -> list[tuple[str, str]]:
    """(heading, body) pairs. A line inside a ``` block is never a heading: `# Tests` there is a Python comment."""
    sections: list[tuple[str, list[str]]] = []
    in_code = False
    for line in text.splitlines():
        in_code ^= line.lstrip().startswith("```")
        heading = None if in_code else HEADING.match(line)
        if heading:
            sections.append((heading.group(1).lower(), []))
        elif sections:
            sections[-1][1].append(line)
    return [(label, "\n".join(lines).strip()) for label, lines in sections]


def _code_block(body: str, name: str, required: bool, finish_reason: str | None, raw: str) -> str:
    match = CODE_FENCE.search(body)
    if match:
        return match.group(1).strip("\n")
    if len(OPEN_FENCE.findall(body)) % 2 == 1:
        reason = "truncated" if finish_reason == "length" else "parse_error"
        raise ParseError(reason, f"the {name} code block is never closed", raw)
    if required:
        raise ParseError("parse_error", f"the {name} section has no ```python code block", raw)
    return body.strip("`")
