//! [`Model`]: the decoder families the engine runs, behind one interface. A
//! checkpoint's `model_type` picks the family (`gemma3_text` / `gemma3`: Gemma 3;
//! `llama`: the Llama family); everything above this module (generation, batching,
//! caches, codecs) is the same for all of them.

use std::path::Path;

use mlx_rs::error::Exception;
use mlx_rs::{Array, Dtype};

use crate::cache::batch_cache::BatchCache;
use crate::cache::ModelCache;
use crate::model::config::{ConfigError, Gemma3Config};
use crate::model::decoder;
use crate::model::gemma3::Gemma3;
use crate::model::llama::Llama;
use crate::model::llama_config::LlamaConfig;
use crate::model::weights::{TensorMap, WeightFormat};
use crate::EngineError;

/// A loaded text decoder of one of the supported families.
pub enum Model {
    Gemma3(Gemma3),
    Llama(Llama),
}

/// Calls the same method on whichever family `$model` is.
macro_rules! each_family {
    ($model:expr, $m:ident => $body:expr) => {
        match $model {
            Model::Gemma3($m) => $body,
            Model::Llama($m) => $body,
        }
    };
}

impl From<Gemma3> for Model {
    fn from(m: Gemma3) -> Self {
        Model::Gemma3(m)
    }
}

impl From<Llama> for Model {
    fn from(m: Llama) -> Self {
        Model::Llama(m)
    }
}

impl Model {
    /// Builds the model a `config.json` text describes from checkpoint tensors.
    pub fn from_config(config_json: &str, tensors: &mut TensorMap) -> Result<Self, EngineError> {
        let model_type = model_type(config_json)?;
        let model: Model = match model_type.as_str() {
            "gemma3_text" | "gemma3" => {
                Gemma3::from_tensors(Gemma3Config::from_json(config_json)?, tensors)?.into()
            }
            "llama" => Llama::from_tensors(LlamaConfig::from_json(config_json)?, tensors)?.into(),
            _ => return Err(ConfigError::UnsupportedModel(model_type).into()),
        };
        let leftover = tensors.leftover();
        if !leftover.is_empty() {
            tracing::warn!(
                family = model.family(),
                count = leftover.len(),
                first = leftover[0],
                "checkpoint tensors not used by the model"
            );
        }
        Ok(model)
    }

    /// Loads an HF / mlx-community checkpoint directory (`config.json` + safetensors).
    pub fn load_dir(dir: &Path, format: WeightFormat) -> Result<Self, EngineError> {
        let config_path = dir.join("config.json");
        let text = std::fs::read_to_string(&config_path).map_err(|source| EngineError::Io {
            path: config_path.clone(),
            source,
        })?;
        let mut tensors = TensorMap::from_safetensors_dir(dir, format)?;
        Self::from_config(&text, &mut tensors)
    }

    /// The family's name: `gemma3` or `llama`.
    pub fn family(&self) -> &'static str {
        match self {
            Model::Gemma3(_) => "gemma3",
            Model::Llama(_) => "llama",
        }
    }

    /// Most positions the model was trained for.
    pub fn max_positions(&self) -> usize {
        match self {
            Model::Gemma3(m) => m.config().max_position_embeddings,
            Model::Llama(m) => m.config().max_position_embeddings,
        }
    }

    /// Vocabulary size (rows of the embedding).
    pub fn vocab_size(&self) -> usize {
        each_family!(self, m => m.vocab_size())
    }

    /// The float dtype activations are computed in.
    pub fn activation_dtype(&self) -> Dtype {
        each_family!(self, m => m.activation_dtype())
    }

    /// Bytes of all weights as held on the device.
    pub fn weight_bytes(&self) -> usize {
        each_family!(self, m => m.weight_bytes())
    }

    /// An empty cache with the layer kinds this model needs.
    pub fn new_cache(&self) -> ModelCache {
        each_family!(self, m => m.new_cache())
    }

    /// Final hidden states `[1, L, hidden]` of `tokens` (`[1, L]`), extending `cache`.
    pub fn hidden(&self, tokens: &Array, cache: &mut ModelCache) -> Result<Array, Exception> {
        each_family!(self, m => decoder::hidden(m, tokens, cache))
    }

    /// Logits `[1, vocab]` for the last of `tokens`, extending `cache` (lazy).
    pub fn forward_last(&self, tokens: &Array, cache: &mut ModelCache) -> Result<Array, Exception> {
        each_family!(self, m => decoder::forward_last(m, tokens, cache))
    }

    /// Logits `[1, L, vocab]` for every position (tests and scoring).
    pub fn forward_all(&self, tokens: &Array, cache: &mut ModelCache) -> Result<Array, Exception> {
        each_family!(self, m => decoder::forward_all(m, tokens, cache))
    }

    /// One decode step for the sequences of a [`BatchCache`]: `tokens` is `[B, 1]`
    /// int32, the next token of each row. Returns logits `[B, vocab]` (lazy) and
    /// extends every row by one token.
    pub fn forward_decode_batch(
        &self,
        tokens: &Array,
        cache: &mut BatchCache,
    ) -> Result<Array, Exception> {
        if tokens.dim(0) as usize != cache.rows() || tokens.dim(1) != 1 {
            return Err(Exception::custom(format!(
                "batched decode needs [{}, 1] tokens, got {:?}",
                cache.rows(),
                tokens.shape()
            )));
        }
        each_family!(self, m => decoder::forward_decode_batch(m, tokens, cache))
    }
}

/// The `model_type` of a `config.json` text.
fn model_type(config_json: &str) -> Result<String, ConfigError> {
    let root: serde_json::Value = serde_json::from_str(config_json)?;
    Ok(root
        .get("model_type")
        .and_then(|v| v.as_str())
        .unwrap_or("")
        .to_owned())
}
