#!/usr/bin/env python3
"""Time llama.cpp prefill and greedy decode on a GGUF file (CPU baseline for semkv).

Same protocol as scripts/mlxlm_bench.py: a random prompt of --prompt-len token ids,
greedy generation through llama-cpp-python's own ``Llama.generate``; prefill time =
time to the first token, decode = --gen further tokens; best of --repeats runs after
--warmup runs. The KV cache is reset before every run (no prompt reuse).

Needs ``pip install llama-cpp-python`` (builds llama.cpp from source; ~20 min on 2 cores).

Example:
    python3 scripts/llamacpp_bench.py --model ~/.cache/semkv/models/gemma-3-270m/gemma-3-270m-q4_k_m.gguf \\
        --prompt-len 512 --gen 64 --threads 2 --json
"""

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, type=Path, help="GGUF file")
    ap.add_argument("--prompt-len", type=int, default=512, help="prompt tokens (default 512)")
    ap.add_argument("--gen", type=int, default=64, help="greedy decode steps (default 64)")
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="CPU threads (default: all)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed warmup runs (default 1)")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs; the best is reported (default 3)")
    ap.add_argument("--seed", type=int, default=0, help="prompt RNG seed (default 0)")
    ap.add_argument("--json", action="store_true", help="print a single JSON object")
    args = ap.parse_args()

    from llama_cpp import Llama, __version__

    llm = Llama(
        model_path=str(args.model),
        n_ctx=args.prompt_len + args.gen + 64,
        n_batch=min(2048, args.prompt_len),
        n_threads=args.threads,
        n_threads_batch=args.threads,
        verbose=False,
    )
    vocab = llm.n_vocab()
    prompt = np.random.default_rng(args.seed).integers(4, vocab, size=args.prompt_len).tolist()

    def run_once():
        llm.reset()
        t0 = time.perf_counter()
        t1 = None
        n = 0
        for _ in llm.generate(prompt, top_k=1, temp=0.0, reset=True):
            n += 1
            if n == 1:
                t1 = time.perf_counter()
            if n == args.gen + 1:
                break
        return t1 - t0, time.perf_counter() - t1

    for _ in range(args.warmup):
        run_once()
    runs = [run_once() for _ in range(max(1, args.repeats))]
    prefill_s = min(r[0] for r in runs)
    decode_s = min(r[1] for r in runs)
    result = {
        "engine": "llama.cpp (llama-cpp-python %s)" % __version__,
        "model": str(args.model),
        "threads": args.threads,
        "prompt_len": args.prompt_len,
        "gen": args.gen,
        "prefill_tok_s": args.prompt_len / prefill_s,
        "decode_tok_s": args.gen / decode_s,
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"llama.cpp: prefill {result['prefill_tok_s']:.1f} tok/s, decode {result['decode_tok_s']:.1f} tok/s")


if __name__ == "__main__":
    main()
