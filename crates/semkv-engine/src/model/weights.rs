//! Loading checkpoint tensors into MLX arrays and choosing the dtype they are kept in.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use mlx_rs::{Array, Dtype};

use crate::model::config::{QuantParams, QuantizationConfig};
use crate::model::linear::Linear;
use crate::EngineError;

/// How weights are stored on the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WeightFormat {
    /// `f32` on the CPU (OpenBLAS is the fast path there), as stored on GPU / Metal.
    #[default]
    Auto,
    /// Exactly as stored in the checkpoint (bf16, f16, f32 or quantized).
    Native,
    /// Everything dequantized and cast to `f32`.
    F32,
    /// Floats cast to bf16; quantized layers stay quantized.
    Bf16,
}

impl WeightFormat {
    /// Resolves `Auto` for the device in use.
    pub fn resolve(self, on_gpu: bool) -> WeightFormat {
        match self {
            WeightFormat::Auto if on_gpu => WeightFormat::Native,
            WeightFormat::Auto => WeightFormat::F32,
            other => other,
        }
    }
}

impl std::str::FromStr for WeightFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Self::Auto),
            "native" => Ok(Self::Native),
            "f32" | "float32" => Ok(Self::F32),
            "bf16" | "bfloat16" => Ok(Self::Bf16),
            _ => Err(format!(
                "unknown weight format {s:?} (auto, native, f32, bf16)"
            )),
        }
    }
}

/// The tensors of a checkpoint by HF name (`model.*`, `lm_head.*`), with multimodal
/// prefixes removed.
pub struct TensorMap {
    tensors: HashMap<String, Array>,
    format: WeightFormat,
}

impl TensorMap {
    /// Reads every `*.safetensors` file of a checkpoint directory.
    pub fn from_safetensors_dir(dir: &Path, format: WeightFormat) -> Result<Self, EngineError> {
        let mut tensors = HashMap::new();
        for file in safetensors_files(dir)? {
            let loaded = Array::load_safetensors(&file)
                .map_err(|e| EngineError::Load(format!("{}: {e}", file.display())))?;
            tensors.extend(loaded);
        }
        Ok(Self::from_tensors(tensors, format))
    }

    /// Wraps already-created arrays (e.g. dequantized from GGUF).
    pub fn from_tensors(tensors: HashMap<String, Array>, format: WeightFormat) -> Self {
        let tensors = tensors
            .into_iter()
            .filter_map(|(name, array)| {
                let name = name
                    .strip_prefix("language_model.")
                    .unwrap_or(&name)
                    .to_owned();
                (name.starts_with("model.") || name.starts_with("lm_head."))
                    .then_some((name, array))
            })
            .collect();
        Self { tensors, format }
    }

    fn take(&mut self, name: &str) -> Result<Array, EngineError> {
        self.tensors
            .remove(name)
            .ok_or_else(|| EngineError::MissingTensor(name.to_owned()))
    }

    fn float(&self, array: Array) -> Result<Array, EngineError> {
        let target = match self.format {
            WeightFormat::F32 => Some(Dtype::Float32),
            WeightFormat::Bf16 => Some(Dtype::Bfloat16),
            _ => None,
        };
        match target {
            Some(dtype) if array.dtype() != dtype => Ok(array.as_dtype(dtype)?),
            _ => Ok(array),
        }
    }

    /// A Gemma RMSNorm weight, returned as the factor `1 + w` (computed in the stored
    /// dtype, as mlx-lm does, then converted).
    pub fn norm(&mut self, name: &str) -> Result<Array, EngineError> {
        let w = self.take(&format!("{name}.weight"))?;
        let one_plus = w.add(Array::from_f32(1.0).as_dtype(w.dtype())?)?;
        self.float(one_plus)
    }

    /// A plain RMSNorm weight `w` (Llama family), converted.
    pub fn plain_norm(&mut self, name: &str) -> Result<Array, EngineError> {
        let w = self.take(&format!("{name}.weight"))?;
        self.float(w)
    }

    /// Whether the checkpoint has a tensor `{name}.weight`.
    pub fn has(&self, name: &str) -> bool {
        self.tensors.contains_key(&format!("{name}.weight"))
    }

    /// A linear layer (`{name}.weight`, plus `.scales`/`.biases` when quantized).
    pub fn linear(
        &mut self,
        name: &str,
        quantization: Option<&QuantizationConfig>,
    ) -> Result<Linear, EngineError> {
        let weight = self.take(&format!("{name}.weight"))?;
        let scales = self.tensors.remove(&format!("{name}.scales"));
        let Some(scales) = scales else {
            return Ok(Linear::Dense {
                weight: self.float(weight)?,
            });
        };
        let biases = self.take(&format!("{name}.biases"))?;
        let params = quantization.map(|q| q.for_module(name)).ok_or_else(|| {
            EngineError::Load(format!(
                "{name} is quantized but config.json has no quantization block"
            ))
        })?;
        self.quantized(name, weight, scales, biases, params)
    }

    fn quantized(
        &self,
        name: &str,
        weight: Array,
        scales: Array,
        biases: Array,
        params: QuantParams,
    ) -> Result<Linear, EngineError> {
        let packed_in = weight.dim(1) as i64 * 32 / params.bits as i64;
        if packed_in != scales.dim(1) as i64 * params.group_size as i64 {
            return Err(EngineError::Load(format!(
                "{name}: packed weight {:?} and scales {:?} disagree with group_size {} / bits {}",
                weight.shape(),
                scales.shape(),
                params.group_size,
                params.bits
            )));
        }
        if self.format == WeightFormat::F32 {
            let dense =
                mlx_rs::ops::dequantize(&weight, &scales, &biases, params.group_size, params.bits)?;
            return Ok(Linear::Dense {
                weight: dense.as_dtype(Dtype::Float32)?,
            });
        }
        let (scales, biases) = if self.format == WeightFormat::Bf16 {
            (
                scales.as_dtype(Dtype::Bfloat16)?,
                biases.as_dtype(Dtype::Bfloat16)?,
            )
        } else {
            (scales, biases)
        };
        Ok(Linear::Quantized {
            weight,
            scales,
            biases,
            params,
        })
    }

    /// Names not consumed by the model (reported, not fatal).
    pub fn leftover(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.tensors.keys().map(String::as_str).collect();
        names.sort();
        names
    }
}

/// The checkpoint's safetensors files (sharded or single), sorted.
fn safetensors_files(dir: &Path) -> Result<Vec<PathBuf>, EngineError> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| EngineError::Load(format!("{}: {e}", dir.display())))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(EngineError::Load(format!(
            "no *.safetensors files in {}",
            dir.display()
        )));
    }
    Ok(files)
}
