#!/usr/bin/env python3
"""Build a tiny, random-weight Gemma 3 text checkpoint for semkv's numerical tests.

The checkpoint is laid out like an mlx-community conversion so the Rust engine
loads it through exactly the same code path as a real model:

    DIR/config.json               model_type "gemma3_text", every field explicit
    DIR/model.safetensors         mlx-lm key names (model.layers.N.self_attn.q_proj.weight, ...)
    DIR/model.safetensors.index.json
    DIR/tokenizer.json            tiny SentencePiece-style BPE with byte fallback
    DIR/tokenizer_config.json     special tokens + a Gemma 3 style chat_template
    DIR/generation_config.json    bos / eos / pad ids

The model is built with mlx-lm's own ``mlx_lm.models.gemma3_text`` classes and
saved with mlx-lm's ``save_model``/``save_config`` helpers, so the weight names
are exactly what ``mlx_lm.load`` round-trips.  Weights are drawn from numpy's
PCG64 generator (platform independent), so a given ``--seed`` always yields
byte-identical files.  ``--quantize 4`` applies mlx's affine quantization
(``nn.quantize``) to every Linear and the (tied) embedding, producing the
``.weight``/``.scales``/``.biases`` triplets and the ``"quantization"`` config
entry that mlx-community 4-bit checkpoints use.

Tokenizer (Gemma 3 style): normalizer replaces " " with "\u2581", no
pre-tokenizer, BPE with byte_fallback, decoder Replace/ByteFallback/Fuse.
There is NO post-processor: encoding never adds <bos> automatically; the chat
template (and the engine) must prepend it explicitly.  Special-token ids:
<pad>=0 <eos>=1 <bos>=2 <unk>=3 <start_of_turn>=4 <end_of_turn>=5, then the 256
byte tokens <0x00>..<0xFF> at ids 6..261, then learned pieces up to 511.

Example:
    python3 scripts/make_tiny_gemma3.py --out /tmp/tiny --quantize 4
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

SPECIAL_TOKENS = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"]
PAD_ID, EOS_ID, BOS_ID, UNK_ID, SOT_ID, EOT_ID = range(6)
BYTE_TOKENS = [f"<0x{b:02X}>" for b in range(256)]
VOCAB_SIZE = 512
SPACE = "\u2581"  # SentencePiece's meta symbol for a space

# Gemma 3 architecture, scaled down.  Layers 2 and 5 are global (full
# attention, rope_theta + linear rope scaling); the others are sliding-window
# layers (rope_local_base_freq, window 16).
NUM_LAYERS = 6
PATTERN = 3
CONFIG = {
    "architectures": ["Gemma3ForCausalLM"],
    "model_type": "gemma3_text",
    "hidden_size": 64,
    "num_hidden_layers": NUM_LAYERS,
    "intermediate_size": 128,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "query_pre_attn_scalar": 16,
    "vocab_size": VOCAB_SIZE,
    "sliding_window": 16,
    "sliding_window_pattern": PATTERN,
    "layer_types": [
        "full_attention" if (i + 1) % PATTERN == 0 else "sliding_attention"
        for i in range(NUM_LAYERS)
    ],
    "rope_theta": 1000000.0,
    "rope_local_base_freq": 10000.0,
    # Both spellings of the rope type, as older HF configs carry them.
    "rope_scaling": {"factor": 8.0, "rope_type": "linear", "type": "linear"},
    "rms_norm_eps": 1e-06,
    "max_position_embeddings": 4096,
    "tie_word_embeddings": True,
    "hidden_activation": "gelu_pytorch_tanh",
    "attention_bias": False,
    "attention_dropout": 0.0,
    "attn_logit_softcapping": None,
    "final_logit_softcapping": None,
    "torch_dtype": "bfloat16",
    "bos_token_id": BOS_ID,
    "eos_token_id": [EOS_ID, EOT_ID],
    "pad_token_id": PAD_ID,
}

# Our own Jinja rendering of Gemma 3's chat format: a leading <bos>, a system
# message folded into the first user turn, "assistant" renamed to "model".
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{%- if messages and messages[0]['role'] == 'system' -%}"
    "{%- set sys_prefix = messages[0]['content'] ~ '\\n\\n' -%}"
    "{%- set turns = messages[1:] -%}"
    "{%- else -%}"
    "{%- set sys_prefix = '' -%}"
    "{%- set turns = messages -%}"
    "{%- endif -%}"
    "{%- for m in turns -%}"
    "{%- if (m['role'] == 'user') != (loop.index0 % 2 == 0) -%}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{%- endif -%}"
    "{%- set role = 'model' if m['role'] == 'assistant' else m['role'] -%}"
    "{%- if m['content'] is string -%}{%- set text = m['content'] -%}"
    "{%- else -%}{%- set text = m['content'] | selectattr('type', 'equalto', 'text')"
    " | map(attribute='text') | join('') -%}{%- endif -%}"
    "{{ '<start_of_turn>' ~ role ~ '\\n' ~ (sys_prefix if loop.first else '')"
    " ~ (text | trim) ~ '<end_of_turn>\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\\n' }}{%- endif -%}"
)

# Training text for the tokenizer (written for this script).
CORPUS = """\
The old lighthouse stood at the end of a narrow road, and every evening the keeper climbed the stairs to light the lamp. \
He counted the steps as he went, one hundred and twelve of them, and he never lost count, not even in winter when the wind \
pushed against the windows and the whole tower seemed to hum.

