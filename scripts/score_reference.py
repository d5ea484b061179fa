#!/usr/bin/env python3
"""Record mlx-lm's teacher-forced scores, the reference for semkv's Score RPC.

For each model and case, the context and the continuation (token ids) run through
mlx-lm's own model in one forward pass; the log-softmax (float32) at the position
before each continuation token gives that token's log-probability, and argmax
(first index wins ties) says whether it was the greedy choice. Written per case:

    context_ids, continuation_ids, logprobs, greedy, margins (top1 - top2 logit
    at each scored position: near 0 means a tie tiny differences can flip)

Cases: the tiny fixtures (random ids from a seeded PCG64 generator, context 40 and
continuation 24 tokens); with --smollm2 DIR (an f32 export of the real SmolLM2 135M
Instruct made by scripts/smollm2_reference.py --export DIR --export-dtype f32), its
"sky" chat prompt from tests/fixtures/smollm2-135m.ref.json followed by the reference's
own greedy answer and by a fixed off-topic answer; with --gemma3-270m DIR (an f32 HF
export of the PyPI GGUF made by scripts/gguf_reference.py GGUF --out DIR --dtype f32),
"Once upon a time" (ids from tests/fixtures/gemma3-270m.ref.json) followed by its
greedy continuation and by 32 tokens of the long prompt's middle (off topic).

Example:
    python3 scripts/gguf_reference.py ~/.cache/semkv/models/gemma-3-270m/gemma-3-270m-q4_k_m.gguf \\
        --out /tmp/gemma-3-270m-hf32 --dtype f32
    python3 scripts/score_reference.py --smollm2 ~/.cache/semkv/models/smollm2-135m-instruct-f32 \\
        --gemma3-270m /tmp/gemma-3-270m-hf32 --out tests/fixtures/score.ref.json
"""

import argparse
import json
from pathlib import Path

import mlx.core as mx
import numpy as np
from mlx_lm import load

ROOT = Path(__file__).resolve().parent.parent


def f32_list(a):
    a = np.asarray(a, dtype=np.float32).reshape(-1)
    return [float(str(v)) for v in a]


def score(model, context, continuation):
    ids = mx.array([context + continuation])
    logits = model(ids).astype(mx.float32)[0]  # [L, vocab]
    start = len(context) - 1
    preds = logits[start : start + len(continuation)]
    logz = mx.logsumexp(preds, axis=-1)
    conts = mx.array(continuation)
    chosen = mx.take_along_axis(preds, conts[:, None], axis=-1)[:, 0]
    logprobs = chosen - logz
    greedy = mx.argmax(preds, axis=-1) == conts
    top2 = mx.sort(preds, axis=-1)[:, -2:]
    margins = top2[:, 1] - top2[:, 0]
    mx.eval(logprobs, greedy, margins)
    return {
        "context_ids": context,
        "continuation_ids": continuation,
        "logprobs": f32_list(logprobs),
        "greedy": [bool(g) for g in np.array(greedy)],
        "margins": f32_list(margins),
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smollm2", type=Path, help="f32 export of SmolLM2 135M Instruct")
    p.add_argument("--gemma3-270m", type=Path, help="f32 HF export of the Gemma 3 270M GGUF")
    p.add_argument("--out", type=Path, default=ROOT / "tests/fixtures/score.ref.json")
    args = p.parse_args()
    mx.set_default_device(mx.cpu)
    out = {"generator": "scripts/score_reference.py", "models": {}}
    rng = np.random.Generator(np.random.PCG64(7))
    for name in ["tiny-gemma3-bf16", "tiny-llama-bf16"]:
        model, _ = load(str(ROOT / "tests/fixtures" / name))
        context = [int(x) for x in rng.integers(6, 500, 40)]
        continuation = [int(x) for x in rng.integers(6, 500, 24)]
        out["models"][name] = [score(model, context, continuation)]
    if args.smollm2:
        model, tokenizer = load(str(args.smollm2))
        ref = json.loads((ROOT / "tests/fixtures/smollm2-135m.ref.json").read_text())
        sky = next(c for c in ref["cases"] if c["name"] == "sky")
        off_topic = tokenizer.encode(
            "Stocks fell sharply on Monday as investors weighed new tariffs.",
            add_special_tokens=False,
        )
        out["models"]["smollm2-135m-instruct"] = [
            score(model, sky["prompt_ids"], sky["greedy_tokens"][:32]),
            score(model, sky["prompt_ids"], off_topic),
        ]
    if args.gemma3_270m:
        model, _ = load(str(args.gemma3_270m))
        ref = json.loads((ROOT / "tests/fixtures/gemma3-270m.ref.json").read_text())
        once = next(c for c in ref["cases"] if c["name"] == "once_upon")
        long = next(c for c in ref["cases"] if c["name"] != "once_upon")
        middle = len(long["prompt_ids"]) // 2
        out["models"]["gemma-3-270m"] = [
            score(model, once["prompt_ids"], once["greedy_tokens"]),
            score(model, once["prompt_ids"], long["prompt_ids"][middle : middle + 32]),
        ]
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
