//! Prefill and decode over a [`ModelCache`]: chunked prefill, a decode loop that
//! streams tokens through a callback, stop conditions and timings.

use std::time::{Duration, Instant};

use mlx_rs::ops::indexing::argmax_axis;
use mlx_rs::{Array, Dtype};

use crate::cache::ModelCache;
use crate::generate::sampling::{Sampler, SamplingParams};
use crate::generate::tokenizer::{StreamDecoder, TextTokenizer};
use crate::model::Model;
use crate::EngineError;

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
}

impl Default for GenerateOptions {
    fn default() -> Self {
        Self {
            sampling: SamplingParams::greedy(),
            max_tokens: 128,
            stop_strings: Vec::new(),
            stop_at_eos: true,
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

pub(crate) fn token_array(tokens: &[u32]) -> Array {
    let ids: Vec<i32> = tokens.iter().map(|&t| t as i32).collect();
    Array::from_slice(&ids, &[1, ids.len() as i32])
}

/// Prefills `tokens` into `cache` in chunks of `chunk` tokens, evaluating after each
/// chunk; returns the logits `[1, vocab]` after the last token.
pub fn prefill(
    model: &Model,
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

/// Refuses token ids the model has no embedding for (they would index past its
/// embedding table): every prompt and prefill passes here before the model.
pub(crate) fn check_tokens(model: &Model, tokens: &[u32]) -> Result<(), EngineError> {
    let vocab = model.vocab_size();
    match tokens.iter().find(|&&t| t as usize >= vocab) {
        Some(t) => Err(EngineError::InvalidInput(format!(
            "token id {t} is outside the model's vocabulary of {vocab} (tokens from another model?)"
        ))),
        None => Ok(()),
    }
}

/// Adds `tokens` to the cache (e.g. committing a turn). With `keep_logits` the output
/// head runs for the last token only, so the cache keeps its next-token logits;
/// without, it is skipped (more tokens follow) and the cache has none.
pub fn extend(
    model: &Model,
    cache: &mut ModelCache,
    tokens: &[u32],
    chunk: usize,
    keep_logits: bool,
) -> Result<(), EngineError> {
    check_tokens(model, tokens)?;
    let pieces: Vec<&[u32]> = tokens.chunks(chunk.max(1)).collect();
    for (i, piece) in pieces.iter().enumerate() {
        if keep_logits && i + 1 == pieces.len() {
            model.forward_last(&token_array(piece), cache)?;
        } else {
            model.hidden(&token_array(piece), cache)?;
        }
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

/// What one [`Generation::step`] did.
#[derive(Debug)]
pub enum Step {
    /// A prefill chunk of this many prompt tokens went into the cache.
    Prefilled(usize),
    /// A token was generated.
    Token(TokenEvent),
    /// The first token (returned by the previous step) went into the cache; no new
    /// token this step.
    FedFirst,
    /// Generation is over; the cache is consistent and evaluated.
    Finished(GenerationOutput),
}

/// The token a decode step feeds to the model.
pub(super) enum Fed {
    /// Greedy: the argmax computed on the device by the previous step, not read yet.
    Device(Array),
    /// Sampled on the host from the previous step's logits.
    Host(u32),
}

impl Fed {
    /// The token as a `[1, 1]` model input.
    pub(super) fn input(&self) -> Result<Array, EngineError> {
        Ok(match self {
            Fed::Device(y) => y.reshape(&[1, 1])?,
            Fed::Host(t) => token_array(&[*t]),
        })
    }

    fn id(&self) -> Result<u32, EngineError> {
        Ok(match self {
            Fed::Device(y) => y.item_cast::<u32>(),
            Fed::Host(t) => *t,
        })
    }
}

/// A generation as a state machine, advanced one prefill chunk or one token per
/// [`step`](Generation::step), so a scheduler can interleave many of them on one model
/// (or advance several at once with [`crate::generate::batch::decode_step`]).
///
/// Decode is pipelined: a step feeds its token to the model and queues the work for
/// the next one on the device (`async_eval`) before it returns this token, so the
/// device computes while the caller streams the token. The first token is the
/// exception: it is handed out as soon as it exists (the time to first token does not
/// wait for building — on the CPU largely running — the next forward pass) and fed at
/// the next step. Once the generation has finished, every returned token is in the
/// cache.
pub struct Generation {
    options: GenerateOptions,
    prompt: Vec<u32>,
    /// Prompt tokens per prefill pass (how to run, not what to generate).
    prefill_chunk: usize,
    prefilled: usize,
    cached_tokens: usize,
    sampler: Sampler,
    /// Prompt + generated ids (for the repetition penalty).
    recent: Vec<u32>,
    out: Vec<u32>,
    decoder: StreamDecoder,
    text: String,
    /// Sampled: logits `[1, vocab]` for the next token (queued on the device).
    logits: Option<Array>,
    /// Greedy: the next token, computed on the device and not read yet.
    pending: Option<Array>,
    /// The first token, handed out but not yet fed to the model.
    unfed: Option<u32>,
    started: Instant,
    ttft: Duration,
    decode_started: Instant,
    cancelled: bool,
    finished: bool,
}

impl Generation {
    /// Starts a generation after `prompt` on a cache that holds `cached_tokens` tokens.
    /// An empty prompt continues the cache from its next-token logits (no forward pass
    /// before the first token); the cache must then hold them.
    pub fn new(
        prompt: Vec<u32>,
        options: GenerateOptions,
        cached_tokens: usize,
    ) -> Result<Self, EngineError> {
        options
            .sampling
            .validate()
            .map_err(EngineError::InvalidInput)?;
        let now = Instant::now();
        Ok(Self {
            sampler: Sampler::new(options.sampling.clone()),
            recent: prompt.clone(),
            prompt,
            options,
            prefill_chunk: DEFAULT_PREFILL_CHUNK,
            prefilled: 0,
            cached_tokens,
            out: Vec::new(),
            decoder: StreamDecoder::default(),
            text: String::new(),
            logits: None,
            pending: None,
            unfed: None,
            started: now,
            ttft: Duration::ZERO,
            decode_started: now,
            cancelled: false,
            finished: false,
        })
    }

    /// Prefills the prompt `chunk` tokens per forward pass (default
    /// [`DEFAULT_PREFILL_CHUNK`]).
    pub fn with_prefill_chunk(mut self, chunk: usize) -> Self {
        self.prefill_chunk = chunk.max(1);
        self
    }

    /// Prompt tokens not yet prefilled.
    pub fn remaining_prompt(&self) -> usize {
        self.prompt.len() - self.prefilled
    }

    /// Tokens generated so far.
    pub fn generated(&self) -> &[u32] {
        &self.out
    }

    /// Asks the generation to end at its next step (the client went away).
    pub fn cancel(&mut self) {
        self.cancelled = true;
    }

    /// Whether the next step generates a token (rather than prefilling or finishing),
    /// so it can run batched with other generations' decode steps.
    pub fn is_decoding(&self) -> bool {
        !self.finished
            && !self.cancelled
            && self.prefilled == self.prompt.len()
            && !self.out.is_empty()
            && self.out.len() < self.options.max_tokens
            && (self.pending.is_some() || self.logits.is_some() || self.unfed.is_some())
    }

    /// Advances by one prefill chunk or one decoded token.
    pub fn step(
        &mut self,
        model: &Model,
        tokenizer: &TextTokenizer,
        cache: &mut ModelCache,
    ) -> Result<Step, EngineError> {
        if self.finished {
            return Err(EngineError::InvalidInput(
                "generation already finished".into(),
            ));
        }
        if self.cancelled {
            self.feed_unfed(model, cache)?;
            cache.eval()?;
            return Ok(self.finish(FinishReason::Cancelled));
        }
        if self.prefilled < self.prompt.len() {
            if self.prefilled == 0 {
                check_tokens(model, &self.prompt)?;
            }
            let end = (self.prefilled + self.prefill_chunk).min(self.prompt.len());
            let logits =
                model.forward_last(&token_array(&self.prompt[self.prefilled..end]), cache)?;
            cache.eval()?;
            let n = end - self.prefilled;
            self.prefilled = end;
            if end == self.prompt.len() {
                let queued = self.queue_next(&logits)?;
                mlx_rs::transforms::async_eval([&queued])?;
            }
            return Ok(Step::Prefilled(n));
        }
        if self.out.len() >= self.options.max_tokens {
            self.feed_unfed(model, cache)?;
            cache.eval()?;
            return Ok(self.finish(FinishReason::Length));
        }
        if self.out.is_empty() {
            if self.prompt.is_empty() {
                // No prefill queued anything: take the first token from the cache.
                self.continue_from(cache)?;
            }
            // Waits only for the prefill's (or the kept logits') result.
            let first = self.take_next()?.id()?;
            let step = self.accept(tokenizer, &Fed::Host(first))?;
            self.unfed = Some(first);
            if matches!(step, Step::Finished(_)) {
                self.feed_unfed(model, cache)?;
                cache.eval()?;
            }
            return Ok(step);
        }
        if let Some(first) = self.unfed.take() {
            // Catch up: feed the first token; its logits give the next one.
            let logits = model.forward_last(&token_array(&[first]), cache)?;
            let queued = self.queue_next(&logits)?;
            mlx_rs::transforms::async_eval([&queued])?;
            return Ok(Step::FedFirst);
        }
        let fed = self.take_next()?;
        let logits = model.forward_last(&fed.input()?, cache)?;
        let queued = self.queue_next(&logits)?;
        mlx_rs::transforms::async_eval([&queued])?;
        let step = self.accept(tokenizer, &fed)?;
        if matches!(step, Step::Finished(_)) {
            cache.eval()?;
        }
        Ok(step)
    }

    /// The first token, if it was handed out but not fed yet (a batched step feeds it).
    pub(super) fn take_unfed(&mut self) -> Option<u32> {
        self.unfed.take()
    }

    /// Feeds the first token if it was handed out but not fed yet.
    fn feed_unfed(&mut self, model: &Model, cache: &mut ModelCache) -> Result<(), EngineError> {
        if let Some(first) = self.unfed.take() {
            model.forward_last(&token_array(&[first]), cache)?;
        }
        Ok(())
    }

    /// Takes the first token's logits from the cache (a generation without prompt).
    fn continue_from(&mut self, cache: &ModelCache) -> Result<(), EngineError> {
        let logits = cache.next_logits().cloned().ok_or_else(|| {
            EngineError::InvalidInput(if cache.is_empty() {
                "nothing to continue: the cache is empty and the prompt has no tokens".into()
            } else {
                "the cache holds no next-token logits to continue from; give a prompt".into()
            })
        })?;
        let queued = self.queue_next(&logits)?;
        mlx_rs::transforms::async_eval([&queued])?;
        Ok(())
    }

    /// The token this decode step feeds: the pending device token (greedy) or one
    /// sampled now from the previous logits.
    pub(super) fn take_next(&mut self) -> Result<Fed, EngineError> {
        if let Some(y) = self.pending.take() {
            return Ok(Fed::Device(y));
        }
        let logits = self
            .logits
            .take()
            .ok_or_else(|| EngineError::Internal("no logits to sample".into()))?;
        let mut values = logits_to_vec(&logits)?;
        Ok(Fed::Host(self.sampler.sample(&mut values, &self.recent)))
    }

    /// Keeps what the following step needs from `logits` (`[1, vocab]`, lazy): the
    /// argmax (greedy) or the logits themselves. Returns the array to evaluate.
    pub(super) fn queue_next(&mut self, logits: &Array) -> Result<Array, EngineError> {
        if self.options.sampling.is_greedy() {
            let y = argmax_axis(logits, -1, None)?;
            self.pending = Some(y.clone());
            Ok(y)
        } else {
            self.logits = Some(logits.clone());
            Ok(logits.clone())
        }
    }

    /// Records the token `fed` to the model in this step and applies the stop rules.
    pub(super) fn accept(
        &mut self,
        tokenizer: &TextTokenizer,
        fed: &Fed,
    ) -> Result<Step, EngineError> {
        let token = fed.id()?;
        if self.out.is_empty() {
            self.ttft = self.started.elapsed();
            self.decode_started = Instant::now();
        }
        self.out.push(token);
        self.recent.push(token);
        let delta = self.decoder.update(tokenizer, &self.out)?;
        self.text = self.decoder.text().to_owned();
        if self.options.stop_at_eos && tokenizer.stop_ids.contains(&token) {
            return Ok(self.finish(FinishReason::Eos));
        }
        if let Some(cut) = self
            .options
            .stop_strings
            .iter()
            .filter_map(|s| self.text.find(s.as_str()))
            .min()
        {
            self.text.truncate(cut);
            return Ok(self.finish(FinishReason::StopString));
        }
        Ok(Step::Token(TokenEvent {
            id: token,
            text: delta,
        }))
    }

    fn finish(&mut self, reason: FinishReason) -> Step {
        self.finished = true;
        self.pending = None;
        self.logits = None;
        Step::Finished(GenerationOutput {
            tokens: std::mem::take(&mut self.out),
            text: std::mem::take(&mut self.text),
            finish_reason: reason,
            prompt_tokens: self.prompt.len(),
            cached_tokens: self.cached_tokens,
            time_to_first_token: self.ttft,
            decode_time: if self.ttft.is_zero() {
                Duration::ZERO
            } else {
                self.decode_started.elapsed()
            },
        })
    }
}

/// Runs `generation` to its end on `cache`, streaming each token to `on_token`, which
/// returns `false` to cancel. The cache then holds prompt + output.
pub fn run(
    model: &Model,
    tokenizer: &TextTokenizer,
    cache: &mut ModelCache,
    mut generation: Generation,
    mut on_token: impl FnMut(&TokenEvent) -> bool,
) -> Result<GenerationOutput, EngineError> {
    loop {
        match generation.step(model, tokenizer, cache)? {
            Step::Prefilled(_) | Step::FedFirst => {}
            Step::Token(event) => {
                if !on_token(&event) {
                    generation.cancel();
                }
            }
            Step::Finished(output) => return Ok(output),
        }
    }
}
