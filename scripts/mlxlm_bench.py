#!/usr/bin/env python3
"""Time mlx-lm prefill and greedy decode for a checkpoint (baseline for semkv's benchmark).

Prefill: one-shot forward pass of a random prompt of --prompt-len tokens into
fresh ``model.make_cache()`` caches, synchronised with ``mx.eval``; reported
as prompt tokens per second (best of --repeats runs, after --warmup runs).

Both are measured through mlx-lm's own ``generate_step`` (greedy, its default
prefill step of 2048 tokens and its asynchronous decode pipeline), i.e. what an
mlx-lm user gets: prefill time = time to the first token; decode = --gen
further tokens, reported as tokens per second.

Weights stay in the checkpoint's dtype unless --dtype casts the floating
weights after loading.  Quantized weights stay quantized (their scales and
biases are cast too) unless --dequantize is given, which expands them first.

Output is one JSON object on stdout with --json, else a readable summary.

Example:
    python3 scripts/mlxlm_bench.py --model tests/fixtures/tiny-gemma3-bf16 \\
        --prompt-len 512 --gen 64 --json
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, type=Path, help="checkpoint directory")
    ap.add_argument("--prompt-len", type=int, default=512, help="prompt tokens (default 512)")
    ap.add_argument("--gen", type=int, default=64, help="greedy decode steps (default 64)")
    ap.add_argument("--device", choices=["cpu", "gpu"], default="cpu", help="mlx device (default cpu)")
    ap.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default=None,
                    help="cast floating-point weights to this dtype after loading")
    ap.add_argument("--dequantize", action="store_true", help="dequantize quantized layers after loading")
    ap.add_argument("--warmup", type=int, default=1, help="untimed warmup runs (default 1)")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs; the best is reported (default 3)")
    ap.add_argument("--seed", type=int, default=0, help="prompt RNG seed (default 0)")
    ap.add_argument("--json", action="store_true", help="print a single JSON object")
    args = ap.parse_args()

    import mlx.core as mx
    import mlx_lm
    from mlx.utils import tree_flatten, tree_map
    from mlx_lm.utils import dequantize_model, load_model

    mx.set_default_device(mx.cpu if args.device == "cpu" else mx.gpu)
    model, config = load_model(args.model)
    if args.dequantize:
        model = dequantize_model(model)
    if args.dtype:
        dt = getattr(mx, args.dtype)
        cast = lambda p: p.astype(dt) if mx.issubdtype(p.dtype, mx.floating) else p
        model.update(tree_map(cast, model.parameters()))
    mx.eval(model.parameters())

    vocab = config["vocab_size"]
    prompt = mx.array(np.random.default_rng(args.seed).integers(4, vocab, size=args.prompt_len))[None]

    from mlx_lm.generate import generate_step

    def run_once():
        cache = model.make_cache()
        t0 = time.perf_counter()
        t1 = None
        for n, _ in enumerate(generate_step(prompt[0], model, max_tokens=args.gen + 1, prompt_cache=cache)):
            if n == 0:
                t1 = time.perf_counter()
        t2 = time.perf_counter()
        return t1 - t0, t2 - t1

    for _ in range(args.warmup):
        run_once()
    runs = [run_once() for _ in range(max(1, args.repeats))]
    prefill_s = min(r[0] for r in runs)
    decode_s = min(r[1] for r in runs)

    weight_dtypes = sorted({str(p.dtype).replace("mlx.core.", "") for _, p in tree_flatten(model.parameters())})
    result = {
        "engine": "mlx-lm",
        "mlx_version": mx.__version__,
        "mlx_lm_version": mlx_lm.__version__,
        "model": str(args.model),
        "device": args.device,
        "weight_dtypes": weight_dtypes,
        "quantization": None if args.dequantize else config.get("quantization"),
        "prompt_len": args.prompt_len,
        "gen": args.gen,
        "warmup": args.warmup,
        "repeats": len(runs),
        "prefill_s": prefill_s,
        "decode_s": decode_s,
        "prefill_tok_s": args.prompt_len / prefill_s,
        "decode_tok_s": args.gen / decode_s if args.gen else None,
    }
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:>16}: {v}")


if __name__ == "__main__":
    main()
