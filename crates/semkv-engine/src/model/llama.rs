//! The Llama-family text decoder (Llama 2/3, SmolLM): pre-norm blocks with plain
//! RMSNorm weights, grouped-query attention with RoPE (optionally Llama 3 scaled),
//! a SiLU-gated MLP, and an output head that is the embedding unless the checkpoint
//! has its own `lm_head`. Every layer keeps every token (no sliding window).

use mlx_rs::error::Exception;
use mlx_rs::fast::rms_norm;
use mlx_rs::ops::sigmoid;
use mlx_rs::{Array, Dtype};

use crate::cache::batch_cache::{BatchCache, StepPlan};
use crate::cache::{FullCache, LayerCache, ModelCache};
use crate::model::attention::{Attention, Rope};
use crate::model::decoder::Decoder;
use crate::model::linear::Linear;
use crate::model::llama_config::LlamaConfig;
use crate::model::weights::TensorMap;
use crate::EngineError;

struct Mlp {
    gate_proj: Linear,
    up_proj: Linear,
    down_proj: Linear,
}

impl Mlp {
    fn forward(&self, x: &Array) -> Result<Array, Exception> {
        let gate = self.gate_proj.forward(x)?;
        let silu = gate.multiply(sigmoid(&gate)?)?;
        self.down_proj
            .forward(&silu.multiply(self.up_proj.forward(x)?)?)
    }
}

struct Block {
    attention: Attention,
    mlp: Mlp,
    input_norm: Array,
    post_attention_norm: Array,
    eps: f32,
}

impl Block {
    fn forward(&self, x: &Array, cache: &mut LayerCache) -> Result<Array, Exception> {
        let r = self
            .attention
            .forward(&rms_norm(x, Some(&self.input_norm), self.eps)?, cache)?;
        self.feed_forward(&x.add(r)?)
    }

    fn forward_decode_batch(
        &self,
        x: &Array,
        cache: &mut BatchCache,
        layer: usize,
        plan: &StepPlan,
    ) -> Result<Array, Exception> {
        let r = self.attention.forward_decode_batch(
            &rms_norm(x, Some(&self.input_norm), self.eps)?,
            cache,
            layer,
            plan,
        )?;
        self.feed_forward(&x.add(r)?)
    }

    fn feed_forward(&self, h: &Array) -> Result<Array, Exception> {
        let r = self
            .mlp
            .forward(&rms_norm(h, Some(&self.post_attention_norm), self.eps)?)?;
        h.add(r)
    }
}

/// A loaded Llama-family text model.
pub struct Llama {
    config: LlamaConfig,
    embed_tokens: Linear,
    /// `None`: the head is the embedding.
    lm_head: Option<Linear>,
    layers: Vec<Block>,
    norm: Array,
}

