//! Gemma 3 text configuration, read from an HF / mlx-community `config.json`.
//!
//! Accepts `model_type: "gemma3_text"` and the multimodal `"gemma3"` whose text fields
//! sit under `text_config` (often listing only a few fields; the rest take the
//! `gemma3_text` defaults, as in mlx-lm).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Hyper-parameters of a Gemma 3 text decoder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gemma3Config {
    #[serde(default = "defaults::model_type")]
    pub model_type: String,
    #[serde(default = "defaults::hidden_size")]
    pub hidden_size: usize,
    #[serde(default = "defaults::num_hidden_layers")]
    pub num_hidden_layers: usize,
    #[serde(default = "defaults::intermediate_size")]
    pub intermediate_size: usize,
    #[serde(default = "defaults::num_attention_heads")]
    pub num_attention_heads: usize,
    #[serde(default = "defaults::num_key_value_heads")]
    pub num_key_value_heads: usize,
    #[serde(default = "defaults::head_dim")]
    pub head_dim: usize,
    #[serde(default = "defaults::rms_norm_eps")]
    pub rms_norm_eps: f32,
    #[serde(default = "defaults::vocab_size")]
    pub vocab_size: usize,
    #[serde(default = "defaults::rope_theta")]
    pub rope_theta: f32,
    #[serde(default = "defaults::rope_local_base_freq")]
    pub rope_local_base_freq: f32,
    #[serde(default = "defaults::query_pre_attn_scalar")]
    pub query_pre_attn_scalar: f32,
    #[serde(default = "defaults::sliding_window")]
    pub sliding_window: usize,
    #[serde(default = "defaults::sliding_window_pattern")]
    pub sliding_window_pattern: usize,
    #[serde(default = "defaults::max_position_embeddings")]
    pub max_position_embeddings: usize,
    #[serde(default)]
    pub rope_scaling: Option<RopeScaling>,
    /// MLX affine quantization of the checkpoint, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantization: Option<QuantizationConfig>,
}

/// RoPE scaling for the global layers (`linear` on 4B/12B/27B). Checkpoints name the
/// kind `rope_type`, `type`, or both.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RopeScaling {
    #[serde(default)]
    pub rope_type: Option<String>,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub legacy_type: Option<String>,
    #[serde(default = "defaults::one")]
    pub factor: f32,
}

impl RopeScaling {
    /// The scaling kind, e.g. `linear`.
    pub fn kind(&self) -> &str {
        self.rope_type
            .as_deref()
            .or(self.legacy_type.as_deref())
            .unwrap_or("default")
    }
}

/// mlx-community quantization block: global `group_size`/`bits` plus per-module overrides
/// (`"model.layers.0.mlp.down_proj": {"group_size": 64, "bits": 8}` or `false`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuantizationConfig {
    pub group_size: i32,
    pub bits: i32,
    #[serde(flatten)]
    pub overrides: BTreeMap<String, serde_json::Value>,
}

/// Group size and bits of one quantized module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuantParams {
    pub group_size: i32,
    pub bits: i32,
}

impl QuantizationConfig {
    /// Parameters for the module at `path` (e.g. `model.layers.3.mlp.up_proj`).
    pub fn for_module(&self, path: &str) -> QuantParams {
        let global = QuantParams {
            group_size: self.group_size,
            bits: self.bits,
        };
        match self.overrides.get(path) {
            Some(serde_json::Value::Object(o)) => QuantParams {
                group_size: o
                    .get("group_size")
                    .and_then(|v| v.as_i64())
                    .map_or(global.group_size, |v| v as i32),
                bits: o
                    .get("bits")
                    .and_then(|v| v.as_i64())
                    .map_or(global.bits, |v| v as i32),
            },
            _ => global,
        }
    }
}

/// Errors reading a model configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config.json is not valid: {0}")]
    Parse(#[from] serde_json::Error),
    #[error("unsupported model_type {0:?}: semkv runs Gemma 3 text models (gemma3_text, gemma3)")]
    UnsupportedModel(String),
    #[error("invalid config: {0}")]
    Invalid(String),
}

