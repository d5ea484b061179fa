//! Reading Gemma 3 checkpoints stored as GGUF files.
//!
//! A GGUF file holds the model configuration as `gemma3.*` metadata keys and
//! the weights as (mostly quantized) ggml tensors. [`GgufFile`] opens such a
//! file, derives a Hugging Face style [`Gemma3TextConfig`] from its metadata
//! and dequantizes its tensors to `f32` under their Hugging Face names and
//! shapes, so that the engine can treat the result like an HF checkpoint:
//!
//! * names: `blk.N.attn_q.weight` becomes `model.layers.N.self_attn.q_proj.weight`
//!   and so on (see [`hf_tensor_name`]);
//! * shapes: row-major, outermost dimension first (`q_proj.weight` is
//!   `[out_features, in_features]`); ggml lists dimensions innermost first and
//!   the reader reverses them;
//! * norms: GGUF stores Gemma's RMSNorm weights with the `+ 1` of
//!   `x * (1 + w)` folded in; they are returned as `w` (HF convention) by
//!   subtracting 1.

use std::collections::HashMap;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::{DType, Device};
use thiserror::Error;

mod config;
mod metadata;

use config::gemma3_config;
pub use config::{Gemma3TextConfig, RopeScaling};
pub(crate) use metadata::Metadata;

/// The `general.architecture` value of the files this module reads.
pub const GEMMA3_ARCHITECTURE: &str = "gemma3";

/// Errors from reading a GGUF file.
#[derive(Debug, Error)]
pub enum GgufError {
    /// The file could not be opened.
    #[error("cannot open GGUF file {path}: {source}")]
    Open {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file's header, metadata or tensor directory could not be parsed.
    #[error("{path} is not a readable GGUF file: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: candle_core::Error,
    },
    /// The file holds a model of another architecture.
    #[error("unsupported GGUF architecture {found:?} (only {GEMMA3_ARCHITECTURE:?} is supported)")]
    Architecture {
        /// The file's `general.architecture`.
        found: String,
    },
    /// A required metadata key is absent.
    #[error("GGUF metadata key {0:?} is missing")]
    MissingKey(String),
    /// A metadata key holds a value of an unexpected type.
    #[error("GGUF metadata key {key:?} should be {expected}")]
    KeyType {
        /// The key.
        key: String,
        /// What the value should have been.
        expected: &'static str,
    },
    /// A tensor whose GGUF name has no Hugging Face counterpart.
    #[error("GGUF tensor {0:?} has no known Hugging Face name")]
    UnknownTensor(String),
    /// A tensor the model needs is absent.
    #[error("GGUF file has no tensor {0:?}")]
    MissingTensor(String),
    /// A tensor could not be read or dequantized.
    #[error("cannot read GGUF tensor {name:?}: {source}")]
    Tensor {
        /// The tensor's GGUF name.
        name: String,
        /// The underlying error.
        source: candle_core::Error,
    },
}

/// A tensor's place in the file, before it is read.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorSummary {
    /// Name in the GGUF file, e.g. `blk.0.attn_q.weight`.
    pub gguf_name: String,
    /// Hugging Face name, e.g. `model.layers.0.self_attn.q_proj.weight`.
    pub name: String,
    /// Row-major shape, outermost dimension first (HF order).
    pub shape: Vec<usize>,
    /// The ggml storage type, e.g. `Q4K`, `Q8_0`, `F32`.
    pub ggml_type: String,
}

/// A dequantized tensor under its Hugging Face name.
#[derive(Clone, Debug, PartialEq)]
pub struct NamedTensor {
    /// Hugging Face name, e.g. `model.layers.0.self_attn.q_proj.weight`.
    pub name: String,
    /// Row-major shape, outermost dimension first (HF order).
    pub shape: Vec<usize>,
    /// The values, row-major; `data.len()` is the product of `shape`.
    pub data: Vec<f32>,
}

/// What a GGUF file holds, without its tensor data.
#[derive(Clone, Debug, PartialEq)]
pub struct GgufMetadata {
    /// The model configuration.
    pub config: Gemma3TextConfig,
    /// Every tensor, in [`GgufFile::tensor_summaries`] order.
    pub tensors: Vec<TensorSummary>,
}

/// A whole checkpoint, dequantized to `f32`.
#[derive(Clone, Debug, PartialEq)]
pub struct GgufCheckpoint {
    /// The model configuration.
    pub config: Gemma3TextConfig,
    /// Every tensor, in [`GgufFile::tensor_summaries`] order.
    pub tensors: Vec<NamedTensor>,
}

