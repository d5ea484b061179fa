#!/usr/bin/env python3
"""Record mlx-lm reference outputs for a checkpoint, for semkv's numerical tests.

For a deterministic set of random prompts (token ids drawn from a seeded
numpy PCG64 generator, uniform in [4, vocab_size), no <bos> prepended) this
runs the checkpoint with mlx-lm's own model code and its own caches
(``model.make_cache()``: KVCache on global layers, RotatingKVCache on sliding
layers) and writes, per prompt:

    prompt_ids            the prompt
    last_logits           logits at the last prompt position, one-shot prefill
    chunked_last_logits   the same logits with the prompt prefilled in chunks
                          of --chunk tokens through the same cache type
    chunked_max_abs_diff  max |last_logits - chunked_last_logits|: mlx-lm's
                          own chunked-vs-one-shot discrepancy (a tolerance datum)
    greedy_tokens         --gen greedy tokens continuing the one-shot cache,
                          one token per step, argmax of the model's logits
                          (first index wins ties), no EOS stop
    greedy_margins        top1 - top2 logit at each greedy step (near 0 means
                          a tie that tiny numeric differences can flip)
    greedy_topk_ids       top --top-k token ids at each greedy step
    greedy_topk_logits    their logits (lets a teacher-forced decode be checked)

Logits are computed in the checkpoint's dtype (bf16 for the tiny fixtures) and
upcast to float32; each value is written as the shortest decimal that parses
back to the same float32.  Everything runs on the CPU by default, so the
output is deterministic; the file also records mlx / mlx-lm versions and the
checkpoint's config.json.

Example:
    python3 scripts/mlxlm_reference.py --model tests/fixtures/tiny-gemma3-bf16 \\
        --out tests/fixtures/tiny-gemma3-bf16.ref.json
"""

import argparse
import json
from pathlib import Path

import numpy as np


def f32_list(a):
    """float32 values as Python floats that print as their shortest f32 decimal."""
    a = np.asarray(a, dtype=np.float32).reshape(-1)
    if not np.all(np.isfinite(a)):
        raise ValueError("non-finite logits")
    return [float(str(v)) for v in a]


def to_json(obj, indent=0):
    """JSON with one line per list of scalars (compact but diff-friendly)."""
    pad, inner = " " * indent, " " * (indent + 2)
    if isinstance(obj, dict):
        items = [f"{inner}{json.dumps(k)}: {to_json(v, indent + 2)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}" if items else "{}"
    if isinstance(obj, list) and any(isinstance(v, (dict, list)) for v in obj):
        items = [inner + to_json(v, indent + 2) for v in obj]
        return "[\n" + ",\n".join(items) + "\n" + pad + "]"
    return json.dumps(obj, separators=(", ", ": "))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, type=Path, help="checkpoint directory")
    ap.add_argument("--out", required=True, type=Path, help="output JSON file")
    ap.add_argument("--prompt-len", type=int, nargs="+", default=[5, 40, 100],
                    help="prompt lengths, one case each (default: 5 40 100)")
    ap.add_argument("--gen", type=int, default=64, help="greedy decode steps (default 64)")
    ap.add_argument("--chunk", type=int, default=7, help="chunk size for chunked prefill (default 7)")
    ap.add_argument("--top-k", type=int, default=5, help="top-k recorded per greedy step (default 5)")
    ap.add_argument("--seed", type=int, default=1234, help="prompt RNG seed (default 1234)")
    ap.add_argument("--device", choices=["cpu", "gpu"], default="cpu", help="mlx device (default cpu)")
    args = ap.parse_args()

    import mlx.core as mx
    import mlx_lm
    from mlx_lm import load

    mx.set_default_device(mx.cpu if args.device == "cpu" else mx.gpu)
    model, _tokenizer = load(str(args.model))
    config = json.loads((args.model / "config.json").read_text())
    vocab = config["vocab_size"]

    def last_logits(cache, ids):
        out = model(mx.array(ids)[None], cache=cache)[0, -1]
        mx.eval(out)
        return out

    def prefill_chunked(ids):
        cache = model.make_cache()
        for i in range(0, len(ids), args.chunk):
            out = last_logits(cache, ids[i : i + args.chunk])
        return out

    rng = np.random.default_rng(args.seed)
    cases = []
    for n in args.prompt_len:
        ids = rng.integers(4, vocab, size=n).tolist()

        cache = model.make_cache()
        logits = last_logits(cache, ids)
        one_shot = np.array(logits.astype(mx.float32))
        chunked = np.array(prefill_chunked(ids).astype(mx.float32))

        tokens, margins, topk_ids, topk_logits = [], [], [], []
        for _ in range(args.gen):
            tok = int(mx.argmax(logits).item())
            l32 = np.array(logits.astype(mx.float32))
            order = np.argsort(-l32, kind="stable")[: max(args.top_k, 2)]
            tokens.append(tok)
            margins.append(l32[order[0]] - l32[order[1]])
            topk_ids.append(order[: args.top_k].tolist())
            topk_logits.append(f32_list(l32[order[: args.top_k]]))
            logits = last_logits(cache, [tok])

        cases.append({
            "prompt_len": n,
            "prompt_ids": ids,
            "last_logits": f32_list(one_shot),
            "chunk_size": args.chunk,
            "chunked_last_logits": f32_list(chunked),
            "chunked_max_abs_diff": f32_list([np.abs(one_shot - chunked).max()])[0],
            "greedy_tokens": tokens,
            "greedy_margins": f32_list(margins),
            "greedy_topk_ids": topk_ids,
            "greedy_topk_logits": topk_logits,
        })
        print(f"len {n}: chunked max |diff| {cases[-1]['chunked_max_abs_diff']:g}, "
              f"{len(set(tokens))} distinct greedy tokens, min margin {min(margins):g}")

    ref = {
        "generator": "scripts/mlxlm_reference.py",
        "mlx_version": mx.__version__,
        "mlx_lm_version": mlx_lm.__version__,
        "device": args.device,
        "model_dir": args.model.name,
        "config": config,
        "prompt_seed": args.seed,
        "prompt_id_range": [4, vocab],
        "bos_prepended": False,
        "gen_steps": args.gen,
        "cases": cases,
    }
    args.out.write_text(to_json(ref) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