In the morning he wrote in his book. He wrote about the weather, the ships that passed, the birds that rested on the rail, \
and the small things that changed from one day to the next. The book was full of numbers: 7 ships, 3 storms, 41 gulls, \
and a note that the tide came in earlier than the tables said it would.

A cache is a place where you keep things you will need again soon. When a computer reads the same words many times, it \
can save the work it has already done and reuse it later. The trick is to remember what was saved, to know when it is still \
valid, and to throw it away when it is not. A good cache is fast, small, and honest about what it holds.

Language models read text one token at a time. For every token they compute keys and values, and those keys and values \
can be stored so that the next token does not have to start from the beginning. If two requests share the same opening \
words, the stored work for those words can be shared as well. That is the whole idea, and it saves a great deal of time.

The garden behind the house had rows of beans, tomatoes, and sweet peas. Children from the village came on Saturdays to \
help with the weeding, and in return they took home baskets of whatever was ripe. Nobody kept a record of who took what; \
it always seemed to even out by the end of the summer.

"Where are you going?" she asked. "To the market, then to the station," he said. "I will be back before dark, I promise." \
She laughed, because he had said the same thing last week, and the week before that, and he was never back before dark.

Questions and answers, requests and replies: a conversation moves in turns. The user speaks, the model answers, and the \
user speaks again. Each turn begins with a marker and ends with another, so that both sides know exactly where one voice \
stops and the next one starts.
"""


def build_tokenizer():
    """Train the tiny BPE and return a ``tokenizers.Tokenizer`` (Gemma 3 layout)."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    n_learned = VOCAB_SIZE - len(SPECIAL_TOKENS) - len(BYTE_TOKENS)
    # Train on whitespace-split words ("\u2581word"), as SentencePiece does.
    trainer_tok = Tokenizer(models.BPE())
    trainer_tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement=SPACE, prepend_scheme="never")
    trainer = trainers.BpeTrainer(vocab_size=n_learned, min_frequency=2, show_progress=False)
    trainer_tok.train_from_iterator([CORPUS], trainer=trainer)
    trained = json.loads(trainer_tok.to_str())["model"]
    learned = sorted(trained["vocab"].items(), key=lambda kv: kv[1])
    if len(learned) != n_learned:
        sys.exit(f"tokenizer training produced {len(learned)} pieces, wanted {n_learned}")

    pieces = SPECIAL_TOKENS + BYTE_TOKENS + [p for p, _ in learned]
    vocab = {p: i for i, p in enumerate(pieces)}
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in trained["merges"]]

    tok = Tokenizer(
        models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", byte_fallback=True, fuse_unk=True)
    )
    tok.normalizer = normalizers.Replace(" ", SPACE)
    tok.decoder = decoders.Sequence(
        [decoders.Replace(SPACE, " "), decoders.ByteFallback(), decoders.Fuse()]
    )
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
        "bos_token": "<bos>",
        "eos_token": "<eos>",
        "pad_token": "<pad>",
        "unk_token": "<unk>",
        "additional_special_tokens": ["<start_of_turn>", "<end_of_turn>"],
        "add_bos_token": False,
        "add_eos_token": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": CONFIG["max_position_embeddings"],
        "chat_template": CHAT_TEMPLATE,
    }
    generation_config = {
        "bos_token_id": BOS_ID,
        "eos_token_id": [EOS_ID, EOT_ID],
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
    a large final-norm weight (the norm multiplies by 1 + w) brings the logits
    back to a useful spread (std ~2).
    """
    if name == "model.norm.weight":
        return final_norm_mean, 0.1
    if name.endswith("norm.weight"):
        return 0.0, 0.1  # Gemma norms scale by (1 + w); keep w non-zero
    if name == "model.embed_tokens.weight":
        return 0.0, emb_std
    return 0.0, shape[-1] ** -0.5  # Linear: 1/sqrt(fan_in)


def build_model(seed: int, emb_std: float, final_norm_mean: float):
    import mlx.core as mx
    from mlx.utils import tree_flatten, tree_unflatten
    from mlx_lm.models import gemma3_text

    model = gemma3_text.Model(gemma3_text.ModelArgs.from_dict(CONFIG))
    model.sanitize({})  # no lm_head.weight -> tied embeddings (pops lm_head)
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
        [{"role": "user", "content": "Where is the old lighthouse?"}], add_generation_prompt=True
    )
    if isinstance(prompt, dict):  # transformers 5 may return a BatchEncoding
        prompt = prompt["input_ids"]
    assert prompt[0] == BOS_ID and prompt.count(BOS_ID) == 1, prompt
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
    ap.add_argument("--final-norm-mean", type=float, default=24.0,
                    help="mean of the final norm weight w; the norm scales by 1 + w (default 24)")
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
