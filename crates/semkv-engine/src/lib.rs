//! semkv-engine: Gemma 3 inference on MLX with caches as plain values.
//!
//! MLX only — no tokio, no gRPC, no storage. [`Engine`] owns a model and its
//! tokenizer; a [`cache::ModelCache`] is a value the caller owns, forks and serializes.
//!
//! Module map:
//! * [`model`] — the network: [`model::config`], [`model::weights`] (bf16/f32/4-bit),
//!   [`model::linear`], [`model::gemma3`] (the forward pass, single and batched) and
//!   [`model::loader`] (checkpoint directories, GGUF files, hub ids);
//! * [`cache`] — per-sequence KV caches ([`cache::ModelCache`]: full and rotating
//!   layers), the stacked [`cache::batch_cache::BatchCache`] of a batched step, and the
//!   checksummed byte codecs bound to a model fingerprint ([`cache::codec`],
//!   [`cache::logits_codec`]);
//! * [`generate`] — prefill, the step-wise [`generate::Generation`], batched decode
//!   ([`generate::batch`]), sampling, the Gemma chat template ([`generate::chat`]) and the
//!   tokenizer with streaming UTF-8 decode ([`generate::tokenizer`]);
//! * [`device`] — picking the MLX device (CPU, GPU);
//! * [`memory`] — what MLX holds, and its buffer cache (bounded, cleared on demand);
//! * [`error`] — [`EngineError`].
//!
//! ```no_run
//! use semkv_engine::{generate::GenerateOptions, model::loader::load_engine, LoadOptions};
//!
//! # fn main() -> Result<(), semkv_engine::EngineError> {
//! let engine = load_engine("gemma-3-270m", &LoadOptions::default())?;
//! let mut cache = engine.new_cache();
//! let prompt = engine.encode("<bos>Once upon a time")?;
//! let out = engine.generate(&mut cache, &prompt, &GenerateOptions::default(), |_| true)?;
//! println!("{}", out.text);
//! # Ok(())
//! # }
//! ```

pub mod cache;
pub mod device;
pub mod error;
pub mod generate;
pub mod memory;
pub mod model;

pub use error::EngineError;

use std::path::Path;

use cache::{batch_cache, codec as cache_codec, ModelCache};
use device::{DeviceChoice, DeviceInfo};
use generate::chat::ChatTemplate;
use generate::tokenizer::TextTokenizer;
use generate::{batch, GenerateOptions, GenerationOutput, TokenEvent};
use model::weights::WeightFormat;
use model::Model;

/// How to load a model.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    pub device: DeviceChoice,
    pub weights: WeightFormat,
}

/// A model, its tokenizer and the device they run on. Not thread-safe by design: MLX
/// evaluation belongs to one thread (the daemon's model actor).
pub struct Engine {
    model: Model,
    tokenizer: TextTokenizer,
    chat: Option<ChatTemplate>,
    device: DeviceInfo,
    fingerprint: String,
}

impl Engine {
    /// Loads a checkpoint directory (config.json, *.safetensors, tokenizer.json).
    pub fn load_dir(dir: &Path, options: &LoadOptions) -> Result<Self, EngineError> {
        let device = device::select(options.device).map_err(EngineError::Device)?;
        let format = options.weights.resolve(device.is_gpu);
        let model = Model::load_dir(dir, format)?;
        let tokenizer = TextTokenizer::from_dir(dir)?;
        let template = ChatTemplate::source_in_dir(dir);
        let chat = ChatTemplate::for_model(template.as_deref(), model.family(), &tokenizer)?;
        let fingerprint = fingerprint_dir(dir)?;
        Ok(Self {
            model,
            tokenizer,
            chat,
            device,
            fingerprint,
        })
    }

    /// Assembles an engine from parts (e.g. a model converted from GGUF).
    pub fn from_parts(
        model: Model,
        tokenizer: TextTokenizer,
        chat: Option<ChatTemplate>,
        device: DeviceInfo,
        fingerprint: String,
    ) -> Self {
        Self {
            model,
            tokenizer,
            chat,
            device,
            fingerprint,
        }
    }

    /// The model's chat template (none: the model has no chat format; use raw text).
    pub fn chat(&self) -> Option<&ChatTemplate> {
        self.chat.as_ref()
    }

    pub fn model(&self) -> &Model {
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

    /// Generates after `prompt` (prefilled [`generate::DEFAULT_PREFILL_CHUNK`] tokens per
    /// pass), streaming tokens to `on_token` (return `false` to stop).
    pub fn generate(
        &self,
        cache: &mut ModelCache,
        prompt: &[u32],
        options: &GenerateOptions,
        on_token: impl FnMut(&TokenEvent) -> bool,
    ) -> Result<GenerationOutput, EngineError> {
        let generation = generate::Generation::new(prompt.to_vec(), options.clone(), cache.len())?;
        self.run(cache, generation, on_token)
    }

    /// Runs a prepared [`generate::Generation`] (e.g. with its own prefill chunk) to its
    /// end, streaming tokens to `on_token` (return `false` to stop).
    pub fn run(
        &self,
        cache: &mut ModelCache,
        generation: generate::Generation,
        on_token: impl FnMut(&TokenEvent) -> bool,
    ) -> Result<GenerationOutput, EngineError> {
        generate::run(&self.model, &self.tokenizer, cache, generation, on_token)
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
