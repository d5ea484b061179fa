//! Hugging Face style text configurations derived from GGUF metadata (Gemma 3 and
//! the Llama family), with each family's defaults for what a file leaves out.

use serde::Serialize;

use super::{GgufError, Metadata, TensorSummary, GEMMA3_ARCHITECTURE, LLAMA_ARCHITECTURE};

/// The configuration of a GGUF model of either family, serialized as the
/// family's `config.json` (the engine picks the family by `model_type`).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ModelConfig {
    /// `general.architecture` = `gemma3`.
    Gemma3(Gemma3TextConfig),
    /// `general.architecture` = `llama`.
    Llama(LlamaTextConfig),
}

impl ModelConfig {
    /// Query heads, key/value heads and the width of one head.
    pub fn heads(&self) -> (usize, usize, usize) {
        match self {
            ModelConfig::Gemma3(c) => (c.num_attention_heads, c.num_key_value_heads, c.head_dim),
            ModelConfig::Llama(c) => (c.num_attention_heads, c.num_key_value_heads, c.head_dim),
        }
    }
}

/// A Llama-family text model configuration, serialized with the field names of a
/// Hugging Face `config.json` (`model_type` `"llama"`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LlamaTextConfig {
    /// Always `"llama"`.
    pub model_type: String,
    /// Width of the residual stream.
    pub hidden_size: usize,
    /// Number of transformer blocks.
    pub num_hidden_layers: usize,
    /// Width of the MLP's hidden layer.
    pub intermediate_size: usize,
    /// Number of query heads.
    pub num_attention_heads: usize,
    /// Number of key/value heads.
    pub num_key_value_heads: usize,
    /// Width of one attention head.
    pub head_dim: usize,
    /// Epsilon of every RMSNorm.
    pub rms_norm_eps: f64,
    /// Rows of the embedding matrix (= logits per position).
    pub vocab_size: usize,
    /// RoPE base.
    pub rope_theta: f64,
    /// RoPE scaling (`linear` only from GGUF metadata), if any.
    pub rope_scaling: Option<RopeScaling>,
    /// Context length the model was trained for.
    pub max_position_embeddings: usize,
    /// Whether the output projection reuses the embedding matrix.
    pub tie_word_embeddings: bool,
    /// Id of the beginning-of-sequence token, if the file names one.
    pub bos_token_id: Option<u32>,
    /// Id of the end-of-sequence token, if the file names one.
    pub eos_token_id: Option<u32>,
    /// Id of the padding token, if the file names one.
    pub pad_token_id: Option<u32>,
}

/// An RMSNorm epsilon stored as f32, rounded to the decimal value it was written from.
fn rms_eps(meta: &Metadata<'_>, key: &str) -> Result<Option<f64>, GgufError> {
    Ok(meta
        .opt_f64(key)?
        .map(|eps| format!("{:e}", eps as f32).parse().unwrap_or(eps)))
}

/// RoPE scaling from `{arch}.rope.scaling.type` / `.factor`.
fn rope_scaling(meta: &Metadata<'_>, arch: &str) -> Result<Option<RopeScaling>, GgufError> {
    Ok(
        match meta.opt_string(&format!("{arch}.rope.scaling.type"))? {
            Some(kind) if kind != "none" => Some(RopeScaling {
                rope_type: kind.to_owned(),
                factor: meta
                    .opt_f64(&format!("{arch}.rope.scaling.factor"))?
                    .unwrap_or(1.0),
            }),
            _ => None,
        },
    )
}

fn embedding_rows(tensors: &[TensorSummary]) -> Result<usize, GgufError> {
    tensors
        .iter()
        .find(|t| t.name == "model.embed_tokens.weight")
        .map(|t| t.shape[0])
        .ok_or_else(|| GgufError::MissingTensor("token_embd.weight".to_owned()))
}

