//! Teacher-forced scoring: how likely the model finds a given continuation after what
//! a cache holds — per token, the log-probability of that token given everything before
//! it (the cache, then the continuation's earlier tokens) and whether it was the
//! model's most likely next token. Nothing is sampled, so scores are deterministic.

use mlx_rs::ops::indexing::{argmax_axis, TryIndexOp};
use mlx_rs::ops::{concatenate, logsumexp_axis};
use mlx_rs::Dtype;

use crate::cache::ModelCache;
use crate::generate::generation::{check_tokens, token_array};
use crate::model::Model;
use crate::EngineError;

/// One scored token.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TokenScore {
    pub id: u32,
    /// Natural log of the probability the model gave this token.
    pub logprob: f32,
    /// Whether it was the model's most likely token there (lowest id on ties).
    pub greedy: bool,
}

/// Scores `tokens`, in one forward pass, as the continuation of what `cache` holds, and
/// extends `cache` with them (score on a fork to keep the original). The first token is
/// scored with the next-token logits the cache keeps, so the cache must hold some
/// tokens; call it again on the extended cache to score a long continuation in pieces.
pub fn score_continuation(
    model: &Model,
    cache: &mut ModelCache,
    tokens: &[u32],
) -> Result<Vec<TokenScore>, EngineError> {
    if tokens.is_empty() {
        return Ok(Vec::new());
    }
    check_tokens(model, tokens)?;
    let first = cache.next_logits().cloned().ok_or_else(|| {
        EngineError::InvalidInput(
            "nothing to score after: the context is empty (or holds no next-token logits)".into(),
        )
    })?;
    let n = tokens.len() as i32;
    let vocab = first.dim(-1);
    let first = first.reshape(&[1, 1, vocab])?;
    let all = model.forward_all(&token_array(tokens), cache)?;
    // The distribution for token i is the one after token i - 1.
    let predictions = if n > 1 {
        concatenate(&[first, all.try_index((.., ..n - 1, ..))?], 1)?
    } else {
        first
    };
    let predictions = predictions.as_dtype(Dtype::Float32)?;
    let ids = token_array(tokens).reshape(&[1, n, 1])?;
    let chosen = predictions.take_along_axis(&ids, -1)?;
    let logprobs = chosen.subtract(logsumexp_axis(&predictions, -1, true)?)?;
    let best = argmax_axis(&predictions, -1, false)?;
    mlx_rs::transforms::eval([&logprobs, &best])?;
    cache.eval()?;
    let logprobs = logprobs.reshape(&[-1])?;
    let best = best.as_dtype(Dtype::Int32)?.reshape(&[-1])?;
    let (logprobs, best) = (logprobs.as_slice::<f32>(), best.as_slice::<i32>());
    Ok(tokens
        .iter()
        .enumerate()
        .map(|(i, &id)| TokenScore {
            id,
            logprob: logprobs[i],
            greedy: best[i] == id as i32,
        })
        .collect())
}

/// Totals of a scored continuation.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ScoreSummary {
    /// Negative log-likelihood of all the tokens (nats).
    pub total_nll: f64,
    /// `total_nll` per token.
    pub mean_nll: f64,
    /// `exp(mean_nll)`.
    pub perplexity: f64,
    /// Share of tokens that were the model's most likely choice.
    pub greedy_agreement: f64,
}

impl ScoreSummary {
    /// The totals of `scores` (all zero for none).
    pub fn of(scores: &[TokenScore]) -> Self {
        if scores.is_empty() {
            return Self::default();
        }
        let n = scores.len() as f64;
        let total_nll: f64 = scores.iter().map(|s| -f64::from(s.logprob)).sum();
        let greedy = scores.iter().filter(|s| s.greedy).count() as f64;
        Self {
            total_nll,
            mean_nll: total_nll / n,
            perplexity: (total_nll / n).exp(),
            greedy_agreement: greedy / n,
        }
    }
}
