//! [`EngineError`]: everything that can go wrong loading or running a model.

use crate::model::config;

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
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("tokenizer error: {0}")]
    Tokenizer(String),
    #[error("invalid input: {0}")]
    InvalidInput(String),
    #[error("device error: {0}")]
    Device(String),
    #[error("internal error: {0}")]
    Internal(String),
}