impl Llama {
    /// Builds the model from checkpoint tensors (HF names).
    pub fn from_tensors(config: LlamaConfig, tensors: &mut TensorMap) -> Result<Self, EngineError> {
        let c = &config;
        let q = c.quantization.as_ref();
        let embed_tokens = tensors.linear("model.embed_tokens", q)?;
        let lm_head = if tensors.has("lm_head") {
            Some(tensors.linear("lm_head", q)?)
        } else if c.tie_word_embeddings {
            None
        } else {
            return Err(EngineError::MissingTensor("lm_head.weight".into()));
        };
        let head_dim = c.head_dim();
        let freqs = c
            .rope_freqs()
            .map(|f| Array::from_slice(&f, &[f.len() as i32]));
        let eps = c.rms_norm_eps;
        let mut layers = Vec::with_capacity(c.num_hidden_layers);
        for i in 0..c.num_hidden_layers {
            let p = format!("model.layers.{i}");
            let attention = Attention {
                q_proj: tensors.linear(&format!("{p}.self_attn.q_proj"), q)?,
                k_proj: tensors.linear(&format!("{p}.self_attn.k_proj"), q)?,
                v_proj: tensors.linear(&format!("{p}.self_attn.v_proj"), q)?,
                o_proj: tensors.linear(&format!("{p}.self_attn.o_proj"), q)?,
                qk_norm: None,
                n_heads: c.num_attention_heads as i32,
                n_kv_heads: c.kv_heads() as i32,
                head_dim: head_dim as i32,
                scale: (head_dim as f32).powf(-0.5),
                rope: Rope {
                    base: c.rope_theta,
                    scale: c.rope_scale(),
                    freqs: freqs.clone(),
                    traditional: c.rope_traditional,
                },
            };
            let mlp = Mlp {
                gate_proj: tensors.linear(&format!("{p}.mlp.gate_proj"), q)?,
                up_proj: tensors.linear(&format!("{p}.mlp.up_proj"), q)?,
                down_proj: tensors.linear(&format!("{p}.mlp.down_proj"), q)?,
            };
            layers.push(Block {
                attention,
                mlp,
                input_norm: tensors.plain_norm(&format!("{p}.input_layernorm"))?,
                post_attention_norm: tensors
                    .plain_norm(&format!("{p}.post_attention_layernorm"))?,
                eps,
            });
        }
        let norm = tensors.plain_norm("model.norm")?;
        let model = Self {
            config,
            embed_tokens,
            lm_head,
            layers,
            norm,
        };
        mlx_rs::transforms::eval(model.weight_arrays())?;
        Ok(model)
    }

    fn weight_arrays(&self) -> Vec<&Array> {
        let mut out = self.embed_tokens.arrays();
        if let Some(head) = &self.lm_head {
            out.extend(head.arrays());
        }
        out.push(&self.norm);
        for b in &self.layers {
            out.extend(b.attention.weight_arrays());
            for l in [&b.mlp.gate_proj, &b.mlp.up_proj, &b.mlp.down_proj] {
                out.extend(l.arrays());
            }
            out.extend([&b.input_norm, &b.post_attention_norm]);
        }
        out
    }

    /// Bytes of all weights as held on the device.
    pub fn weight_bytes(&self) -> usize {
        self.weight_arrays().iter().map(|a| a.nbytes()).sum()
    }

    pub fn config(&self) -> &LlamaConfig {
        &self.config
    }

    /// Vocabulary size (rows of the embedding).
    pub fn vocab_size(&self) -> usize {
        self.embed_tokens.out_features() as usize
    }

    /// The float dtype activations are computed in.
    pub fn activation_dtype(&self) -> Dtype {
        self.embed_tokens.compute_dtype()
    }

    /// An empty cache: every layer keeps every token.
    pub fn new_cache(&self) -> ModelCache {
        let layers = (0..self.config.num_hidden_layers)
            .map(|_| LayerCache::Full(FullCache::new()))
            .collect();
        ModelCache::new(layers)
    }
}

impl Decoder for Llama {
    fn embed(&self, tokens: &Array) -> Result<Array, Exception> {
        self.embed_tokens.rows(tokens)
    }

    fn layer_count(&self) -> usize {
        self.layers.len()
    }

    fn block(&self, layer: usize, h: &Array, cache: &mut LayerCache) -> Result<Array, Exception> {
        self.layers[layer].forward(h, cache)
    }

    fn block_decode_batch(
        &self,
        layer: usize,
        h: &Array,
        cache: &mut BatchCache,
        plan: &StepPlan,
    ) -> Result<Array, Exception> {
        self.layers[layer].forward_decode_batch(h, cache, layer, plan)
    }

    fn final_norm(&self, h: &Array) -> Result<Array, Exception> {
        rms_norm(h, Some(&self.norm), self.config.rms_norm_eps)
    }

    /// `lm_head`, or the embedding when tied.
    fn head(&self, h: &Array) -> Result<Array, Exception> {
        self.lm_head
            .as_ref()
            .unwrap_or(&self.embed_tokens)
            .forward(h)
    }
}
