//! The Gemma 3 text decoder: sliding-window local layers and global layers with their
//! own RoPE bases, per-head q/k RMSNorm, (1 + w) norms, sqrt(hidden) embedding scale,
//! GELU-tanh gated MLP and a head tied to the embedding.

use mlx_rs::error::Exception;
use mlx_rs::fast::rms_norm;
use mlx_rs::{Array, Dtype};

use crate::cache::batch_cache::{BatchCache, StepPlan};
use crate::cache::{FullCache, LayerCache, ModelCache, RotatingCache};
use crate::model::attention::{Attention, QkNorm, Rope};
use crate::model::config::Gemma3Config;
use crate::model::decoder::Decoder;
use crate::model::linear::Linear;
use crate::model::weights::TensorMap;
use crate::EngineError;

struct Mlp {
    gate_proj: Linear,
    up_proj: Linear,
    down_proj: Linear,
}

impl Mlp {
    fn forward(&self, x: &Array) -> Result<Array, Exception> {
        let gate = gelu_approx(&self.gate_proj.forward(x)?)?;
        self.down_proj
            .forward(&gate.multiply(self.up_proj.forward(x)?)?)
    }
}

/// `0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))` with every constant in `x`'s dtype
/// (mlx-rs's own version promotes bf16 activations to f32; mlx-lm's keeps bf16).
fn gelu_approx(x: &Array) -> Result<Array, Exception> {
    let c = |v: f32| Array::from_f32(v).as_dtype(x.dtype());
    let cubic = c(0.044715)?.multiply(x.power(c(3.0)?)?)?;
    let inner = c((2.0 / std::f32::consts::PI).sqrt())?.multiply(x.add(cubic)?)?;
    c(0.5)?
        .multiply(x)?
        .multiply(c(1.0)?.add(mlx_rs::ops::tanh(&inner)?)?)
}

struct Block {
    attention: Attention,
    mlp: Mlp,
    input_norm: Array,
    post_attention_norm: Array,
    pre_feedforward_norm: Array,
    post_feedforward_norm: Array,
    eps: f32,
}

impl Block {
    fn forward(&self, x: &Array, cache: &mut LayerCache) -> Result<Array, Exception> {
        let r = self
            .attention
            .forward(&rms_norm(x, Some(&self.input_norm), self.eps)?, cache)?;
        let h = x.add(rms_norm(&r, Some(&self.post_attention_norm), self.eps)?)?;
        self.feed_forward(&h)
    }

    /// See [`Attention::forward_decode_batch`].
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
        let h = x.add(rms_norm(&r, Some(&self.post_attention_norm), self.eps)?)?;
        self.feed_forward(&h)
    }

    /// The MLP half of the block, with its norms and residual.
    fn feed_forward(&self, h: &Array) -> Result<Array, Exception> {
        let r = self
            .mlp
            .forward(&rms_norm(h, Some(&self.pre_feedforward_norm), self.eps)?)?;
        h.add(rms_norm(&r, Some(&self.post_feedforward_norm), self.eps)?)
    }
}

/// A loaded Gemma 3 text model.
pub struct Gemma3 {
    config: Gemma3Config,
    embed_tokens: Linear,
    layers: Vec<Block>,
    norm: Array,
    embed_scale: f32,
}

