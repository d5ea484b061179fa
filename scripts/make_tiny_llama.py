#!/usr/bin/env python3
"""Build a tiny, random-weight Llama checkpoint for semkv's numerical tests.

The checkpoint is laid out like an mlx-community conversion of a Llama-family
model (SmolLM2-135M-Instruct is the real model it imitates), so the Rust
engine loads it through exactly the same code path as a real model:

    DIR/config.json               model_type "llama", every field explicit
    DIR/model.safetensors         mlx-lm key names (model.layers.N.self_attn.q_proj.weight, ...)
    DIR/model.safetensors.index.json
    DIR/tokenizer.json            tiny GPT-2 style byte-level BPE
    DIR/tokenizer_config.json     special tokens + a ChatML chat_template (SmolLM2 style)
    DIR/generation_config.json    bos / eos / pad ids

The model is built with mlx-lm's own ``mlx_lm.models.llama`` classes and saved
with mlx-lm's ``save_model``/``save_config`` helpers, so the weight names are
exactly what ``mlx_lm.load`` round-trips.  Weights are drawn from numpy's PCG64
generator (platform independent), so a given ``--seed`` always yields
byte-identical files.  ``--quantize 4`` applies mlx's affine quantization
(``nn.quantize``) to every Linear and the (tied) embedding, producing the
``.weight``/``.scales``/``.biases`` triplets and the ``"quantization"`` config
entry that mlx-community 4-bit checkpoints use.

Architecture (Llama, scaled down): 2 layers, hidden 64, SwiGLU FFN 128, 4
query heads / 2 KV heads (GQA), head_dim 16, RMSNorm (weight applied as w, not
1 + w), non-traditional RoPE with base 1e5 and no scaling, attention scale
head_dim ** -0.5, no biases, LM head tied to the embedding.

Tokenizer (SmolLM2 layout): no normalizer; pre-tokenizer Digits (every digit
its own piece) then ByteLevel (GPT-2 regex, no prefix space); byte-level BPE
with merges; ByteLevel decoder; no post-processor (encoding never adds a
special token).  Ids: <|endoftext|>=0 <|im_start|>=1 <|im_end|>=2 (all
special), then the 256 byte symbols in code-point order at 3..258, then
learned pieces up to 511.  As in SmolLM2, bos is <|im_start|> (1), eos and pad
are <|im_end|> (2), unk is <|endoftext|> (0), and add_bos_token is false: the
ChatML template itself starts every turn with <|im_start|>.

Example:
    python3 scripts/make_tiny_llama.py --out /tmp/tiny-llama --quantize 4 --group-size 32
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
ENDOFTEXT_ID, IM_START_ID, IM_END_ID = range(3)
BOS_ID, EOS_ID, PAD_ID, UNK_ID = IM_START_ID, IM_END_ID, IM_END_ID, ENDOFTEXT_ID
VOCAB_SIZE = 512

CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "intermediate_size": 128,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "vocab_size": VOCAB_SIZE,
    "hidden_act": "silu",
    "rms_norm_eps": 1e-05,
    "rope_theta": 100000.0,
    "rope_traditional": False,
    "rope_scaling": None,
    "max_position_embeddings": 2048,
    "tie_word_embeddings": True,
    "attention_bias": False,
    "attention_dropout": 0.0,
    "mlp_bias": False,
    "pretraining_tp": 1,
    "torch_dtype": "bfloat16",
    "bos_token_id": BOS_ID,
    "eos_token_id": EOS_ID,
    "pad_token_id": PAD_ID,
}

# Our own Jinja rendering of the ChatML format SmolLM2 uses: every message is
# "<|im_start|>ROLE\nCONTENT<|im_end|>\n" (content untrimmed); a default system
# message is inserted when the conversation does not start with one.
DEFAULT_SYSTEM = "You are a small helpful assistant."
CHAT_TEMPLATE = (
    "{%- for m in messages -%}"
    "{%- if loop.first and m['role'] != 'system' -%}"
    "{{ '<|im_start|>system\\n" + DEFAULT_SYSTEM + "<|im_end|>\\n' }}"
    "{%- endif -%}"
    "{%- if m['content'] is string -%}{%- set text = m['content'] -%}"
    "{%- else -%}{%- set text = m['content'] | selectattr('type', 'equalto', 'text')"
    " | map(attribute='text') | join('') -%}{%- endif -%}"
    "{{ '<|im_start|>' ~ m['role'] ~ '\\n' ~ text ~ '<|im_end|>\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}{%- endif -%}"
)

# Training text for the tokenizer (written for this script).
CORPUS = """\
The harbour town woke early. Fishing boats left at 5 in the morning and came back by 11, and the market opened as soon \
as the first crates were carried up the steps. People asked the same questions every day: what was caught, how much it \
cost, and whether the weather would hold until the weekend.