pub(super) fn llama_config(
    meta: &Metadata<'_>,
    tensors: &[TensorSummary],
) -> Result<LlamaTextConfig, GgufError> {
    let key = |suffix: &str| format!("{LLAMA_ARCHITECTURE}.{suffix}");
    let hidden_size = meta.usize(&key("embedding_length"))?;
    let num_attention_heads = meta.usize(&key("attention.head_count"))?;
    let head_dim = match meta.opt_usize(&key("attention.key_length"))? {
        Some(d) => d,
        None => meta
            .opt_usize(&key("rope.dimension_count"))?
            .unwrap_or(hidden_size / num_attention_heads.max(1)),
    };
    Ok(LlamaTextConfig {
        model_type: "llama".to_owned(),
        hidden_size,
        num_hidden_layers: meta.usize(&key("block_count"))?,
        intermediate_size: meta.usize(&key("feed_forward_length"))?,
        num_attention_heads,
        num_key_value_heads: meta
            .opt_usize(&key("attention.head_count_kv"))?
            .unwrap_or(num_attention_heads),
        head_dim,
        rms_norm_eps: rms_eps(meta, &key("attention.layer_norm_rms_epsilon"))?.unwrap_or(1e-5),
        vocab_size: embedding_rows(tensors)?,
        rope_theta: meta.opt_f64(&key("rope.freq_base"))?.unwrap_or(10_000.0),
        rope_scaling: rope_scaling(meta, LLAMA_ARCHITECTURE)?,
        max_position_embeddings: meta.opt_usize(&key("context_length"))?.unwrap_or(2048),
        tie_word_embeddings: !tensors.iter().any(|t| t.name == "lm_head.weight"),
        bos_token_id: meta.opt_u32("tokenizer.ggml.bos_token_id")?,
        eos_token_id: meta.opt_u32("tokenizer.ggml.eos_token_id")?,
        pad_token_id: meta.opt_u32("tokenizer.ggml.padding_token_id")?,
    })
}

/// RoPE scaling of the global-attention layers (`rope_scaling` in HF configs).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RopeScaling {
    /// The scaling kind, e.g. `"linear"`.
    pub rope_type: String,
    /// The scaling factor (positions are divided by it for `"linear"`).
    pub factor: f64,
}

/// A Gemma 3 text model configuration, serialized with the field names of a
/// Hugging Face `config.json` (`model_type` `"gemma3_text"`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Gemma3TextConfig {
    /// Always `"gemma3_text"`.
    pub model_type: String,
    /// Width of the residual stream.
    pub hidden_size: usize,
    /// Number of transformer blocks.
    pub num_hidden_layers: usize,
    /// Width of the MLP's hidden layer.
    pub intermediate_size: usize,
    /// Number of query heads.
    pub num_attention_heads: usize,
    /// Number of key/value heads.
    pub num_key_value_heads: usize,
    /// Width of one attention head.
    pub head_dim: usize,
    /// Attention logits are scaled by `query_pre_attn_scalar ** -0.5`.
    pub query_pre_attn_scalar: f64,
    /// Epsilon of every RMSNorm.
    pub rms_norm_eps: f64,
    /// Rows of the embedding matrix (= logits per position).
    pub vocab_size: usize,
    /// Tokens a local (sliding-window) layer attends to.
    pub sliding_window: usize,
    /// Layer `i` is global iff `(i + 1) % sliding_window_pattern == 0`.
    pub sliding_window_pattern: usize,
    /// RoPE base of the global layers.
    pub rope_theta: f64,
    /// RoPE base of the local layers (never scaled).
    pub rope_local_base_freq: f64,
    /// RoPE scaling of the global layers, if any.
    pub rope_scaling: Option<RopeScaling>,
    /// Context length the model was trained for.
    pub max_position_embeddings: usize,
    /// Whether the output projection reuses the embedding matrix.
    pub tie_word_embeddings: bool,
    /// Id of the beginning-of-sequence token, if the file names one.
    pub bos_token_id: Option<u32>,
    /// Id of the end-of-sequence token, if the file names one.
    pub eos_token_id: Option<u32>,
    /// Id of the padding token, if the file names one.
    pub pad_token_id: Option<u32>,
}

