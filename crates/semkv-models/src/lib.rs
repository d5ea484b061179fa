//! Model files for semkv, as plain data for the engine.
//!
//! * [`gguf`]: reads Gemma 3 and Llama-family GGUF checkpoints and dequantizes them to `f32`
//!   tensors with Hugging Face names, shapes and conventions;
//! * [`gguf_tokenizer`]: builds a `tokenizers` tokenizer from a GGUF file's
//!   metadata;
//! * [`pull`]: downloads the default model (Gemma 3 270M) into a local cache;
//! * [`fingerprint`]: a stable identity of a model's files.
//!
//! The crate does not depend on MLX: the engine turns its output into arrays.

pub mod fingerprint;
pub mod gguf;
pub mod gguf_tokenizer;
pub mod pull;

pub use fingerprint::{fingerprint, Fingerprint, FingerprintError};
pub use gguf::{
    hf_tensor_name, load_checkpoint, read_metadata, unpermute_heads, Architecture,
    Gemma3TextConfig, GgufCheckpoint, GgufError, GgufFile, GgufMetadata, LlamaTextConfig,
    ModelConfig, NamedTensor, RopeScaling, TensorSummary,
};
pub use gguf_tokenizer::{load_gguf_tokenizer, tokenizer_from_gguf, GgufTokenizerError};
pub use pull::{
    default_cache_dir, default_model_path, known_model, pull_default_model, pull_model, PullError,
    DEFAULT_MODEL, KNOWN_MODELS, SMOLLM2_135M_INSTRUCT,
};
