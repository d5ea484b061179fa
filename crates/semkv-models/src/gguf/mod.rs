//! Reading Gemma 3 and Llama-family checkpoints stored as GGUF files.
//!
//! A GGUF file holds the model configuration as `{architecture}.*` metadata
//! keys and the weights as (mostly quantized) ggml tensors. [`GgufFile`] opens
//! such a file, derives a Hugging Face style [`ModelConfig`] from its metadata
//! and dequantizes its tensors to `f32` under their Hugging Face names and
//! shapes, so that the engine can treat the result like an HF checkpoint:
//!
//! * names: `blk.N.attn_q.weight` becomes `model.layers.N.self_attn.q_proj.weight`
//!   and so on (see [`hf_tensor_name`]; `ffn_norm` is the pre-MLP norm of
//!   either family, named differently by each);
//! * shapes: row-major, outermost dimension first (`q_proj.weight` is
//!   `[out_features, in_features]`); ggml lists dimensions innermost first and
//!   the reader reverses them;
//! * Gemma norms: GGUF stores Gemma's RMSNorm weights with the `+ 1` of
//!   `x * (1 + w)` folded in; they are returned as `w` (HF convention) by
//!   subtracting 1;
//! * Llama q/k: llama.cpp's converter reorders the rows of each query and key
//!   head for its interleaved RoPE; they are put back in HF order (see
//!   [`unpermute_heads`]).

use std::collections::HashMap;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::{DType, Device};
use thiserror::Error;

mod config;
mod metadata;

use config::{gemma3_config, llama_config};
pub use config::{Gemma3TextConfig, LlamaTextConfig, ModelConfig, RopeScaling};
pub(crate) use metadata::Metadata;

/// The `general.architecture` of Gemma 3 files.
pub const GEMMA3_ARCHITECTURE: &str = "gemma3";

/// The `general.architecture` of Llama-family files (Llama 2/3, SmolLM, ...).
pub const LLAMA_ARCHITECTURE: &str = "llama";

/// The model families this module reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Architecture {
    /// Gemma 3 text models.
    Gemma3,
    /// The Llama family.
    Llama,
}

impl Architecture {
    /// The family of a `general.architecture` value.
    pub fn from_gguf(name: &str) -> Option<Self> {
        match name {
            GEMMA3_ARCHITECTURE => Some(Architecture::Gemma3),
            LLAMA_ARCHITECTURE => Some(Architecture::Llama),
            _ => None,
        }
    }
}

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
    #[error("unsupported GGUF architecture {found:?} ({GEMMA3_ARCHITECTURE:?} and {LLAMA_ARCHITECTURE:?} are supported)")]
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
    pub config: ModelConfig,
    /// Every tensor, in [`GgufFile::tensor_summaries`] order.
    pub tensors: Vec<TensorSummary>,
}

/// A whole checkpoint, dequantized to `f32`.
#[derive(Clone, Debug, PartialEq)]
pub struct GgufCheckpoint {
    /// The model configuration.
    pub config: ModelConfig,
    /// Every tensor, in [`GgufFile::tensor_summaries`] order.
    pub tensors: Vec<NamedTensor>,
}

/// An open GGUF file of a supported family: its metadata is parsed, its tensors
/// are read on demand.
#[derive(Debug)]
pub struct GgufFile {
    path: PathBuf,
    reader: BufReader<File>,
    content: Content,
    architecture: Architecture,
    config: ModelConfig,
    tensors: Vec<TensorSummary>,
}

