//! Llama-family text configuration (`model_type: "llama"`: Llama 2 and 3, SmolLM,
//! and other checkpoints that differ from Llama only in these fields), read from an
//! HF / mlx-community `config.json` with mlx-lm's defaults for absent fields.

use serde::{Deserialize, Serialize};

use crate::model::config::{ConfigError, QuantizationConfig};

/// Hyper-parameters of a Llama-family decoder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlamaConfig {
    pub model_type: String,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub intermediate_size: usize,
    pub num_attention_heads: usize,
    /// Defaults to `num_attention_heads` (no grouping).
    #[serde(default)]
    pub num_key_value_heads: Option<usize>,
    /// Defaults to `hidden_size / num_attention_heads`.
    #[serde(default)]
    pub head_dim: Option<usize>,
    pub rms_norm_eps: f32,
    pub vocab_size: usize,
    #[serde(default = "default_rope_theta")]
    pub rope_theta: f32,
    #[serde(default)]
    pub rope_traditional: bool,
    #[serde(default)]
    pub rope_scaling: Option<LlamaRopeScaling>,
    /// The output head is the embedding (when the checkpoint has no `lm_head`).
    #[serde(default = "default_true")]
    pub tie_word_embeddings: bool,
    #[serde(default = "default_max_positions")]
    pub max_position_embeddings: usize,
    #[serde(default)]
    pub attention_bias: bool,
    #[serde(default)]
    pub mlp_bias: bool,
    /// MLX affine quantization of the checkpoint, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantization: Option<QuantizationConfig>,
}

/// RoPE scaling: `linear`, or `llama3` (frequency-dependent, Llama 3.1+).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlamaRopeScaling {
    #[serde(default)]
    pub rope_type: Option<String>,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub legacy_type: Option<String>,
    #[serde(default = "default_one")]
    pub factor: f32,
    #[serde(default = "default_one")]
    pub low_freq_factor: f32,
    #[serde(default = "default_high_freq_factor")]
    pub high_freq_factor: f32,
    #[serde(default = "default_original_positions")]
    pub original_max_position_embeddings: usize,
}

impl LlamaRopeScaling {
    /// The scaling kind, e.g. `linear` or `llama3`.
    pub fn kind(&self) -> &str {
        self.rope_type
            .as_deref()
            .or(self.legacy_type.as_deref())
            .unwrap_or("default")
    }
}

fn default_rope_theta() -> f32 {
    10_000.0
}
fn default_true() -> bool {
    true
}
fn default_max_positions() -> usize {
    2048
}
fn default_one() -> f32 {
    1.0
}
fn default_high_freq_factor() -> f32 {
    4.0
}
fn default_original_positions() -> usize {
    8192
}

impl LlamaConfig {
    /// Parses `config.json` text of a `llama` checkpoint.
    pub fn from_json(text: &str) -> Result<Self, ConfigError> {
        let config: LlamaConfig = serde_json::from_str(text)?;
        if config.model_type != "llama" {
            return Err(ConfigError::UnsupportedModel(config.model_type));
        }
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |what: &str| Err(ConfigError::Invalid(what.to_owned()));
        let kv = self.kv_heads();
        if self.num_attention_heads == 0 || kv == 0 {
            return bad("attention head counts must be positive");
        }
        if self.num_attention_heads % kv != 0 {
            return bad("num_attention_heads must be a multiple of num_key_value_heads");
        }
        if self.attention_bias || self.mlp_bias {
            return bad("attention_bias / mlp_bias are not supported yet");
        }
        match self.rope_scaling.as_ref().map(LlamaRopeScaling::kind) {
            None | Some("default" | "linear" | "llama3") => Ok(()),
            Some(other) => Err(ConfigError::Invalid(format!(
                "rope_scaling type {other:?} is not supported (linear, llama3)"
            ))),
        }
    }

    /// Key/value heads (grouped-query attention).
    pub fn kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.head_dim
            .unwrap_or(self.hidden_size / self.num_attention_heads.max(1))
    }

    /// Position multiplier passed to RoPE (1 / linear factor).
    pub fn rope_scale(&self) -> f32 {
        match &self.rope_scaling {
            Some(s) if s.kind() == "linear" => 1.0 / s.factor,
            _ => 1.0,
        }
    }

    /// Llama 3 RoPE frequencies (one per rotated pair, as MLX's `rope` takes them),
    /// when the config asks for `llama3` scaling.
    pub fn rope_freqs(&self) -> Option<Vec<f32>> {
        let s = self
            .rope_scaling
            .as_ref()
            .filter(|s| s.kind() == "llama3")?;
        let dims = self.head_dim();
        let old = s.original_max_position_embeddings as f32;
        let low_wavelen = old / s.low_freq_factor;
        let high_wavelen = old / s.high_freq_factor;
        let freqs = (0..dims)
            .step_by(2)
            .map(|i| {
                let f = self.rope_theta.powf(i as f32 / dims as f32);
                let wavelen = 2.0 * std::f32::consts::PI * f;
                if wavelen > low_wavelen {
                    f * s.factor
                } else if wavelen > high_wavelen {
                    let smooth = (old / wavelen - s.low_freq_factor)
                        / (s.high_freq_factor - s.low_freq_factor);
                    f / ((1.0 - smooth) / s.factor + smooth)
                } else {
                    f
                }
            })
            .collect();
        Some(freqs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMOLLM2: &str = r#"{"model_type":"llama","hidden_size":576,"num_hidden_layers":30,
        "intermediate_size":1536,"num_attention_heads":9,"num_key_value_heads":3,
        "rms_norm_eps":1e-5,"vocab_size":49152,"rope_theta":100000,
        "max_position_embeddings":8192,"tie_word_embeddings":true}"#;

    #[test]
    fn smollm2_shape() {
        let c = LlamaConfig::from_json(SMOLLM2).unwrap();
        assert_eq!((c.head_dim(), c.kv_heads()), (64, 3));
        assert_eq!(c.rope_scale(), 1.0);
        assert!(c.rope_freqs().is_none());
        assert!(c.tie_word_embeddings);
    }

    #[test]
    fn llama3_frequencies_follow_the_three_bands() {
        let text = SMOLLM2.replace(
            "\"tie_word_embeddings\":true",
            r#""rope_scaling":{"rope_type":"llama3","factor":8.0,"low_freq_factor":1.0,
                "high_freq_factor":4.0,"original_max_position_embeddings":8192}"#,
        );
        let c = LlamaConfig::from_json(&text).unwrap();
        let f = c.rope_freqs().unwrap();
        assert_eq!(f.len(), 32);
        // Short wavelengths are kept, the longest are stretched by the factor.
        assert_eq!(f[0], 1.0);
        let last = 100_000f32.powf(62.0 / 64.0);
        assert!((f[31] / last - 8.0).abs() < 1e-4, "{}", f[31] / last);
    }

    #[test]
    fn refuses_what_it_cannot_run() {
        let biased = SMOLLM2.replace("\"tie_word_embeddings\":true", "\"attention_bias\":true");
        assert!(LlamaConfig::from_json(&biased).is_err());
        let gemma = SMOLLM2.replace("\"llama\"", "\"gemma3_text\"");
        assert!(matches!(
            LlamaConfig::from_json(&gemma),
            Err(ConfigError::UnsupportedModel(_))
        ));
    }
}