impl Gemma3 {
    /// Builds the model from checkpoint tensors (HF names).
    pub fn from_tensors(
        config: Gemma3Config,
        tensors: &mut TensorMap,
    ) -> Result<Self, EngineError> {
        let c = &config;
        let q = c.quantization.as_ref();
        let embed_tokens = tensors.linear("model.embed_tokens", q)?;
        let eps = c.rms_norm_eps;
        let mut layers = Vec::with_capacity(c.num_hidden_layers);
        for i in 0..c.num_hidden_layers {
            let p = format!("model.layers.{i}");
            let global = c.is_global_layer(i);
            let attention = Attention {
                q_proj: tensors.linear(&format!("{p}.self_attn.q_proj"), q)?,
                k_proj: tensors.linear(&format!("{p}.self_attn.k_proj"), q)?,
                v_proj: tensors.linear(&format!("{p}.self_attn.v_proj"), q)?,
                o_proj: tensors.linear(&format!("{p}.self_attn.o_proj"), q)?,
                qk_norm: Some(QkNorm {
                    q: tensors.norm(&format!("{p}.self_attn.q_norm"))?,
                    k: tensors.norm(&format!("{p}.self_attn.k_norm"))?,
                    eps,
                }),
                n_heads: c.num_attention_heads as i32,
                n_kv_heads: c.num_key_value_heads as i32,
                head_dim: c.head_dim as i32,
                scale: c.query_pre_attn_scalar.powf(-0.5),
                rope: Rope {
                    base: if global {
                        c.rope_theta
                    } else {
                        c.rope_local_base_freq
                    },
                    scale: if global { c.global_rope_scale() } else { 1.0 },
                    freqs: None,
                    traditional: false,
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
                input_norm: tensors.norm(&format!("{p}.input_layernorm"))?,
                post_attention_norm: tensors.norm(&format!("{p}.post_attention_layernorm"))?,
                pre_feedforward_norm: tensors.norm(&format!("{p}.pre_feedforward_layernorm"))?,
                post_feedforward_norm: tensors.norm(&format!("{p}.post_feedforward_layernorm"))?,
                eps,
            });
        }
        let norm = tensors.norm("model.norm")?;
        // mlx-lm rounds sqrt(hidden) through bf16 before scaling the embeddings.
        let embed_scale = half::bf16::from_f32((c.hidden_size as f32).sqrt()).to_f32();
        let model = Self {
            config,
            embed_tokens,
            layers,
            norm,
            embed_scale,
        };
        model.eval_weights()?;
        Ok(model)
    }

    fn weight_arrays(&self) -> Vec<&Array> {
        let mut out = self.embed_tokens.arrays();
        out.push(&self.norm);
        for b in &self.layers {
            out.extend(b.attention.weight_arrays());
            for l in [&b.mlp.gate_proj, &b.mlp.up_proj, &b.mlp.down_proj] {
                out.extend(l.arrays());
            }
            out.extend([&b.input_norm, &b.post_attention_norm]);
            out.extend([&b.pre_feedforward_norm, &b.post_feedforward_norm]);
        }
        out
    }

    /// Materializes all weights (conversions happen once, at load).
    fn eval_weights(&self) -> Result<(), Exception> {
        mlx_rs::transforms::eval(self.weight_arrays())
    }

    /// Bytes of all weights as held on the device.
    pub fn weight_bytes(&self) -> usize {
        self.weight_arrays().iter().map(|a| a.nbytes()).sum()
    }

    pub fn config(&self) -> &Gemma3Config {
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

    /// An empty cache with a ring for each local layer and a full cache for each global one.
    pub fn new_cache(&self) -> ModelCache {
        let layers = (0..self.config.num_hidden_layers)
            .map(|i| {
                if self.config.is_global_layer(i) {
                    LayerCache::Full(FullCache::new())
                } else {
                    LayerCache::Rotating(RotatingCache::new(self.config.sliding_window as i32))
                }
            })
            .collect();
        ModelCache::new(layers)
    }
}

impl Decoder for Gemma3 {
    fn embed(&self, tokens: &Array) -> Result<Array, Exception> {
        let h = self.embed_tokens.rows(tokens)?;
        let scale = Array::from_f32(self.embed_scale).as_dtype(h.dtype())?;
        h.multiply(scale)
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

    /// The head is the embedding (tied).
    fn head(&self, h: &Array) -> Result<Array, Exception> {
        self.embed_tokens.forward(h)
    }
}

impl Gemma3 {
    /// Loads an HF / mlx-community Gemma 3 checkpoint directory (`config.json` +
    /// safetensors).
    pub fn load_dir(
        dir: &std::path::Path,
        format: crate::model::weights::WeightFormat,
    ) -> Result<Self, EngineError> {
        match crate::model::Model::load_dir(dir, format)? {
            crate::model::Model::Gemma3(m) => Ok(m),
            other => Err(EngineError::Load(format!(
                "{} holds a {} model, not Gemma 3",
                dir.display(),
                other.family()
            ))),
        }
    }
}
