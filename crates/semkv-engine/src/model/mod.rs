//! The network: configuration, weights, the Gemma 3 forward pass and loading.
//!
//! * [`config`] — `config.json` / GGUF metadata as a [`config::Gemma3Config`];
//! * [`weights`] — tensor maps and the weight formats (bf16, f32, 4-bit);
//! * [`linear`] — a dense or quantized projection;
//! * [`attention`] — grouped-query self-attention with RoPE, shared by the families;
//! * `decoder` — the forward passes (prefill, all-position logits, batched decode)
//!   written once over what each family provides;
//! * [`gemma3`] — the model: embedding, blocks, norms, output head (single and batched);
//! * [`loader`] — from a directory, a `.gguf` file, a known name or a hub id to an
//!   [`crate::Engine`].

pub(crate) mod attention;
pub mod config;
pub(crate) mod decoder;
pub mod family;
pub mod gemma3;
pub mod linear;
pub mod llama;
pub mod llama_config;
pub mod loader;
pub mod weights;

pub use family::Model;