/// An open Gemma 3 GGUF file: its metadata is parsed, its tensors are read on
/// demand.
#[derive(Debug)]
pub struct GgufFile {
    path: PathBuf,
    reader: BufReader<File>,
    content: Content,
    config: Gemma3TextConfig,
    tensors: Vec<TensorSummary>,
}

impl GgufFile {
    /// Opens `path`, parses its metadata and checks that it is a Gemma 3
    /// model whose tensors all have Hugging Face names.
    pub fn open(path: &Path) -> Result<Self, GgufError> {
        let file = File::open(path).map_err(|source| GgufError::Open {
            path: path.to_owned(),
            source,
        })?;
        let mut reader = BufReader::new(file);
        let content = Content::read(&mut reader).map_err(|source| GgufError::Parse {
            path: path.to_owned(),
            source,
        })?;
        let meta = Metadata(&content.metadata);
        let architecture = meta.string("general.architecture")?;
        if architecture != GEMMA3_ARCHITECTURE {
            return Err(GgufError::Architecture {
                found: architecture.to_owned(),
            });
        }
        let tensors = summarize_tensors(&content)?;
        let config = gemma3_config(&meta, &tensors)?;
        Ok(Self {
            path: path.to_owned(),
            reader,
            content,
            config,
            tensors,
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The model configuration derived from the metadata.
    pub fn config(&self) -> &Gemma3TextConfig {
        &self.config
    }

    /// Every tensor of the file: the embedding first, then the blocks in
    /// layer order (names sorted within a block), then the final norm.
    pub fn tensor_summaries(&self) -> &[TensorSummary] {
        &self.tensors
    }

    /// The raw GGUF metadata (for the tokenizer, which lives there too).
    pub(crate) fn raw_metadata(&self) -> &HashMap<String, Value> {
        &self.content.metadata
    }

    /// Reads one tensor and dequantizes it to `f32` in HF convention.
    pub fn read_tensor(&mut self, summary: &TensorSummary) -> Result<NamedTensor, GgufError> {
        let tensor_error = |source| GgufError::Tensor {
            name: summary.gguf_name.clone(),
            source,
        };
        let quantized = self
            .content
            .tensor(&mut self.reader, &summary.gguf_name, &Device::Cpu)
            .map_err(tensor_error)?;
        let mut data = quantized
            .dequantize(&Device::Cpu)
            .and_then(|t| t.to_dtype(DType::F32))
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(tensor_error)?;
        if is_gemma_norm(&summary.name) {
            // GGUF folds RMSNorm's `1 + w` into the stored weight; HF stores `w`.
            data.iter_mut().for_each(|w| *w -= 1.0);
        }
        Ok(NamedTensor {
            name: summary.name.clone(),
            shape: summary.shape.clone(),
            data,
        })
    }

    /// Reads and dequantizes every tensor.
    pub fn into_checkpoint(mut self) -> Result<GgufCheckpoint, GgufError> {
        let summaries = std::mem::take(&mut self.tensors);
        let tensors = summaries
            .iter()
            .map(|summary| self.read_tensor(summary))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(GgufCheckpoint {
            config: self.config,
            tensors,
        })
    }
}

/// Reads a GGUF file's configuration and tensor directory without reading
/// any tensor data.
pub fn read_metadata(path: &Path) -> Result<GgufMetadata, GgufError> {
    let file = GgufFile::open(path)?;
    Ok(GgufMetadata {
        config: file.config,
        tensors: file.tensors,
    })
}

/// Reads a GGUF file and dequantizes all of its tensors to `f32`.
pub fn load_checkpoint(path: &Path) -> Result<GgufCheckpoint, GgufError> {
    GgufFile::open(path)?.into_checkpoint()
}

/// The Hugging Face name of a Gemma 3 GGUF tensor, or `None` if the name is
/// not one of Gemma 3's.
pub fn hf_tensor_name(gguf_name: &str) -> Option<String> {
    match gguf_name {
        "token_embd.weight" => return Some("model.embed_tokens.weight".to_owned()),
        "output_norm.weight" => return Some("model.norm.weight".to_owned()),
        "output.weight" => return Some("lm_head.weight".to_owned()),
        _ => {}
    }
    let rest = gguf_name.strip_prefix("blk.")?;
    let (layer, leaf) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let hf_leaf = match leaf {
        "attn_q.weight" => "self_attn.q_proj.weight",
        "attn_k.weight" => "self_attn.k_proj.weight",
        "attn_v.weight" => "self_attn.v_proj.weight",
        "attn_output.weight" => "self_attn.o_proj.weight",
        "attn_q_norm.weight" => "self_attn.q_norm.weight",
        "attn_k_norm.weight" => "self_attn.k_norm.weight",
        "attn_norm.weight" => "input_layernorm.weight",
        "post_attention_norm.weight" => "post_attention_layernorm.weight",
        "ffn_norm.weight" => "pre_feedforward_layernorm.weight",
        "post_ffw_norm.weight" => "post_feedforward_layernorm.weight",
        "ffn_gate.weight" => "mlp.gate_proj.weight",
        "ffn_up.weight" => "mlp.up_proj.weight",
        "ffn_down.weight" => "mlp.down_proj.weight",
        _ => return None,
    };
    Some(format!("model.layers.{layer}.{hf_leaf}"))
}

/// Whether an HF tensor name is one of Gemma's RMSNorm weights (applied as
/// `1 + w`).
fn is_gemma_norm(hf_name: &str) -> bool {
    hf_name.ends_with("norm.weight")
}

/// The layer index of an HF tensor name, if it belongs to a block.
fn layer_of(hf_name: &str) -> Option<usize> {
    hf_name
        .strip_prefix("model.layers.")?
        .split('.')
        .next()?
        .parse()
        .ok()
}

fn summarize_tensors(content: &Content) -> Result<Vec<TensorSummary>, GgufError> {
    let mut tensors = content
        .tensor_infos
        .iter()
        .map(|(gguf_name, info)| {
            let name = hf_tensor_name(gguf_name)
                .ok_or_else(|| GgufError::UnknownTensor(gguf_name.clone()))?;
            Ok(TensorSummary {
                gguf_name: gguf_name.clone(),
                name,
                // The GGUF reader has already reversed ggml's innermost-first order.
                shape: info.shape.dims().to_vec(),
                ggml_type: format!("{:?}", info.ggml_dtype),
            })
        })
        .collect::<Result<Vec<_>, GgufError>>()?;
    tensors.sort_by_cached_key(|t| {
        let group = match layer_of(&t.name) {
            Some(_) => 1,
            None if t.name == "model.embed_tokens.weight" => 0,
            None => 2,
        };
        (group, layer_of(&t.name), t.name.clone())
    });
    Ok(tensors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_every_gemma3_block_tensor() {
        let cases = [
            ("attn_q", "self_attn.q_proj"),
            ("attn_k", "self_attn.k_proj"),
            ("attn_v", "self_attn.v_proj"),
            ("attn_output", "self_attn.o_proj"),
            ("attn_q_norm", "self_attn.q_norm"),
            ("attn_k_norm", "self_attn.k_norm"),
            ("attn_norm", "input_layernorm"),
            ("post_attention_norm", "post_attention_layernorm"),
            ("ffn_norm", "pre_feedforward_layernorm"),
            ("post_ffw_norm", "post_feedforward_layernorm"),
            ("ffn_gate", "mlp.gate_proj"),
            ("ffn_up", "mlp.up_proj"),
            ("ffn_down", "mlp.down_proj"),
        ];
        for (gguf, hf) in cases {
            assert_eq!(
                hf_tensor_name(&format!("blk.17.{gguf}.weight")).as_deref(),
                Some(format!("model.layers.17.{hf}.weight").as_str())
            );
        }
        assert_eq!(
            hf_tensor_name("token_embd.weight").as_deref(),
            Some("model.embed_tokens.weight")
        );
        assert_eq!(
            hf_tensor_name("output_norm.weight").as_deref(),
            Some("model.norm.weight")
        );
        assert_eq!(hf_tensor_name("blk.x.attn_q.weight"), None);
        assert_eq!(hf_tensor_name("blk.0.rope_freqs.weight"), None);
    }

    #[test]
    fn recognizes_norms_and_layers() {
        assert!(is_gemma_norm("model.norm.weight"));
        assert!(is_gemma_norm("model.layers.3.self_attn.k_norm.weight"));
        assert!(is_gemma_norm(
            "model.layers.3.pre_feedforward_layernorm.weight"
        ));
        assert!(!is_gemma_norm("model.layers.3.mlp.up_proj.weight"));
        assert_eq!(layer_of("model.layers.12.mlp.up_proj.weight"), Some(12));
        assert_eq!(layer_of("model.norm.weight"), None);
    }
}
