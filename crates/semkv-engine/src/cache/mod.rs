//! KV caches as plain values, and their byte encodings.
//!
//! * [`model_cache`] — [`ModelCache`]: one [`LayerCache`] per layer (full for global
//!   layers, a rotating ring for sliding-window layers) plus the next-token logits;
//! * [`batch_cache`] — several caches stacked as the rows of one batched decode step;
//! * [`codec`] — versioned, checksummed full and delta encodings bound to a model
//!   fingerprint;
//! * [`logits_codec`] — the same framing for the next-token logits.

pub mod batch_cache;
pub mod codec;
pub mod logits_codec;
pub mod model_cache;

pub use model_cache::{
    AttentionInputs, AttentionMask, FullCache, LayerCache, ModelCache, RotatingCache,
};
