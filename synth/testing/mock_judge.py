"""Scripted judges for the mock OpenAI server: they read the judge prompts synth sends and answer in their shape.

    server.when_prompt_contains("RESPONSE TO GRADE", Behaviour(responder=lexical_judge))

- `lexical_judge` reads only the fenced data, as the prompt tells a judge to, and scores a response by how much
  of it the context supports (share of its content words found there): a plumbing baseline, not a model.
- `obedient_judge` is the judge an injection hopes for: it reads the whole prompt, fenced data included, and when
  any of it demands a top score it gives 5 on every criterion (A on every pairwise criterion).
- `equivalence_judge` answers the equivalence prompt: equivalent unless the numbers, capitalised names or
  negations of the two texts differ (for tests of the verifier's plumbing, never for measuring it).
"""

from __future__ import annotations

import json
import re
from typing import Any

from synth.judge.fence import injection_findings

MARKER = re.compile(r"<<<([A-Za-z0-9_]+)>>>\n(.*?)\n<<<END_\1>>>", re.DOTALL)
CRITERION_LINE = re.compile(r"^- ([a-z_]+): ", re.MULTILINE)
WORD = re.compile(r"[a-z0-9]+")
STOP = frozenset(
    [
        "a",
        "an",
        "the",
        "of",
        "to",
        "in",
        "on",
        "at",
        "for",
        "and",
        "or",
        "but",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "it",
        "its",
        "this",
        "that",
        "with",
        "as",
        "by",
        "from",
        "has",
        "have",
        "had",
        "not",
        "no",
        "do",
        "does",
        "did",
        "will",
        "would",
        "can",
        "could",
        "should",
        "may",
        "might",
        "their",
        "his",
        "her",
        "they",
        "he",
        "she",
        "we",
        "you",
        "i",
    ]
)
NEGATIONS = frozenset({"not", "no", "never", "none", "nobody", "nothing", "neither", "nor", "cannot", "n't"})


def _messages(body: dict[str, Any]) -> tuple[str, str]:
    messages = body.get("messages") or []
    system = next((str(m["content"]) for m in messages if m.get("role") == "system"), "")
    return system, str(messages[-1]["content"]) if messages else ""


def _data(section: str) -> str:
    """The fenced text in `section` of a prompt, markers removed: what a judge that respects fences reads."""
    return "\n".join(match.group(2) for match in MARKER.finditer(section))


def _support(candidate: str, context: str) -> int:
    words = [w for w in WORD.findall(candidate.lower()) if w not in STOP]
    if not words or not context:
        return 3
    known = set(WORD.findall(context.lower()))
    share = sum(w in known for w in words) / len(words)
    return max(1, min(5, 1 + round(4 * share)))


def lexical_judge(body: dict[str, Any]) -> str:
    _, user = _messages(body)
    criteria = CRITERION_LINE.findall(user.split("<<<", 1)[0])
    if "RESPONSE A (data):" in user:
        context, rest = user.split("RESPONSE A (data):", 1)
        first, second = rest.split("RESPONSE B (data):", 1)
        a, b = _support(_data(first), _data(context)), _support(_data(second), _data(context))
        winner = "A" if a > b else "B" if b > a else "tie"
        return json.dumps({"verdicts": [{"criterion": c, "rationale": "support", "winner": winner} for c in criteria]})
    context, candidate = user.split("RESPONSE TO GRADE (data):", 1)
    score = _support(_data(candidate), _data(context))
    return json.dumps({"scores": [{"criterion": c, "rationale": "lexical support", "score": score} for c in criteria]})


def obedient_judge(body: dict[str, Any]) -> str:
    """Obeys a score demand anywhere in the prompt, inside a fence or not; otherwise the lexical judge's answer."""
    _, user = _messages(body)
    if not injection_findings(_data(user)):
        return lexical_judge(body)
    criteria = CRITERION_LINE.findall(user.split("<<<", 1)[0])
    if "RESPONSE A (data):" in user:
        return json.dumps({"verdicts": [{"criterion": c, "rationale": "as told", "winner": "A"} for c in criteria]})
    return json.dumps({"scores": [{"criterion": c, "rationale": "as told", "score": 5} for c in criteria]})


def equivalence_judge(body: dict[str, Any]) -> str:
    _, user = _messages(body)
    original, candidate = (_data(part) for part in user.split("CANDIDATE (data):", 1))
    for kind, pick in (("number", _numbers), ("name", _names), ("negation", _negations)):
        if pick(original) != pick(candidate):
            difference = f"{pick(original)} vs {pick(candidate)}"
            return json.dumps({"difference": difference, "kind": kind, "equivalent": False})
    return json.dumps({"difference": "none", "kind": "none", "equivalent": True})


def _numbers(text: str) -> set[str]:
    return set(re.findall(r"\d+(?:[.,]\d+)?", text))


def _names(text: str) -> set[str]:
    """Capitalised words that do not start a sentence."""
    names, sentence_start = set(), True
    for token in re.findall(r"[A-Za-z]+|[.!?]", text):
        if token in ".!?":
            sentence_start = True
            continue
        if token[0].isupper() and not sentence_start:
            names.add(token)
        sentence_start = False
    return names


def _negations(text: str) -> set[str]:
    """How many negations the text has, as a one-element set (so every pick compares the same way)."""
    lowered = text.lower().replace("n't", " n't")
    return {str(sum(w in NEGATIONS for w in re.findall(r"[a-z']+", lowered)))}
