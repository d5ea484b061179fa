#!/usr/bin/env python3
"""Write a Gemma-3-shaped checkpoint with random weights (benchmarks only).

No model hub is reachable from the benchmark machines, so speed comparisons at the
real sizes use random weights in the real shapes: the model is built with mlx-lm's
own `gemma3_text` classes (initialised by MLX), optionally quantized to MLX affine
4-bit (group 64, mlx-community layout) and saved with mlx-lm's `save_model` and a
`config.json`, so semkv and mlx-lm read exactly the same files. A tokenizer is not
written (benchmarks feed token ids).

    python3 scripts/make_random_gemma3.py --shape 12b --bits 4 --out /tmp/gemma3-12b-q4
"""

import argparse
import json
from pathlib import Path

# Published Gemma 3 text shapes (google/gemma-3-*-it configs).
SHAPES = {
    "270m": dict(hidden_size=640, num_hidden_layers=18, intermediate_size=2048, num_attention_heads=4,
                 num_key_value_heads=1, sliding_window=512, vocab_size=262144),
    "1b": dict(hidden_size=1152, num_hidden_layers=26, intermediate_size=6912, num_attention_heads=4,
               num_key_value_heads=1, sliding_window=512, vocab_size=262144),
    "4b": dict(hidden_size=2560, num_hidden_layers=34, intermediate_size=10240, num_attention_heads=8,
               num_key_value_heads=4, sliding_window=1024, vocab_size=262208,
               rope_scaling={"rope_type": "linear", "factor": 8.0}),
    "12b": dict(hidden_size=3840, num_hidden_layers=48, intermediate_size=15360, num_attention_heads=16,
                num_key_value_heads=8, sliding_window=1024, vocab_size=262208,
                rope_scaling={"rope_type": "linear", "factor": 8.0}),
}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", choices=sorted(SHAPES), required=True)
    ap.add_argument("--bits", type=int, choices=[0, 4, 8], default=4, help="0 = keep bf16")
    ap.add_argument("--group-size", type=int, default=64)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    import mlx.core as mx
    import mlx.nn as nn
    from mlx.utils import tree_map
    from mlx_lm.models import gemma3_text
    from mlx_lm.utils import save_model

    mx.random.seed(args.seed)
    config = dict(model_type="gemma3_text", head_dim=256, query_pre_attn_scalar=256, rms_norm_eps=1e-6,
                  rope_theta=1e6, rope_local_base_freq=1e4, sliding_window_pattern=6,
                  max_position_embeddings=131072, **SHAPES[args.shape])
    model = gemma3_text.Model(gemma3_text.ModelArgs.from_dict(config))
    model.update(tree_map(lambda p: p.astype(mx.bfloat16), model.parameters()))
    model.sanitize({})  # no lm_head: tied embeddings, as in the real checkpoints
    if args.bits:
        nn.quantize(model, group_size=args.group_size, bits=args.bits)
        config["quantization"] = {"group_size": args.group_size, "bits": args.bits}
    mx.eval(model.parameters())
    args.out.mkdir(parents=True, exist_ok=True)
    save_model(args.out, model)
    (args.out / "config.json").write_text(json.dumps(config, indent=2))
    print(f"wrote {args.shape} ({'q%d' % args.bits if args.bits else 'bf16'}) to {args.out}")


if __name__ == "__main__":
    main()
