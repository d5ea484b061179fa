#!/usr/bin/env python3
"""Aggregate decode throughput of mlx-lm's own batched generation (``BatchGenerator``)
for several batch sizes: the baseline for semkv's batched-decode table.

B different random prompts of --prompt-len tokens are inserted together; decode time
runs from the first generated token to the last (--gen tokens per sequence, no stop
tokens); best of --repeats after one warm-up. Also prints, with --qmm, the time of one
4-bit ``quantized_matmul`` of M rows against the model's MLP up-projection shape, to
show how the kernel's cost grows with the number of rows.

    python3 scripts/mlxlm_batch_bench.py --model DIR --batches 1,4,8,16 --device gpu --json
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, type=Path)
    ap.add_argument("--prompt-len", type=int, default=1024)
    ap.add_argument("--gen", type=int, default=64)
    ap.add_argument("--batches", default="1,2,4,8,16")
    ap.add_argument("--device", choices=["cpu", "gpu"], default="gpu")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--qmm", action="store_true", help="also time quantized_matmul by rows")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    import mlx.core as mx
    from mlx_lm.generate import BatchGenerator
    from mlx_lm.utils import load_model

    mx.set_default_device(mx.cpu if args.device == "cpu" else mx.gpu)
    model, config = load_model(args.model)
    mx.eval(model.parameters())
    vocab = config["vocab_size"]
    rng = np.random.default_rng(0)
    sizes = [int(b) for b in args.batches.split(",")]
    prompts = [rng.integers(4, vocab, size=args.prompt_len).tolist() for _ in range(max(sizes))]

    def run(b):
        gen = BatchGenerator(model, max_tokens=args.gen + 1, completion_batch_size=max(b, 1),
                             prefill_batch_size=max(b, 1))
        gen.insert(prompts[:b], [args.gen + 1] * b)
        first = None
        count = 0
        while responses := gen.next_generated():
            if first is None:
                first = time.perf_counter()
                continue
            count += len(responses)
        end = time.perf_counter()
        gen.close()
        return count / (end - first)

    rows = []
    for b in sizes:
        run(b)
        best = max(run(b) for _ in range(max(1, args.repeats)))
        rows.append({"sequences": b, "aggregate_tok_s": best})
    result = {"engine": "mlx-lm BatchGenerator", "model": str(args.model), "prompt_len": args.prompt_len,
              "gen": args.gen, "batches": rows}

    if args.qmm:
        hidden, inter = config["hidden_size"], config["intermediate_size"]
        w = mx.random.normal((inter, hidden)).astype(mx.bfloat16)
        wq, scales, biases = mx.quantize(w, group_size=64, bits=4)
        timings = []
        for m in [1, 2, 4, 7, 8, 16, 32]:
            x = mx.random.normal((m, hidden)).astype(mx.bfloat16)
            y = mx.quantized_matmul(x, wq, scales, biases, transpose=True, group_size=64, bits=4)
            mx.eval(y)
            t = time.perf_counter()
            for _ in range(200):
                y = mx.quantized_matmul(x, wq, scales, biases, transpose=True, group_size=64, bits=4)
                mx.eval(y)
            timings.append({"rows": m, "us": (time.perf_counter() - t) / 200 * 1e6})
        result["quantized_matmul"] = {"shape": [inter, hidden], "timings": timings}

    if args.json:
        print(json.dumps(result))
    else:
        for r in rows:
            print(f"mlx-lm batch {r['sequences']}: {r['aggregate_tok_s']:.1f} tok/s aggregate")
        for t in result.get("quantized_matmul", {}).get("timings", []):
            print(f"quantized_matmul rows {t['rows']}: {t['us']:.0f} us")


if __name__ == "__main__":
    main()