impl Gemma3Config {
    /// Parses `config.json` text (either `gemma3_text` or `gemma3` with `text_config`).
    pub fn from_json(text: &str) -> Result<Self, ConfigError> {
        let root: serde_json::Value = serde_json::from_str(text)?;
        let model_type = root
            .get("model_type")
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_owned();
        let mut config: Gemma3Config = match model_type.as_str() {
            "gemma3_text" => serde_json::from_value(root.clone())?,
            "gemma3" => {
                let mut text_config = root
                    .get("text_config")
                    .cloned()
                    .unwrap_or_else(|| serde_json::json!({}));
                // Quantization is recorded at the top level of multimodal checkpoints.
                if let (Some(q), Some(obj)) =
                    (root.get("quantization"), text_config.as_object_mut())
                {
                    obj.entry("quantization").or_insert_with(|| q.clone());
                }
                serde_json::from_value(text_config)?
            }
            other => return Err(ConfigError::UnsupportedModel(other.to_owned())),
        };
        config.model_type = "gemma3_text".to_owned();
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |what: &str| Err(ConfigError::Invalid(what.to_owned()));
        if self.num_attention_heads == 0 || self.num_key_value_heads == 0 {
            return bad("attention head counts must be positive");
        }
        if self.num_attention_heads % self.num_key_value_heads != 0 {
            return bad("num_attention_heads must be a multiple of num_key_value_heads");
        }
        if self.sliding_window_pattern == 0 || self.sliding_window == 0 {
            return bad("sliding_window and sliding_window_pattern must be positive");
        }
        Ok(())
    }

    /// Whether layer `index` attends globally (every `sliding_window_pattern`-th layer).
    pub fn is_global_layer(&self, index: usize) -> bool {
        (index + 1) % self.sliding_window_pattern == 0
    }

    /// Multiplier passed to RoPE for global layers (1 / linear factor).
    pub fn global_rope_scale(&self) -> f32 {
        match &self.rope_scaling {
            Some(s) if s.kind() == "linear" => 1.0 / s.factor,
            _ => 1.0,
        }
    }
}

mod defaults {
    pub fn model_type() -> String {
        "gemma3_text".to_owned()
    }
    pub fn one() -> f32 {
        1.0
    }
    pub fn hidden_size() -> usize {
        1152
    }
    pub fn num_hidden_layers() -> usize {
        26
    }
    pub fn intermediate_size() -> usize {
        6912
    }
    pub fn num_attention_heads() -> usize {
        4
    }
    pub fn num_key_value_heads() -> usize {
        1
    }
    pub fn head_dim() -> usize {
        256
    }
    pub fn rms_norm_eps() -> f32 {
        1e-6
    }
    pub fn vocab_size() -> usize {
        262144
    }
    pub fn rope_theta() -> f32 {
        1_000_000.0
    }
    pub fn rope_local_base_freq() -> f32 {
        10_000.0
    }
    pub fn query_pre_attn_scalar() -> f32 {
        256.0
    }
    pub fn sliding_window() -> usize {
        512
    }
    pub fn sliding_window_pattern() -> usize {
        6
    }
    pub fn max_position_embeddings() -> usize {
        32768
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_text_config_takes_gemma3_text_defaults() {
        let json = r#"{"model_type":"gemma3","quantization":{"group_size":64,"bits":4},
            "text_config":{"hidden_size":3840,"num_hidden_layers":48,"num_attention_heads":16,
            "num_key_value_heads":8,"sliding_window":1024,"vocab_size":262208,
            "rope_scaling":{"rope_type":"linear","factor":8.0}}}"#;
        let c = Gemma3Config::from_json(json).unwrap();
        assert_eq!(c.head_dim, 256);
        assert_eq!(c.sliding_window_pattern, 6);
        assert_eq!(c.quantization.as_ref().unwrap().bits, 4);
        assert!((c.global_rope_scale() - 0.125).abs() < 1e-7);
        assert!(c.is_global_layer(5) && !c.is_global_layer(4));
    }

    #[test]
    fn per_module_quantization_override() {
        let json = r#"{"model_type":"gemma3_text","quantization":{"group_size":64,"bits":4,
            "model.layers.0.mlp.down_proj":{"group_size":32,"bits":8}}}"#;
        let q = Gemma3Config::from_json(json).unwrap().quantization.unwrap();
        assert_eq!(
            q.for_module("model.layers.0.mlp.down_proj"),
            QuantParams {
                group_size: 32,
                bits: 8
            }
        );
        assert_eq!(
            q.for_module("model.layers.1.mlp.down_proj"),
            QuantParams {
                group_size: 64,
                bits: 4
            }
        );
    }

    #[test]
    fn rejects_other_architectures() {
        assert!(matches!(
            Gemma3Config::from_json(r#"{"model_type":"llama"}"#),
            Err(ConfigError::UnsupportedModel(_))
        ));
    }
}
