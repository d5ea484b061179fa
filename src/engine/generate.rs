//! Prefill and decode over a [`ModelCache`]: chunked prefill, a decode loop that
//! streams tokens through a callback, stop conditions and timings.

use std::time::{Duration, Instant};

use mlx_rs::ops::indexing::argmax_axis;
use mlx_rs::{Array, Dtype};

use super::cache::ModelCache;
use super::gemma3::Gemma3;
use super::sampling::{Sampler, SamplingParams};
use super::tokenizer::{StreamDecoder, TextTokenizer};
use super::EngineError;

/// Default number of tokens per prefill chunk.
pub const DEFAULT_PREFILL_CHUNK: usize = 512;

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenerateOptions {
    pub sampling: SamplingParams,
    pub max_tokens: usize,
    /// Generation stops when the text contains one of these (it is cut before it).
    pub stop_strings: Vec<String>,
    /// Stop at the tokenizer's end-of-sequence / end-of-turn ids.
    pub stop_at_eos: bool,
    /// Leave every generated token (including the last) in the cache, so the cache
    /// holds prompt + output. Costs one extra forward step; off for throwaway forks.
    pub extend_cache: bool,
    pub prefill_chunk: usize,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        Self {
            sampling: SamplingParams::greedy(),
            max_tokens: 128,
            stop_strings: Vec::new(),
            stop_at_eos: true,
            extend_cache: false,
            prefill_chunk: DEFAULT_PREFILL_CHUNK,
        }
    }
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// An end-of-sequence / end-of-turn token.
    Eos,
    /// A stop string appeared.
    StopString,
    /// `max_tokens` reached.
    Length,
    /// The callback asked to stop (e.g. the client went away).
    Cancelled,
}

/// One streamed token.
#[derive(Debug, Clone)]
pub struct TokenEvent {
    pub id: u32,
    /// New text this token completes (may be empty mid-character).
    pub text: String,
}

/// The result of a generation.
#[derive(Debug, Clone)]
pub struct GenerationOutput {
    pub tokens: Vec<u32>,
    pub text: String,
    pub finish_reason: FinishReason,
    pub prompt_tokens: usize,
    /// Tokens that were already in the cache before this call.
    pub cached_tokens: usize,
    pub time_to_first_token: Duration,
    pub decode_time: Duration,
}

impl GenerationOutput {
    /// Decode speed after the first token.
    pub fn decode_tokens_per_second(&self) -> f64 {
        let n = self.tokens.len().saturating_sub(1);
        if n == 0 || self.decode_time.is_zero() {
            0.0
        } else {
            n as f64 / self.decode_time.as_secs_f64()
        }
    }
}

fn token_array(tokens: &[u32]) -> Array {
    let ids: Vec<i32> = tokens.iter().map(|&t| t as i32).collect();
    Array::from_slice(&ids, &[1, ids.len() as i32])
}

/// Prefills `tokens` into `cache` in chunks of `chunk` tokens, evaluating after each
/// chunk; returns the logits `[1, vocab]` after the last token.
pub fn prefill(
    model: &Gemma3,
    cache: &mut ModelCache,
    tokens: &[u32],
    chunk: usize,
) -> Result<Array, EngineError> {
    if tokens.is_empty() {
        return Err(EngineError::InvalidInput(
            "prompt must contain at least one token".into(),
        ));
    }
    let chunk = chunk.max(1);
    let mut logits = None;
    for piece in tokens.chunks(chunk) {
        let out = model.forward_last(&token_array(piece), cache)?;
        cache.eval()?;
        logits = Some(out);
    }
    let logits = logits.expect("at least one chunk");
    logits.eval()?;
    Ok(logits)
}

/// Adds `tokens` to the cache without computing logits (e.g. committing a turn).
pub fn extend(
    model: &Gemma3,
    cache: &mut ModelCache,
    tokens: &[u32],
    chunk: usize,
) -> Result<(), EngineError> {
    for piece in tokens.chunks(chunk.max(1)) {
        model.hidden(&token_array(piece), cache)?;
        cache.eval()?;
    }
    Ok(())
}

