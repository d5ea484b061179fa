//! Batched decode: one forward pass advances several generations, each on its own
//! cache of any length, by one token.
//!
//! Decoding one token is bound by reading the weights; a batch reads them once for
//! every sequence in it. The projections and MLPs run on the stacked `[B, 1, hidden]`
//! activations; attention runs per sequence over that sequence's own cache (see
//! [`Gemma3::forward_decode_batch`]), so caches are never copied, padded or masked,
//! and sliding-window rings and global caches keep their single-sequence layout.
//! Each generation keeps its own sampler, stop rules and pipelining.

use mlx_rs::ops::concatenate;
use mlx_rs::ops::indexing::TryIndexOp;

use super::cache::ModelCache;
use super::gemma3::Gemma3;
use super::generate::{Generation, Step};
use super::tokenizer::TextTokenizer;
use super::EngineError;

/// Advances every generation in `items` by one decoded token in one forward pass.
/// Each must be [`Generation::is_decoding`]; the steps come back in order.
pub fn decode_step(
    model: &Gemma3,
    tokenizer: &TextTokenizer,
    items: &mut [(&mut Generation, &mut ModelCache)],
) -> Result<Vec<Step>, EngineError> {
    if let Some(i) = items.iter().position(|(g, _)| !g.is_decoding()) {
        return Err(EngineError::InvalidInput(format!(
            "batched decode: generation {i} is not at a decode step"
        )));
    }
    if items.is_empty() {
        return Ok(Vec::new());
    }
    let fed = items
        .iter_mut()
        .map(|(g, _)| g.take_next())
        .collect::<Result<Vec<_>, _>>()?;
    let inputs = fed
        .iter()
        .map(|f| f.input())
        .collect::<Result<Vec<_>, _>>()?;
    let tokens = concatenate(&inputs, 0)?;
    let logits = {
        let mut caches: Vec<&mut ModelCache> = items.iter_mut().map(|(_, c)| &mut **c).collect();
        model.forward_decode_batch(&tokens, &mut caches)?
    };
    let mut queued = Vec::with_capacity(items.len());
    for (i, (g, _)) in items.iter_mut().enumerate() {
        let i = i as i32;
        queued.push(g.queue_next(&logits.try_index(i..i + 1)?)?);
    }
    mlx_rs::transforms::async_eval(queued.iter())?;
    items
        .iter_mut()
        .zip(&fed)
        .map(|((g, cache), fed)| g.accept(tokenizer, cache, fed))
        .collect()
}
