//! The inference engine: MLX only (no tokio, no gRPC).
//!
//! [`Engine`] owns a [`gemma3::Gemma3`] model and its tokenizer; caches are plain values
//! ([`cache::ModelCache`]) that callers own, fork and serialize.

pub mod cache;
pub mod config;
pub mod gemma3;
pub mod linear;
pub mod weights;

/// Errors from loading or running the engine.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("MLX error: {0}")]
    Mlx(#[from] mlx_rs::error::Exception),
    #[error("cannot load model: {0}")]
    Load(String),
    #[error("checkpoint is missing tensor {0}")]
    MissingTensor(String),
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error("I/O error on {path}: {source}")]
    Io { path: std::path::PathBuf, source: std::io::Error },
}