A small assistant answers questions one turn at a time. The user writes a message, the assistant writes a reply, and \
the conversation goes on. Each message starts with a marker that names the speaker and ends with a marker that closes \
the turn, so the model always knows who is speaking and where a message stops.

When a language model reads a prompt it computes keys and values for every token. Those keys and values can be kept in \
a cache, and if the next request begins with the same words, the saved work can be used again instead of being done from \
the start. Sharing the cache between requests saves time, and the answers stay exactly the same.

"Can you help me with the map?" she asked. "Of course," he said. "The road goes north for 3 miles, then turns east at \
the old mill. After that, follow the river until you see the bridge." She thanked him and wrote the directions down in \
her notebook, next to the list of 12 things she still had to buy.

Why is the sky blue? Sunlight is made of many colours, and the air scatters the short blue waves more than the long red \
ones, so blue light reaches our eyes from every part of the sky. At sunset the light travels through more air, the blue \
is scattered away, and the sky turns orange and red.

What is the capital of France? The capital of France is Paris, a city on the river Seine. Other large cities are Lyon, \
Marseille and Toulouse. In 2024 the city hosted the summer games, and visitors came from all over the world.
"""


def byte_alphabet():
    """The 256 byte symbols of GPT-2's byte-level encoding, in code-point order."""
    from tokenizers import pre_tokenizers

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet(), key=ord)
    assert len(alphabet) == 256
    return alphabet


