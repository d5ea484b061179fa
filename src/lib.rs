//! semkv: long-lived, isolated LLM KV caches per semantic cluster, on MLX.
pub mod actors;
pub mod api;
pub mod cluster_id;
pub mod daemon;
pub mod daemon_config;
pub mod engine;
pub mod error;
pub mod proto;
pub mod scheduler;
pub mod store;