/// Gemma 3's values for what GGUF files may leave out (those of
/// `gemma3_text` in HF transformers and mlx-lm).
mod defaults {
    pub const HEAD_DIM: usize = 256;
    pub const RMS_NORM_EPS: f64 = 1e-6;
    pub const SLIDING_WINDOW: usize = 4096;
    pub const SLIDING_WINDOW_PATTERN: usize = 6;
    pub const ROPE_THETA: f64 = 1_000_000.0;
    pub const ROPE_LOCAL_BASE_FREQ: f64 = 10_000.0;
    pub const MAX_POSITION_EMBEDDINGS: usize = 131_072;
}

pub(super) fn gemma3_config(
    meta: &Metadata<'_>,
    tensors: &[TensorSummary],
) -> Result<Gemma3TextConfig, GgufError> {
    let key = |suffix: &str| format!("{GEMMA3_ARCHITECTURE}.{suffix}");
    let hidden_size = meta.usize(&key("embedding_length"))?;
    let num_hidden_layers = meta.usize(&key("block_count"))?;
    let num_attention_heads = meta.usize(&key("attention.head_count"))?;
    let num_key_value_heads = meta
        .opt_usize(&key("attention.head_count_kv"))?
        .unwrap_or(num_attention_heads);
    let head_dim = meta
        .opt_usize(&key("attention.key_length"))?
        .unwrap_or(defaults::HEAD_DIM);
    // The 27B model scales queries by hidden_size / heads instead of head_dim,
    // a fact GGUF does not record (llama.cpp special-cases it the same way).
    let is_27b = hidden_size == 5376 && num_hidden_layers == 62;
    let query_pre_attn_scalar = if is_27b {
        (hidden_size / num_attention_heads) as f64
    } else {
        head_dim as f64
    };
    let rope_scaling = rope_scaling(meta, GEMMA3_ARCHITECTURE)?;
    Ok(Gemma3TextConfig {
        model_type: "gemma3_text".to_owned(),
        hidden_size,
        num_hidden_layers,
        intermediate_size: meta.usize(&key("feed_forward_length"))?,
        num_attention_heads,
        num_key_value_heads,
        head_dim,
        query_pre_attn_scalar,
        rms_norm_eps: rms_eps(meta, &key("attention.layer_norm_rms_epsilon"))?
            .unwrap_or(defaults::RMS_NORM_EPS),
        // The embedding's rows, not the tokenizer's size: the logits have one
        // entry per row (262144 for 270M, whose HF tokenizer adds an image
        // token 262144 that the text model never sees).
        vocab_size: embedding_rows(tensors)?,
        sliding_window: meta
            .opt_usize(&key("attention.sliding_window"))?
            .unwrap_or(defaults::SLIDING_WINDOW),
        sliding_window_pattern: meta
            .opt_usize(&key("attention.sliding_window_pattern"))?
            .unwrap_or(defaults::SLIDING_WINDOW_PATTERN),
        rope_theta: meta
            .opt_f64(&key("rope.freq_base"))?
            .unwrap_or(defaults::ROPE_THETA),
        rope_local_base_freq: meta
            .opt_f64(&key("rope.freq_base_swa"))?
            .unwrap_or(defaults::ROPE_LOCAL_BASE_FREQ),
        rope_scaling,
        max_position_embeddings: meta
            .opt_usize(&key("context_length"))?
            .unwrap_or(defaults::MAX_POSITION_EMBEDDINGS),
        tie_word_embeddings: !tensors.iter().any(|t| t.name == "lm_head.weight"),
        bos_token_id: meta.opt_u32("tokenizer.ggml.bos_token_id")?,
        eos_token_id: meta.opt_u32("tokenizer.ggml.eos_token_id")?,
        pad_token_id: meta.opt_u32("tokenizer.ggml.padding_token_id")?,
    })
}
