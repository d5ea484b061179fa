//! Turning tokens into tokens: prefill, step-wise generation, batched decode, sampling,
//! the chat template and the tokenizer.
//!
//! * [`generation`] — [`prefill`], [`extend`], the step-wise [`Generation`] and
//!   [`run`], which drives one to its end;
//! * [`batch`] — one decode step for several generations in one forward pass;
//! * [`sampling`] — greedy, temperature, top-k/top-p, repetition penalty, seeds;
//! * [`score`] — teacher-forced log-probabilities of a given continuation;
//! * [`chat`] — conversations written by the model's own chat template;
//! * [`tokenizer`] — encoding, and streaming decode that holds back partial UTF-8.

pub mod batch;
pub mod chat;
pub mod generation;
pub mod sampling;
pub mod score;
pub mod tokenizer;

pub use generation::{
    extend, prefill, run, FinishReason, GenerateOptions, Generation, GenerationOutput, Step,
    TokenEvent, DEFAULT_PREFILL_CHUNK,
};
