//! Self-attention as both model families compute it: grouped-query heads, RoPE
//! (non-traditional by default), optional per-head RMSNorm of queries and keys (Gemma
//! 3), scaled dot-product attention over the layer's cache, one sequence at a time or
//! a whole decode batch at once.

use mlx_rs::error::Exception;
use mlx_rs::fast::{
    rms_norm, rope, rope_dynamic, scaled_dot_product_attention, ScaledDotProductAttentionMask,
};
use mlx_rs::Array;

use crate::cache::batch_cache::{BatchCache, StepPlan};
use crate::cache::{AttentionInputs, AttentionMask, LayerCache};
use crate::model::linear::Linear;

/// Rotary position embedding of one layer.
pub(crate) struct Rope {
    /// Base frequency (`rope_theta`); unused when `freqs` is given.
    pub base: f32,
    /// Position multiplier (1 / linear scaling factor).
    pub scale: f32,
    /// Per-dimension frequencies replacing `base` (Llama 3 scaling).
    pub freqs: Option<Array>,
    /// Rotate adjacent pairs (GPT-J style) instead of the two halves.
    pub traditional: bool,
}

impl Rope {
    fn base(&self) -> Option<f32> {
        self.freqs.is_none().then_some(self.base)
    }

    fn apply(&self, x: &Array, dims: i32, offset: i32) -> Result<Array, Exception> {
        let freqs = self.freqs.as_ref();
        rope(
            x,
            dims,
            self.traditional,
            self.base(),
            self.scale,
            offset,
            freqs,
        )
    }

    fn apply_at(&self, x: &Array, dims: i32, offsets: &Array) -> Result<Array, Exception> {
        let freqs = self.freqs.as_ref();
        rope_dynamic(
            x,
            dims,
            self.traditional,
            self.base(),
            self.scale,
            offsets,
            freqs,
        )
    }
}

/// Per-head RMSNorm weights of queries and keys, applied before RoPE.
pub(crate) struct QkNorm {
    pub q: Array,
    pub k: Array,
    pub eps: f32,
}

/// One attention layer.
pub(crate) struct Attention {
    pub q_proj: Linear,
    pub k_proj: Linear,
    pub v_proj: Linear,
    pub o_proj: Linear,
    pub qk_norm: Option<QkNorm>,
    pub n_heads: i32,
    pub n_kv_heads: i32,
    pub head_dim: i32,
    pub scale: f32,
    pub rope: Rope,
}

impl Attention {
    /// Queries, keys and values `[B, heads, L, head_dim]` of `x` (`[B, L, hidden]`),
    /// normed if the model norms them, before RoPE.
    fn project(&self, x: &Array) -> Result<(Array, Array, Array), Exception> {
        let (b, l) = (x.dim(0), x.dim(1));
        let heads = |proj: &Linear, n: i32| -> Result<Array, Exception> {
            proj.forward(x)?
                .reshape(&[b, l, n, self.head_dim])?
                .transpose_axes(&[0, 2, 1, 3])
        };
        let mut q = heads(&self.q_proj, self.n_heads)?;
        let mut k = heads(&self.k_proj, self.n_kv_heads)?;
        if let Some(norm) = &self.qk_norm {
            q = rms_norm(q, Some(&norm.q), norm.eps)?;
            k = rms_norm(k, Some(&norm.k), norm.eps)?;
        }
        let v = heads(&self.v_proj, self.n_kv_heads)?;
        Ok((q, k, v))
    }

    /// `o_proj` of attention outputs `[B, heads, L, head_dim]`.
    fn output(&self, out: &Array) -> Result<Array, Exception> {
        let (b, l) = (out.dim(0), out.dim(2));
        let out = out.transpose_axes(&[0, 2, 1, 3])?.reshape(&[b, l, -1])?;
        self.o_proj.forward(&out)
    }

    /// `x` (`[1, L, hidden]`) attending to itself and to what `cache` holds, which it
    /// extends.
    pub fn forward(&self, x: &Array, cache: &mut LayerCache) -> Result<Array, Exception> {
        let (q, k, v) = self.project(x)?;
        let offset = cache.offset();
        let q = self.rope.apply(&q, self.head_dim, offset)?;
        let k = self.rope.apply(&k, self.head_dim, offset)?;
        let inputs = cache.update(&k, &v)?;
        let out = self.attend(&q, &inputs)?;
        self.output(&out)
    }

    /// One decode token for each of the `B` sequences of `cache` (`x`: `[B, 1,
    /// hidden]`): every operation runs once for the whole batch.
    pub fn forward_decode_batch(
        &self,
        x: &Array,
        cache: &mut BatchCache,
        layer: usize,
        plan: &StepPlan,
    ) -> Result<Array, Exception> {
        let (q, k, v) = self.project(x)?;
        let q = self.rope.apply_at(&q, self.head_dim, &plan.offsets)?;
        let k = self.rope.apply_at(&k, self.head_dim, &plan.offsets)?;
        let (keys, values, mask) = cache.update(layer, plan, &k, &v)?;
        let inputs = AttentionInputs {
            keys,
            values,
            mask: mask.map_or(AttentionMask::None, AttentionMask::Array),
        };
        self.output(&self.attend(&q, &inputs)?)
    }

    fn attend(&self, q: &Array, inputs: &AttentionInputs) -> Result<Array, Exception> {
        let (keys, values) = (&inputs.keys, &inputs.values);
        match &inputs.mask {
            AttentionMask::None => {
                scaled_dot_product_attention(q, keys, values, self.scale, None, None)
            }
            AttentionMask::Causal => scaled_dot_product_attention(
                q,
                keys,
                values,
                self.scale,
                ScaledDotProductAttentionMask::Causal,
                None,
            ),
            AttentionMask::Array(mask) => {
                scaled_dot_product_attention(q, keys, values, self.scale, mask, None)
            }
        }
    }

    /// The layer's weight arrays.
    pub fn weight_arrays(&self) -> Vec<&Array> {
        let mut out: Vec<&Array> = [&self.q_proj, &self.k_proj, &self.v_proj, &self.o_proj]
            .into_iter()
            .flat_map(Linear::arrays)
            .collect();
        if let Some(norm) = &self.qk_norm {
            out.extend([&norm.q, &norm.k]);
        }
        out
    }
}