fn logits_to_vec(logits: &Array) -> Result<Vec<f32>, EngineError> {
    let l = logits.as_dtype(Dtype::Float32)?;
    Ok(l.try_as_slice::<f32>()
        .map_err(|e| EngineError::Internal(e.to_string()))?
        .to_vec())
}

/// Generates after `prompt` (prefilled into `cache` first) and streams each token to
/// `on_token`, which returns `false` to cancel.
pub fn generate(
    model: &Gemma3,
    tokenizer: &TextTokenizer,
    cache: &mut ModelCache,
    prompt: &[u32],
    options: &GenerateOptions,
    mut on_token: impl FnMut(&TokenEvent) -> bool,
) -> Result<GenerationOutput, EngineError> {
    options
        .sampling
        .validate()
        .map_err(EngineError::InvalidInput)?;
    let start = Instant::now();
    let cached_tokens = cache.len();
    let mut logits = prefill(model, cache, prompt, options.prefill_chunk)?;
    let mut sampler = Sampler::new(options.sampling.clone());
    let greedy = options.sampling.is_greedy();
    let mut recent: Vec<u32> = prompt.to_vec();
    let mut decoder = StreamDecoder::new(tokenizer);
    let mut out = Vec::new();
    let mut text = String::new();
    let mut finish = FinishReason::Length;
    let mut ttft = Duration::ZERO;
    let mut decode_start = Instant::now();
    // Greedy steps stay on the device; the next step is queued before this token is read.
    let mut pending: Option<Array> = None;
    if greedy {
        let y = argmax_axis(&logits, -1, None)?;
        mlx_rs::transforms::async_eval([&y])?;
        pending = Some(y);
    }
    let mut in_cache = false;
    while out.len() < options.max_tokens {
        let token = match pending.take() {
            Some(y) => {
                // Queue the following step before blocking on this token.
                let next_logits = model.forward_last(&y.reshape(&[1, 1])?, cache)?;
                let next = argmax_axis(&next_logits, -1, None)?;
                mlx_rs::transforms::async_eval([&next])?;
                let token = y.item_cast::<u32>();
                pending = Some(next);
                in_cache = true;
                token
            }
            None => {
                let mut values = logits_to_vec(&logits)?;
                let token = sampler.sample(&mut values, &recent);
                in_cache = false;
                token
            }
        };
        if out.is_empty() {
            ttft = start.elapsed();
            decode_start = Instant::now();
        }
        out.push(token);
        recent.push(token);
        let delta = decoder.push(token)?;
        text = decoder.text()?;
        if options.stop_at_eos && tokenizer.stop_ids.contains(&token) {
            finish = FinishReason::Eos;
            break;
        }
        if let Some(cut) = options
            .stop_strings
            .iter()
            .filter_map(|s| text.find(s.as_str()))
            .min()
        {
            text.truncate(cut);
            finish = FinishReason::StopString;
            break;
        }
        if !on_token(&TokenEvent {
            id: token,
            text: delta,
        }) {
            finish = FinishReason::Cancelled;
            break;
        }
        if out.len() < options.max_tokens && !greedy {
            logits = model.forward_last(&token_array(&[token]), cache)?;
            in_cache = true;
        }
    }
    // The greedy pipeline may have queued one step past the last token: that step
    // already put the last token in the cache. Otherwise add it if asked.
    let last_missing = !in_cache;
    if options.extend_cache && last_missing {
        if let Some(&last) = out.last() {
            extend(model, cache, &[last], 1)?;
        }
    }
    cache.eval()?;
    let expected = cached_tokens + prompt.len() + out.len()
        - usize::from(last_missing && !options.extend_cache);
    debug_assert_eq!(cache.len(), expected);
    Ok(GenerationOutput {
        tokens: out,
        text,
        finish_reason: finish,
        prompt_tokens: prompt.len(),
        cached_tokens,
        time_to_first_token: ttft,
        decode_time: decode_start.elapsed(),
    })
}