def build_tokenizer():
    """Train the tiny byte-level BPE and return a ``tokenizers.Tokenizer`` (SmolLM2 layout)."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers

    def pre_tokenizer():
        return pre_tokenizers.Sequence([
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ])

    alphabet = byte_alphabet()
    n_learned = VOCAB_SIZE - len(SPECIAL_TOKENS) - len(alphabet)
    trainer_tok = Tokenizer(models.BPE())
    trainer_tok.pre_tokenizer = pre_tokenizer()
    trainer = trainers.BpeTrainer(
        vocab_size=len(alphabet) + n_learned, min_frequency=1, show_progress=False,
        initial_alphabet=alphabet,
    )
    trainer_tok.train_from_iterator([CORPUS], trainer=trainer)
    trained = json.loads(trainer_tok.to_str())["model"]
    learned = [p for p, _ in sorted(trained["vocab"].items(), key=lambda kv: kv[1]) if p not in set(alphabet)]
    if len(learned) != n_learned:
        sys.exit(f"tokenizer training produced {len(learned)} pieces, wanted {n_learned}")

    pieces = SPECIAL_TOKENS + alphabet + learned
    vocab = {p: i for i, p in enumerate(pieces)}
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in trained["merges"]]

    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tok.pre_tokenizer = pre_tokenizer()
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(
        [AddedToken(t, special=True, normalized=False, lstrip=False, rstrip=False) for t in SPECIAL_TOKENS]
    )
    assert tok.get_vocab_size() == VOCAB_SIZE
    assert [tok.token_to_id(t) for t in SPECIAL_TOKENS] == list(range(len(SPECIAL_TOKENS)))
    return tok


def write_tokenizer_files(out: Path):
    tok = build_tokenizer()
    tok.save(str(out / "tokenizer.json"))
    tokenizer_config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": SPECIAL_TOKENS[BOS_ID],
        "eos_token": SPECIAL_TOKENS[EOS_ID],
        "pad_token": SPECIAL_TOKENS[PAD_ID],
        "unk_token": SPECIAL_TOKENS[UNK_ID],
        "additional_special_tokens": ["<|im_start|>", "<|im_end|>"],
        "add_bos_token": False,
        "add_eos_token": False,
        "add_prefix_space": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": CONFIG["max_position_embeddings"],
        "chat_template": CHAT_TEMPLATE,
    }
    generation_config = {
        "bos_token_id": BOS_ID,
        "eos_token_id": EOS_ID,
        "pad_token_id": PAD_ID,
    }
    for name, obj in [("tokenizer_config.json", tokenizer_config), ("generation_config.json", generation_config)]:
        (out / name).write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n")
    return tok


def init_mean_std(name: str, shape, emb_std: float, final_norm_mean: float):
    """(mean, std) of the normal distribution for one parameter.

    Embeddings are tied to the LM head, so the embedding of the current token
    (which stays in the residual stream) boosts its own logit; a small
    embedding std avoids greedy decoding collapsing onto the input token, and
    a large final-norm weight (Llama's norm multiplies by w) brings the logits
    back to a useful spread (std ~2).
    """
    if name == "model.norm.weight":
        return final_norm_mean, 0.1 * final_norm_mean
    if name.endswith("norm.weight"):
        return 1.0, 0.1  # Llama norms scale by w; keep it near 1 but not constant
    if name == "model.embed_tokens.weight":
        return 0.0, emb_std
    return 0.0, shape[-1] ** -0.5  # Linear: 1/sqrt(fan_in)


def build_model(seed: int, emb_std: float, final_norm_mean: float):
    import mlx.core as mx
    from mlx.utils import tree_flatten, tree_unflatten
    from mlx_lm.models import llama

    model = llama.Model(llama.ModelArgs.from_dict(CONFIG))
    assert not hasattr(model, "lm_head"), "tie_word_embeddings must leave no lm_head"
    rng = np.random.default_rng(seed)
    params = []
    for name, p in sorted(tree_flatten(model.parameters())):
        mean, std = init_mean_std(name, p.shape, emb_std, final_norm_mean)
        w = rng.standard_normal(p.shape, dtype=np.float32) * np.float32(std) + np.float32(mean)
        params.append((name, mx.array(w).astype(mx.bfloat16)))
    model.update(tree_unflatten(params))
    mx.eval(model.parameters())
    return model


def quantizable_dims_divisible(model, group_size: int) -> bool:
    import mlx.nn as nn

    return all(
        m.weight.shape[-1] % group_size == 0
        for _, m in model.named_modules()
        if isinstance(m, (nn.Linear, nn.Embedding))
    )


def verify(out: Path, n_tokens: int = 32):
    """Load with mlx_lm.load and greedy-generate from a chat prompt."""
    import mlx.core as mx
    from mlx_lm import load
    from mlx_lm.generate import generate_step

    mx.set_default_device(mx.cpu)
    model, tokenizer = load(str(out))
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}], add_generation_prompt=True
    )
    if isinstance(prompt, dict):  # transformers 5 may return a BatchEncoding
        prompt = prompt["input_ids"]
    assert prompt[0] == IM_START_ID and prompt.count(IM_START_ID) == 3, prompt
    assert prompt.count(IM_END_ID) == 2 and ENDOFTEXT_ID not in prompt, prompt
    digits = tokenizer.encode("in 2024", add_special_tokens=False)
    assert len(digits) >= 5, f"digits must be split one per token: {digits}"
    toks = []
    for tok, _ in generate_step(mx.array(prompt), model, max_tokens=n_tokens, sampler=lambda x: mx.argmax(x, axis=-1)):
        toks.append(int(tok))
    print(f"verify: prompt {prompt}")
    print(f"verify: greedy {toks} ({len(set(toks))} distinct)")
    print(f"verify: text {tokenizer.decode(toks)!r}")
    if len(set(toks)) < 4:
        sys.exit("verify: greedy output is degenerate; adjust --emb-std")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, type=Path, help="output checkpoint directory")
    ap.add_argument("--seed", type=int, default=0, help="weight RNG seed (default 0)")
    ap.add_argument("--quantize", type=int, choices=[2, 3, 4, 5, 6, 8], default=None,
                    help="affine-quantize Linear/Embedding weights to this many bits")
    ap.add_argument("--group-size", type=int, default=None,
                    help="quantization group size (default 64, or 32 if 64 does not divide every input dim)")
    ap.add_argument("--emb-std", type=float, default=0.01, help="embedding init std (default 0.01)")
    ap.add_argument("--final-norm-mean", type=float, default=25.0,
                    help="mean of the final norm weight w; the norm scales by w (default 25)")
    ap.add_argument("--no-verify", action="store_true", help="skip the mlx_lm.load + generate check")
    args = ap.parse_args()

    import mlx.core as mx
    import mlx.nn as nn
    from mlx_lm.utils import save_config, save_model

    mx.set_default_device(mx.cpu)
    args.out.mkdir(parents=True, exist_ok=True)
    tok = write_tokenizer_files(args.out)
    assert tok.get_vocab_size() == CONFIG["vocab_size"]

    config = json.loads(json.dumps(CONFIG))
    model = build_model(args.seed, args.emb_std, args.final_norm_mean)
    if args.quantize:
        gs = args.group_size or (64 if quantizable_dims_divisible(model, 64) else 32)
        if not quantizable_dims_divisible(model, gs):
            sys.exit(f"group size {gs} does not divide every quantizable input dimension")
        nn.quantize(model, group_size=gs, bits=args.quantize)
        config["quantization"] = {"group_size": gs, "bits": args.quantize}
    save_model(args.out, model)
    save_config(config, args.out / "config.json")
    print(f"wrote {args.out}")
    if not args.no_verify:
        verify(args.out)


if __name__ == "__main__":
    main()
