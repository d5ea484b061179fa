//! Linear projections and the (tied) token embedding, dense or MLX affine-quantized.

use mlx_rs::error::Exception;

use mlx_rs::ops::{dequantize, matmul, quantized_matmul};
use mlx_rs::Array;

use crate::model::config::QuantParams;

/// A bias-free linear layer `y = x W^T`.
#[derive(Debug, Clone)]
pub enum Linear {
    /// Weight `[out, in]` in a float dtype.
    Dense { weight: Array },
    /// MLX affine quantization: packed `weight` `[out, in * bits / 32]` (uint32),
    /// `scales`/`biases` `[out, in / group_size]`.
    Quantized {
        weight: Array,
        scales: Array,
        biases: Array,
        params: QuantParams,
    },
}

impl Linear {
    /// Applies the layer to `x` (`[..., in]` -> `[..., out]`).
    pub fn forward(&self, x: &Array) -> Result<Array, Exception> {
        match self {
            Linear::Dense { weight } => matmul(x, weight.t()),
            Linear::Quantized {
                weight,
                scales,
                biases,
                params,
            } => quantized_matmul(
                x,
                weight,
                scales,
                biases,
                true,
                params.group_size,
                params.bits,
            ),
        }
    }

    /// The parameter arrays.
    pub fn arrays(&self) -> Vec<&Array> {
        match self {
            Linear::Dense { weight } => vec![weight],
            Linear::Quantized {
                weight,
                scales,
                biases,
                ..
            } => vec![weight, scales, biases],
        }
    }

    /// Bytes held by the parameters.
    pub fn nbytes(&self) -> usize {
        match self {
            Linear::Dense { weight } => weight.nbytes(),
            Linear::Quantized {
                weight,
                scales,
                biases,
                ..
            } => weight.nbytes() + scales.nbytes() + biases.nbytes(),
        }
    }

    /// Rows `ids` of the weight matrix as floats (the embedding lookup).
    pub fn rows(&self, ids: &Array) -> Result<Array, Exception> {
        match self {
            Linear::Dense { weight } => weight.take_axis(ids, 0),
            Linear::Quantized {
                weight,
                scales,
                biases,
                params,
            } => dequantize(
                weight.take_axis(ids, 0)?,
                scales.take_axis(ids, 0)?,
                &biases.take_axis(ids, 0)?,
                params.group_size,
                params.bits,
            ),
        }
    }

    /// Number of output rows (the vocabulary size for an embedding).
    pub fn out_features(&self) -> i32 {
        match self {
            Linear::Dense { weight } | Linear::Quantized { weight, .. } => weight.dim(0),
        }
    }

    /// The float dtype this layer computes in.
    pub fn compute_dtype(&self) -> mlx_rs::Dtype {
        match self {
            Linear::Dense { weight } => weight.dtype(),
            Linear::Quantized { scales, .. } => scales.dtype(),
        }
    }
}
