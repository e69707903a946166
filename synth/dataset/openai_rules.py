"""The checks OpenAI documents for chat fine-tuning files (the cookbook's "Chat fine-tuning data prep": format
errors by type), plus its file-level limits, run on what an export wrote.

Per example: `data_type` (not a JSON object), `missing_messages_list`, `message_missing_key` (role and content),
`message_unrecognized_key` (keys beyond role, content, name, function_call, weight), `unrecognized_role`
(system, user, assistant, tool, function), `missing_content` (no string content and no function call),
`example_missing_assistant_message`, and `bad_weight` (weight other than 0 or 1). Per file: fewer than
MIN_EXAMPLES examples, and examples longer than the context limit (counted with cl100k, the cookbook's tokenizer).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MESSAGE_KEYS = frozenset({"role", "content", "name", "function_call", "weight"})
ROLES = frozenset({"system", "user", "assistant", "tool", "function"})
MIN_EXAMPLES = 10
TOKENS_PER_MESSAGE, TOKENS_PER_NAME = 3, 1  # the cookbook's per-message overhead
MAX_EXAMPLE_TOKENS = 65_536  # gpt-4o-class models; gpt-3.5-turbo takes 16,385


def example_errors(example: Any) -> list[str]:
    """The format error types of one example (empty: OpenAI accepts it)."""
    if not isinstance(example, dict):
        return ["data_type"]
    messages = example.get("messages")
    if not isinstance(messages, list) or not messages:
        return ["missing_messages_list"]
    errors: list[str] = []
    for message in messages:
        errors.extend(_message_errors(message))
    if not any(isinstance(m, dict) and m.get("role") == "assistant" for m in messages):
        errors.append("example_missing_assistant_message")
    return errors


def _message_errors(message: Any) -> list[str]:
    if not isinstance(message, dict):
        return ["data_type"]
    errors = []
    if "role" not in message or "content" not in message:
        errors.append("message_missing_key")
    if set(message) - MESSAGE_KEYS:
        errors.append("message_unrecognized_key")
    if message.get("role") not in ROLES:
        errors.append("unrecognized_role")
    content = message.get("content")
    if (content is None and "function_call" not in message) or (content is not None and not isinstance(content, str)):
        errors.append("missing_content")
    if "weight" in message and message["weight"] not in (0, 1):
        errors.append("bad_weight")
    return errors


def example_tokens(example: dict[str, Any], count: Callable[[str], int]) -> int:
    """Tokens of one example as the cookbook counts them: content and name, plus per-message overhead."""
    total = 3  # every reply is primed with <|start|>assistant<|message|>
    for message in example.get("messages", []):
        total += TOKENS_PER_MESSAGE + sum(count(v) for v in message.values() if isinstance(v, str))
        total += TOKENS_PER_NAME if "name" in message else 0
    return total


@dataclass
class OpenAIReport:
    examples: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    over_token_limit: int = 0
    too_few_examples: bool = False

    @property
    def is_valid(self) -> bool:
        return not self.errors and not self.over_token_limit and not self.too_few_examples

    def as_dict(self) -> dict[str, Any]:
        return {
            "examples": self.examples,
            "errors": dict(self.errors),
            "over_token_limit": self.over_token_limit,
            "too_few_examples": self.too_few_examples,
            "valid": self.is_valid,
        }


def check_examples(examples: Iterable[Any], count: Callable[[str], int] | None = None) -> OpenAIReport:
    report = OpenAIReport()
    for example in examples:
        report.examples += 1
        found = example_errors(example)
        report.errors.update(found)
        if (
            not found
            and count is not None
            and _may_be_over(example)
            and example_tokens(example, count) > MAX_EXAMPLE_TOKENS
        ):
            report.over_token_limit += 1
    report.too_few_examples = report.examples < MIN_EXAMPLES
    return report


def _may_be_over(example: dict[str, Any]) -> bool:
    """A token is at least one UTF-8 byte: an example of fewer bytes than the limit cannot be over it."""
    size = sum(len(v.encode()) for m in example["messages"] for v in m.values() if isinstance(v, str))
    return size > MAX_EXAMPLE_TOKENS


def check_file(path: Path, count: Callable[[str], int] | None = None) -> OpenAIReport:
    """Every line of a JSONL file through the checks; a line that is not JSON counts as `data_type`."""
    with path.open(encoding="utf-8") as lines:
        return check_examples((_parsed(line) for line in lines), count)


def _parsed(line: str) -> Any:
    try:
        return json.loads(line)
    except json.JSONDecodeError:
        return None
