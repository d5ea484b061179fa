//! semkv: long-lived, isolated LLM KV caches per semantic cluster, on MLX.
pub mod engine;
