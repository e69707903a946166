"""Writes verifiers/data/name_words.txt: the census names that are mostly common English words (Will, Grant, Brown).

A name is a common word when its lowercase form is frequent (log-probability above -13, about once in 440,000
tokens) and more frequent than its capitalised form, in spaCy's English lexeme table (spacy-lookups-data, MIT,
cased counts from web text). That table is a 98 MB wheel, so it is read once here and not installed at run time:

    pip download --no-deps spacy-lookups-data==1.0.5 -d /tmp/sld
    python scripts/pii_name_words.py /tmp/sld/spacy_lookups_data-1.0.5-py2.py3-none-any.whl
"""

from __future__ import annotations

import gzip
import json
import sys
import zipfile
from pathlib import Path

from verifiers.pii_names import FIRST_NAME_FILES, LAST_NAME_FILE, census_names

TABLE = "spacy_lookups_data/data/en_lexeme_prob.json.gz"
MIN_LOG_PROB = -13.0
OUT = Path(__file__).resolve().parents[1] / "verifiers" / "data" / "name_words.txt"


def is_common_word(name: str, log_prob: dict[str, float]) -> bool:
    lower = log_prob.get(name.lower(), -99.0)
    return lower > MIN_LOG_PROB and lower > log_prob.get(name.capitalize(), -99.0)


def main(wheel: str) -> None:
    with zipfile.ZipFile(wheel) as zf:
        log_prob = json.loads(gzip.decompress(zf.read(TABLE)))
    names = set(census_names(LAST_NAME_FILE)).union(*(census_names(f) for f in FIRST_NAME_FILES))
    words = sorted(name for name in names if is_common_word(name, log_prob))
    header = f"# census names that are mostly common words; made by scripts/pii_name_words.py from {Path(wheel).name}\n"
    OUT.write_text(header + "\n".join(words) + "\n")
    print(f"{len(words)} of {len(names)} names written to {OUT}")


if __name__ == "__main__":
    main(sys.argv[1])
