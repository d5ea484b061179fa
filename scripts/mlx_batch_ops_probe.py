#!/usr/bin/env python3
"""Time the per-layer operations of one batched decode step at B sequences, on MLX's
current device: the K/V scatter into stacked buffers, attention over B caches (with
and without a padding mask) and RoPE with per-row offsets. Shapes default to a
Gemma-3-12B global layer (16 query heads, 8 KV heads, head_dim 256) at 1K tokens.

    python3 scripts/mlx_batch_ops_probe.py --device gpu --batches 1,8,16
"""

import argparse
import time


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", choices=["cpu", "gpu"], default="gpu")
    ap.add_argument("--batches", default="1,8,16")
    ap.add_argument("--tokens", type=int, default=1024)
    ap.add_argument("--iters", type=int, default=50)
    args = ap.parse_args()

    import mlx.core as mx

    mx.set_default_device(mx.cpu if args.device == "cpu" else mx.gpu)
    hq, hkv, d, n = 16, 8, 256, args.tokens
    cap = (n + 1 + 255) // 256 * 256
    dt = mx.bfloat16

    def timed(fn):
        out = fn()
        mx.eval(out)
        t = time.perf_counter()
        for _ in range(args.iters):
            out = fn()
            mx.eval(out)
        return (time.perf_counter() - t) / args.iters * 1e6

    for b in [int(x) for x in args.batches.split(",")]:
        keys = mx.zeros((b, hkv, cap, d), dtype=dt)
        new = mx.random.normal((b, hkv, 1, d)).astype(dt)
        idx = mx.full((b, 1, 1, 1), n, dtype=mx.int32)
        q = mx.random.normal((b, hq, 1, d)).astype(dt)
        kv = mx.random.normal((b, hkv, n + 1, d)).astype(dt)
        mask = mx.ones((b, 1, 1, n + 1), dtype=mx.bool_)
        offsets = mx.full((b,), n, dtype=mx.int32)
        mx.eval(keys, new, idx, q, kv, mask, offsets)
        state = {"k": keys}

        def scatter():
            state["k"] = mx.put_along_axis(state["k"], idx, new, axis=2)
            return state["k"]

        rows = {
            "put_along_axis": timed(scatter),
            "sdpa": timed(lambda: mx.fast.scaled_dot_product_attention(q, kv, kv, scale=0.0625)),
            "sdpa+mask": timed(lambda: mx.fast.scaled_dot_product_attention(q, kv, kv, scale=0.0625, mask=mask)),
            "rope(offsets)": timed(lambda: mx.fast.rope(q, d, traditional=False, base=1e6, scale=0.125, offset=offsets)),
        }
        print(f"B={b}: " + ", ".join(f"{k} {v:.0f} us" for k, v in rows.items()))


if __name__ == "__main__":
    main()
