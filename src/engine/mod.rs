//! The inference engine: MLX only (no tokio, no gRPC).
//!
//! [`Engine`] owns a [`gemma3::Gemma3`] model and its tokenizer; caches are plain values
//! ([`cache::ModelCache`]) that callers own, fork and serialize with [`cache_codec`].

pub mod batch;
pub mod batch_cache;
pub mod cache;
pub mod cache_codec;
pub mod chat;
pub mod config;
pub mod device;
pub mod gemma3;
pub mod generate;
pub mod linear;
pub mod loader;
pub mod logits_codec;
pub mod sampling;
pub mod tokenizer;
pub mod weights;

use std::path::Path;

use cache::ModelCache;
use device::{DeviceChoice, DeviceInfo};
use gemma3::Gemma3;
use generate::{GenerateOptions, GenerationOutput, TokenEvent};
use tokenizer::TextTokenizer;
use weights::WeightFormat;

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

/// How to load a model.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    pub device: DeviceChoice,
    pub weights: WeightFormat,
}

/// A model, its tokenizer and the device they run on. Not thread-safe by design: MLX
/// evaluation belongs to one thread (the daemon's model actor).
pub struct Engine {
    model: Gemma3,
    tokenizer: TextTokenizer,
    device: DeviceInfo,
    fingerprint: String,
}

impl Engine {
    /// Loads a checkpoint directory (config.json, *.safetensors, tokenizer.json).
    pub fn load_dir(dir: &Path, options: &LoadOptions) -> Result<Self, EngineError> {
        let device = device::select(options.device).map_err(EngineError::Device)?;
        let format = options.weights.resolve(device.is_gpu);
        let model = Gemma3::load_dir(dir, format)?;
        let tokenizer = TextTokenizer::from_file(&dir.join("tokenizer.json"))?;
        let fingerprint = fingerprint_dir(dir)?;
        Ok(Self {
            model,
            tokenizer,
            device,
            fingerprint,
        })
    }

    /// Assembles an engine from parts (e.g. a model converted from GGUF).
    pub fn from_parts(
        model: Gemma3,
        tokenizer: TextTokenizer,
        device: DeviceInfo,
        fingerprint: String,
    ) -> Self {
        Self {
            model,
            tokenizer,
            device,
            fingerprint,
        }
    }

    pub fn model(&self) -> &Gemma3 {
        &self.model
    }

    pub fn tokenizer(&self) -> &TextTokenizer {
        &self.tokenizer
    }

    pub fn device(&self) -> &DeviceInfo {
        &self.device
    }

    /// Stable hash of weights + config + tokenizer; caches are bound to it.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// An empty cache for this model.
    pub fn new_cache(&self) -> ModelCache {
        self.model.new_cache()
    }

    /// Tokenizes `text` (special-token markup is recognised; no `<bos>` added).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, EngineError> {
        self.tokenizer.encode(text)
    }

    /// Prefills `tokens` into `cache` (chunked); the cache keeps the logits after the
    /// last token, so a generation can continue it without another forward pass.
    pub fn append(
        &self,
        cache: &mut ModelCache,
        tokens: &[u32],
        chunk: usize,
    ) -> Result<(), EngineError> {
        generate::extend(&self.model, cache, tokens, chunk, true)
    }

    /// Like [`Self::append`] when more tokens follow at once: skips the output head, so
    /// the cache has no next-token logits until the next [`Self::append`].
    pub fn append_partial(
        &self,
        cache: &mut ModelCache,
        tokens: &[u32],
        chunk: usize,
    ) -> Result<(), EngineError> {
        generate::extend(&self.model, cache, tokens, chunk, false)
    }

    /// Generates after `prompt`, streaming tokens to `on_token` (return `false` to stop).
    pub fn generate(
        &self,
        cache: &mut ModelCache,
        prompt: &[u32],
        options: &GenerateOptions,
        on_token: impl FnMut(&TokenEvent) -> bool,
    ) -> Result<GenerationOutput, EngineError> {
        generate::generate(
            &self.model,
            &self.tokenizer,
            cache,
            prompt,
            options,
            on_token,
        )
    }

    /// Advances a step-wise [`generate::Generation`] by one prefill chunk or one token
    /// (for schedulers that interleave many generations).
    pub fn step(
        &self,
        generation: &mut generate::Generation,
        cache: &mut ModelCache,
    ) -> Result<generate::Step, EngineError> {
        generation.step(&self.model, &self.tokenizer, cache)
    }

    /// Advances several decoding generations, each on its own cache, by one token in
    /// one forward pass (see [`batch`]).
    pub fn decode_batch(
        &self,
        items: &mut [(&mut generate::Generation, &mut ModelCache)],
    ) -> Result<Vec<generate::Step>, EngineError> {
        batch::decode_step_on_caches(&self.model, &self.tokenizer, items)
    }

    /// Advances the generations whose sequences are the rows of `cache` by one token
    /// in one forward pass (see [`batch`]).
    pub fn decode_batch_cache(
        &self,
        generations: &mut [&mut generate::Generation],
        cache: &mut batch_cache::BatchCache,
    ) -> Result<Vec<generate::Step>, EngineError> {
        batch::decode_step(&self.model, &self.tokenizer, generations, cache)
    }

    /// Serializes a cache bound to this model.
    pub fn save_cache(&self, cache: &ModelCache) -> Result<Vec<u8>, cache_codec::CodecError> {
        cache_codec::encode(cache, &self.fingerprint)
    }

    /// Restores a cache made by this model (refuses any other).
    pub fn load_cache(&self, bytes: &[u8]) -> Result<ModelCache, cache_codec::CodecError> {
        cache_codec::decode(bytes, &self.fingerprint)
    }
}

/// blake3 over config.json, tokenizer.json and the safetensors files (sorted by name).
fn fingerprint_dir(dir: &Path) -> Result<String, EngineError> {
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
        .map_err(|source| EngineError::Io {
            path: dir.to_owned(),
            source,
        })?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name == "config.json" || name == "tokenizer.json" || name.ends_with(".safetensors")
        })
        .collect();
    files.sort();
    let mut hasher = blake3::Hasher::new();
    for f in files {
        let name = f
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("")
            .to_owned();
        hasher.update(name.as_bytes());
        hasher.update_mmap(&f).map_err(|source| EngineError::Io {
            path: f.clone(),
            source,
        })?;
    }
    Ok(hasher.finalize().to_hex()[..32].to_owned())
}
