//! The forward passes every decoder family shares, written once over [`Decoder`]: a
//! family says how it embeds tokens, runs one block (for one sequence, or one decode
//! step of a batch), norms the result and maps it to logits; the passes here chain
//! those and keep the cache's next-token logits in step.

use mlx_rs::error::Exception;
use mlx_rs::ops::indexing::TryIndexOp;
use mlx_rs::Array;

use crate::cache::batch_cache::{BatchCache, StepPlan};
use crate::cache::{LayerCache, ModelCache};

/// What a model family provides to the shared forward passes.
pub(crate) trait Decoder {
    /// Input embeddings `[B, L, hidden]` of `tokens` (`[B, L]` int32).
    fn embed(&self, tokens: &Array) -> Result<Array, Exception>;
    /// Number of blocks.
    fn layer_count(&self) -> usize;
    /// Block `layer` on `h` (one sequence), extending its layer cache.
    fn block(&self, layer: usize, h: &Array, cache: &mut LayerCache) -> Result<Array, Exception>;
    /// Block `layer` on one decode step of every row of a batch.
    fn block_decode_batch(
        &self,
        layer: usize,
        h: &Array,
        cache: &mut BatchCache,
        plan: &StepPlan,
    ) -> Result<Array, Exception>;
    /// The final norm.
    fn final_norm(&self, h: &Array) -> Result<Array, Exception>;
    /// Logits of normed hidden states.
    fn head(&self, h: &Array) -> Result<Array, Exception>;
}

/// Runs `tokens` (`[1, L]` int32) through the model, extending `cache`, and returns
/// the final (normed) hidden states `[1, L, hidden]` (lazy).
pub(crate) fn hidden<D: Decoder>(
    d: &D,
    tokens: &Array,
    cache: &mut ModelCache,
) -> Result<Array, Exception> {
    // The cache's last token changes and no logits are computed for it here.
    cache.set_next_logits(None);
    let mut h = d.embed(tokens)?;
    for (layer, layer_cache) in cache.layers.iter_mut().enumerate().take(d.layer_count()) {
        h = d.block(layer, &h, layer_cache)?;
    }
    d.final_norm(&h)
}

/// Logits `[1, vocab]` for the last of `tokens`, extending `cache` (lazy).
pub(crate) fn forward_last<D: Decoder>(
    d: &D,
    tokens: &Array,
    cache: &mut ModelCache,
) -> Result<Array, Exception> {
    let h = hidden(d, tokens, cache)?;
    let logits = d.head(&h.try_index((.., -1, ..))?)?;
    cache.set_next_logits(Some(logits.clone()));
    Ok(logits)
}

/// Logits `[1, L, vocab]` for every position (scoring and tests).
pub(crate) fn forward_all<D: Decoder>(
    d: &D,
    tokens: &Array,
    cache: &mut ModelCache,
) -> Result<Array, Exception> {
    let h = hidden(d, tokens, cache)?;
    let logits = d.head(&h)?;
    cache.set_next_logits(Some(logits.try_index((.., -1, ..))?));
    Ok(logits)
}

/// One decode step for the sequences of a [`BatchCache`] (`tokens`: `[B, 1]`);
/// logits `[B, vocab]` (lazy), every row extended by one token.
pub(crate) fn forward_decode_batch<D: Decoder>(
    d: &D,
    tokens: &Array,
    cache: &mut BatchCache,
) -> Result<Array, Exception> {
    let plan = cache.plan_step()?;
    let mut h = d.embed(tokens)?;
    for layer in 0..d.layer_count() {
        h = d.block_decode_batch(layer, &h, cache, &plan)?;
    }
    cache.advance();
    let h = d.final_norm(&h)?;
    let logits = d.head(&h.try_index((.., -1, ..))?)?;
    cache.set_next_logits(&logits)?;
    Ok(logits)
}
