//! Batched decode: one forward pass advances several generations, each on its own
//! sequence, by one token.
//!
//! Decoding one token is bound by per-operation overhead and by reading the weights;
//! a batch pays both once for all its sequences. The sequences' caches are stacked in
//! a [`BatchCache`] (each row in its single-sequence layout, so a row's attention
//! equals its solo attention), and every operation of the step — projections, RoPE
//! at each row's own position, cache writes, attention, MLP — runs once for the whole
//! batch. Each generation keeps its own sampler, stop rules and pipelining.

use mlx_rs::ops::concatenate;
use mlx_rs::ops::indexing::TryIndexOp;

use crate::cache::batch_cache::BatchCache;
use crate::generate::generation::Fed;
use crate::generate::tokenizer::TextTokenizer;
use crate::generate::{Generation, Step};
use crate::model::Model;
use crate::EngineError;

/// Advances every generation by one decoded token in one forward pass over `cache`,
/// whose row `i` is generation `i`'s sequence. Each must be
/// [`Generation::is_decoding`]; the steps come back in order.
pub fn decode_step(
    model: &Model,
    tokenizer: &TextTokenizer,
    generations: &mut [&mut Generation],
    cache: &mut BatchCache,
) -> Result<Vec<Step>, EngineError> {
    if generations.len() != cache.rows() {
        return Err(EngineError::InvalidInput(format!(
            "batched decode: {} generations for {} cache rows",
            generations.len(),
            cache.rows()
        )));
    }
    if let Some(i) = generations.iter().position(|g| !g.is_decoding()) {
        return Err(EngineError::InvalidInput(format!(
            "batched decode: generation {i} is not at a decode step"
        )));
    }
    // A generation whose first token was handed out but not fed feeds it now (and
    // returns no token this step); the others feed their next token.
    let fed = generations
        .iter_mut()
        .map(|g| match g.take_unfed() {
            Some(first) => Ok((Fed::Host(first), true)),
            None => g.take_next().map(|f| (f, false)),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let inputs = fed
        .iter()
        .map(|(f, _)| f.input())
        .collect::<Result<Vec<_>, _>>()?;
    let logits = model.forward_decode_batch(&concatenate(&inputs, 0)?, cache)?;
    let mut queued = Vec::with_capacity(generations.len());
    for (i, g) in generations.iter_mut().enumerate() {
        let i = i as i32;
        queued.push(g.queue_next(&logits.try_index(i..i + 1)?)?);
    }
    queued.extend(cache.arrays().cloned());
    mlx_rs::transforms::async_eval(queued.iter())?;
    generations
        .iter_mut()
        .zip(&fed)
        .map(|(g, (fed, first))| {
            if *first {
                Ok(Step::FedFirst)
            } else {
                g.accept(tokenizer, fed)
            }
        })
        .collect()
}
