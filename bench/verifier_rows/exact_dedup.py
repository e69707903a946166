"""exact_dedup on a planted corpus: every duplicate is known by construction, so recall and false removals are exact.

100,000 texts: 70,000 distinct sentences, 10,000 near misses (a distinct sentence with one word changed: must be
kept), 10,000 exact copies and 10,000 copies changed only in case, punctuation, spacing or character width (must be
removed), shuffled with a fixed seed. The first text of each sentence in corpus order is the one to keep. The real
verifier runs through `verify_batch` on a real claim index (SQLite, `LocalState`), 64 records a batch.
"""

from __future__ import annotations

import random
import string
import tempfile
from collections.abc import Callable
from pathlib import Path

from synth.state.local import LocalState
from synth.verify.protocol import VerifierContext
from synth.verify.registry import build

from ._metrics import binary_scores, make_record, verify_timed

SIZE, NEAR_MISSES, EXACT, VARIANTS = 100_000, 10_000, 10_000, 10_000
SEED = 0
Sentence = tuple[str, ...]


def planted_corpus(seed: int = SEED) -> list[tuple[str, int]]:
    """(text, sentence id) pairs; texts with the same id are duplicates of each other."""
    rng = random.Random(seed)
    vocab = sorted({"".join(rng.choices(string.ascii_lowercase, k=rng.randint(3, 9))) for _ in range(3000)})
    sentences: list[Sentence] = []
    seen: set[Sentence] = set()
    while len(sentences) < SIZE - EXACT - VARIANTS:
        distinct = len(sentences) < SIZE - EXACT - VARIANTS - NEAR_MISSES
        candidate = _sentence(rng, vocab) if distinct else _near_miss(rng, vocab, rng.choice(sentences))
        if candidate not in seen:
            seen.add(candidate)
            sentences.append(candidate)
    corpus = [(_plain(s), i) for i, s in enumerate(sentences)]
    corpus += [(_plain(sentences[i]), i) for i in (rng.randrange(len(sentences)) for _ in range(EXACT))]
    corpus += [(_variant(rng, sentences[i]), i) for i in (rng.randrange(len(sentences)) for _ in range(VARIANTS))]
    rng.shuffle(corpus)
    return corpus


def _sentence(rng: random.Random, vocab: list[str]) -> Sentence:
    return tuple(rng.choices(vocab, k=rng.randint(6, 14)))


def _near_miss(rng: random.Random, vocab: list[str], sentence: Sentence) -> Sentence:
    at = rng.randrange(len(sentence))
    return (*sentence[:at], rng.choice(vocab), *sentence[at + 1 :])


def _plain(sentence: Sentence) -> str:
    return " ".join(sentence).capitalize() + "."


def _variant(rng: random.Random, sentence: Sentence) -> str:
    """The sentence as written by someone else: only case, punctuation, spacing or width differ."""
    changes: list[Callable[[list[str]], list[str]]] = [
        lambda ws: [w.upper() for w in ws],
        lambda ws: [w.title() for w in ws],
        lambda ws: [w + rng.choice([",", ";", " -", "!!", ":"]) if rng.random() < 0.3 else w for w in ws],
        lambda ws: [w + rng.choice(["  ", "\t", "\n"]) if rng.random() < 0.3 else w for w in ws],
        lambda ws: [_full_width(w) if rng.random() < 0.2 else w for w in ws],
        lambda ws: ['"', *ws, '"'],
    ]
    text = _plain(sentence)
    while text == _plain(sentence):
        ws = list(sentence)
        for change in rng.sample(changes, rng.randint(1, 3)):
            ws = change(ws)
        text = " ".join(ws) + rng.choice(["", ".", "?", " ..."])
    return text


def _full_width(word: str) -> str:
    """ASCII letters as their full-width forms (Ａ for A), which NFKC folds back."""
    return "".join(chr(ord(c) + 0xFEE0) if c in string.ascii_letters else c for c in word)


def row() -> dict[str, object]:
    corpus = planted_corpus()
    first_seen: set[int] = set()
    truth = []
    for _, sentence_id in corpus:
        truth.append(sentence_id in first_seen)
        first_seen.add(sentence_id)
    records = [
        make_record(f"r{i:06d}", "instructions", {"instruction": text, "input": "", "output": ""})
        for i, (text, _) in enumerate(corpus)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        state = LocalState(Path(tmp) / "state.sqlite")
        try:
            context = VerifierContext(claims=state, count_tokens=len, text_fields=("instruction", "input", "output"))
            verdicts, rps = verify_timed(build("exact_dedup", {}, context), records)
        finally:
            state.close()
    scores = binary_scores(truth, [not v.passed for v in verdicts])
    return {
        "verifier": "exact_dedup",
        "labelled_set": "planted: 10k exact + 10k case/punct/space/width duplicates, 10k one-word near misses",
        "positive": "duplicate (rejected)",
        "size": len(records),
        "precision": scores["precision"],
        "recall": scores["recall"],
        "kappa": scores["kappa"],
        "throughput_rps": rps,
        "label_source": f"by construction (seed {SEED})",
        "notes": f"{sum(truth)} planted duplicates, {scores['false_positives']} false removals, "
        f"{scores['false_negatives']} missed",
    }