impl GgufFile {
    /// Opens `path`, parses its metadata and checks that it is a model of a
    /// supported family whose tensors all have Hugging Face names.
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
        let name = meta.string("general.architecture")?;
        let architecture =
            Architecture::from_gguf(name).ok_or_else(|| GgufError::Architecture {
                found: name.to_owned(),
            })?;
        let tensors = summarize_tensors(&content, architecture)?;
        let config = match architecture {
            Architecture::Gemma3 => ModelConfig::Gemma3(gemma3_config(&meta, &tensors)?),
            Architecture::Llama => ModelConfig::Llama(llama_config(&meta, &tensors)?),
        };
        Ok(Self {
            path: path.to_owned(),
            reader,
            content,
            architecture,
            config,
            tensors,
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The model configuration derived from the metadata.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The model family.
    pub fn architecture(&self) -> Architecture {
        self.architecture
    }

    /// The chat template the file carries (`tokenizer.chat_template`), if any.
    pub fn chat_template(&self) -> Option<&str> {
        match self.content.metadata.get("tokenizer.chat_template") {
            Some(Value::String(s)) => Some(s),
            _ => None,
        }
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
        let (heads, kv_heads, head_dim) = self.config.heads();
        match self.architecture {
            Architecture::Gemma3 if is_norm(&summary.name) => {
                // GGUF folds RMSNorm's `1 + w` into the stored weight; HF stores `w`.
                data.iter_mut().for_each(|w| *w -= 1.0);
            }
            Architecture::Llama if summary.name.ends_with("self_attn.q_proj.weight") => {
                data = unpermute_heads(&data, heads, head_dim)?;
            }
            Architecture::Llama if summary.name.ends_with("self_attn.k_proj.weight") => {
                data = unpermute_heads(&data, kv_heads, head_dim)?;
            }
            _ => {}
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

/// Undoes llama.cpp's reordering of a query or key projection (`[heads *
/// head_dim, in]`, row-major): within each head, its converter moved HF row
/// `j * head_dim / 2 + i` to row `2 i + j` so that its interleaved RoPE rotates
/// adjacent rows; this moves them back.
pub fn unpermute_heads(data: &[f32], heads: usize, head_dim: usize) -> Result<Vec<f32>, GgufError> {
    let rows = heads * head_dim;
    if rows == 0 || !head_dim.is_multiple_of(2) || !data.len().is_multiple_of(rows) {
        return Err(GgufError::Tensor {
            name: format!("q/k projection of {heads} heads x {head_dim}"),
            source: candle_core::Error::Msg(format!(
                "{} values do not form {rows} rows of even-width heads",
                data.len()
            )),
        });
    }
    let width = data.len() / rows;
    let half = head_dim / 2;
    let mut out = vec![0.0; data.len()];
    for h in 0..heads {
        for i in 0..half {
            for j in 0..2 {
                let from = h * head_dim + 2 * i + j;
                let to = h * head_dim + j * half + i;
                out[to * width..(to + 1) * width]
                    .copy_from_slice(&data[from * width..(from + 1) * width]);
            }
        }
    }
    Ok(out)
}

/// The Hugging Face name of a GGUF tensor of `architecture`, or `None` if the
/// name is not one of that family's.
pub fn hf_tensor_name(architecture: Architecture, gguf_name: &str) -> Option<String> {
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
        "ffn_norm.weight" => match architecture {
            Architecture::Gemma3 => "pre_feedforward_layernorm.weight",
            Architecture::Llama => "post_attention_layernorm.weight",
        },
        "post_ffw_norm.weight" => "post_feedforward_layernorm.weight",
        "ffn_gate.weight" => "mlp.gate_proj.weight",
        "ffn_up.weight" => "mlp.up_proj.weight",
        "ffn_down.weight" => "mlp.down_proj.weight",
        _ => return None,
    };
    Some(format!("model.layers.{layer}.{hf_leaf}"))
}

/// Whether an HF tensor name is an RMSNorm weight (applied as `1 + w` by Gemma).
fn is_norm(hf_name: &str) -> bool {
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

fn summarize_tensors(
    content: &Content,
    architecture: Architecture,
) -> Result<Vec<TensorSummary>, GgufError> {
    let mut tensors = content
        .tensor_infos
        .iter()
        .map(|(gguf_name, info)| {
            let name = hf_tensor_name(architecture, gguf_name)
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
                hf_tensor_name(Architecture::Gemma3, &format!("blk.17.{gguf}.weight")).as_deref(),
                Some(format!("model.layers.17.{hf}.weight").as_str())
            );
        }
        assert_eq!(
            hf_tensor_name(Architecture::Gemma3, "token_embd.weight").as_deref(),
            Some("model.embed_tokens.weight")
        );
        assert_eq!(
            hf_tensor_name(Architecture::Gemma3, "output_norm.weight").as_deref(),
            Some("model.norm.weight")
        );
        assert_eq!(
            hf_tensor_name(Architecture::Gemma3, "blk.x.attn_q.weight"),
            None
        );
        assert_eq!(
            hf_tensor_name(Architecture::Gemma3, "blk.0.rope_freqs.weight"),
            None
        );
    }

    #[test]
    fn recognizes_norms_and_layers() {
        assert!(is_norm("model.norm.weight"));
        assert!(is_norm("model.layers.3.self_attn.k_norm.weight"));
        assert!(is_norm("model.layers.3.pre_feedforward_layernorm.weight"));
        assert!(!is_norm("model.layers.3.mlp.up_proj.weight"));
        assert_eq!(layer_of("model.layers.12.mlp.up_proj.weight"), Some(12));
        assert_eq!(layer_of("model.norm.weight"), None);
    }

    #[test]
    fn llama_names_its_pre_mlp_norm_differently() {
        assert_eq!(
            hf_tensor_name(Architecture::Llama, "blk.3.ffn_norm.weight").as_deref(),
            Some("model.layers.3.post_attention_layernorm.weight")
        );
        assert_eq!(
            hf_tensor_name(Architecture::Llama, "blk.3.attn_norm.weight").as_deref(),
            Some("model.layers.3.input_layernorm.weight")
        );
    }

    #[test]
    fn unpermute_restores_hf_row_order() {
        // Two heads of width 4, one column: HF rows 0..8. llama.cpp's order puts
        // the halves of each head side by side: rows (0, 2, 1, 3) of head 0 become
        // (0, 1, 2, 3) in GGUF order, i.e. GGUF row 2i + j holds HF row 2j + i.
        let hf: Vec<f32> = (0..8).map(|r| r as f32).collect();
        let gguf: Vec<f32> = [0, 2, 1, 3, 4, 6, 5, 7].iter().map(|&r| r as f32).collect();
        assert_eq!(unpermute_heads(&gguf, 2, 4).unwrap(), hf);
        // Wider rows move whole.
        let wide: Vec<f32> = gguf.iter().flat_map(|&r| [r, r + 0.5]).collect();
        let back = unpermute_heads(&wide, 2, 4).unwrap();
        assert_eq!(back[2..4], [1.0, 1.5]);
        assert!(unpermute_heads(&gguf, 3, 4).is_err());
    }
}
