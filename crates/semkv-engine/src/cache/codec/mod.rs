//! Serialization of a [`ModelCache`] to bytes and back, bit-exactly.
//!
//! Layout (all integers little endian):
//! ```text
//! "SEMKVKV\0"  magic (8 bytes)
//! u32          format version (FORMAT_VERSION)
//! u32          header length H
//! H bytes      JSON header: model fingerprint, token count, per layer: cache kind,
//!              offset, window, dtype, shapes and byte lengths of keys and values
//! u32          CRC-32 of everything after it (the tensor payload)
//! ...          payload: for each layer, keys bytes then values bytes
//! ```
//! A rotating layer is stored as its ring slots as they are (never re-ordered or
//! trimmed), so a restored ring continues exactly where it stopped.

use mlx_rs::{Array, Dtype};
use serde::{Deserialize, Serialize};

use crate::cache::{FullCache, LayerCache, ModelCache, RotatingCache};

mod delta;

pub use delta::{apply_delta, encode_delta, DELTA_FORMAT_VERSION};

const MAGIC: &[u8; 8] = b"SEMKVKV\0";
/// Bumped on any incompatible change of the layout.
pub const FORMAT_VERSION: u32 = 1;

/// Why bytes could not be turned back into a cache.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("not a semkv KV cache (bad magic)")]
    BadMagic,
    #[error("cache format version {found} is not supported (this build reads {FORMAT_VERSION})")]
    Version { found: u32 },
    #[error("cache data is truncated or corrupt: {0}")]
    Corrupt(String),
    #[error("cache was made by model {found}, but the loaded model is {expected}")]
    WrongModel { expected: String, found: String },
    #[error("MLX error: {0}")]
    Mlx(#[from] mlx_rs::error::Exception),
}

#[derive(Serialize, Deserialize)]
struct Header {
    fingerprint: String,
    tokens: usize,
    layers: Vec<LayerHeader>,
}

#[derive(Serialize, Deserialize, PartialEq, Debug)]
#[serde(rename_all = "lowercase")]
enum Kind {
    Full,
    Rotating,
}

#[derive(Serialize, Deserialize)]
struct LayerHeader {
    kind: Kind,
    offset: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    window: Option<i32>,
    /// Absent for a layer that has seen no tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tensors: Option<TensorPair>,
}

#[derive(Serialize, Deserialize)]
struct TensorPair {
    dtype: String,
    key_shape: Vec<i32>,
    value_shape: Vec<i32>,
    key_bytes: usize,
    value_bytes: usize,
}

pub(super) fn dtype_name(d: Dtype) -> Result<&'static str, CodecError> {
    Ok(match d {
        Dtype::Float32 => "float32",
        Dtype::Float16 => "float16",
        Dtype::Bfloat16 => "bfloat16",
        other => {
            return Err(CodecError::Corrupt(format!(
                "unsupported cache dtype {other:?}"
            )))
        }
    })
}

/// Bytes per element of the dtypes [`dtype_from_name`] accepts.
pub(super) fn dtype_size(dtype: Dtype) -> usize {
    match dtype {
        Dtype::Float32 => 4,
        _ => 2,
    }
}

/// Checks that `shape` is a `[batch, heads, tokens, dim]` of positive sizes whose
/// elements fill exactly `bytes` (so no reader indexes or reshapes out of bounds).
fn check_tensor(shape: &[i32], bytes: usize, dtype: Dtype) -> Result<(), CodecError> {
    let elements = shape.iter().try_fold(1usize, |n, &d| {
        usize::try_from(d)
            .ok()
            .filter(|&d| d > 0)
            .and_then(|d| n.checked_mul(d))
    });
    match elements.and_then(|n| n.checked_mul(dtype_size(dtype))) {
        Some(n) if shape.len() == 4 && n == bytes => Ok(()),
        _ => Err(CodecError::Corrupt(format!(
            "tensor of shape {shape:?} does not fill {bytes} bytes"
        ))),
    }
}

pub(super) fn dtype_from_name(s: &str) -> Result<Dtype, CodecError> {
    Ok(match s {
        "float32" => Dtype::Float32,
        "float16" => Dtype::Float16,
        "bfloat16" => Dtype::Bfloat16,
        other => return Err(CodecError::Corrupt(format!("unknown dtype {other:?}"))),
    })
}

/// The raw bytes of an array, row-major.
pub(super) fn array_bytes(a: &Array) -> Result<Vec<u8>, CodecError> {
    let bytes = a.contiguous()?.view::<u8>()?;
    Ok(bytes
        .try_as_slice::<u8>()
        .map_err(|e| CodecError::Corrupt(e.to_string()))?
        .to_vec())
}

pub(super) fn array_from_bytes(
    bytes: &[u8],
    shape: &[i32],
    dtype: Dtype,
) -> Result<Array, CodecError> {
    let raw = Array::from_slice(bytes, &[bytes.len() as i32]);
    Ok(raw.view_dtype(dtype)?.reshape(shape)?)
}

/// The stored part of a layer: valid tokens of a full cache, used slots of a ring.
fn stored_part(layer: &LayerCache) -> Result<Option<(Array, Array)>, CodecError> {
    use mlx_rs::ops::indexing::TryIndexOp;
    let (k, v, n) = match layer {
        LayerCache::Full(c) => (&c.keys, &c.values, c.offset),
        LayerCache::Rotating(c) => (&c.keys, &c.values, c.len()),
    };
    match (k, v) {
        (Some(k), Some(v)) if n > 0 => Ok(Some((
            k.try_index((.., .., ..n, ..))?,
            v.try_index((.., .., ..n, ..))?,
        ))),
        _ => Ok(None),
    }
}

/// Appends a layer's keys and values to `payload`; returns their description.
fn write_pair(
    payload: &mut Vec<u8>,
    part: Option<(Array, Array)>,
) -> Result<Option<TensorPair>, CodecError> {
    let Some((k, v)) = part else {
        return Ok(None);
    };
    let (kb, vb) = (array_bytes(&k)?, array_bytes(&v)?);
    payload.extend_from_slice(&kb);
    payload.extend_from_slice(&vb);
    Ok(Some(TensorPair {
        dtype: dtype_name(k.dtype())?.to_owned(),
        key_shape: k.shape().to_vec(),
        value_shape: v.shape().to_vec(),
        key_bytes: kb.len(),
        value_bytes: vb.len(),
    }))
}

/// Serializes `cache`, binding it to the model `fingerprint`.
pub fn encode(cache: &ModelCache, fingerprint: &str) -> Result<Vec<u8>, CodecError> {
    let mut layers = Vec::with_capacity(cache.layers.len());
    let mut payload = Vec::new();
    for layer in &cache.layers {
        let (kind, offset, window) = match layer {
            LayerCache::Full(c) => (Kind::Full, c.offset, None),
            LayerCache::Rotating(c) => (Kind::Rotating, c.offset, Some(c.window)),
        };
        let tensors = write_pair(&mut payload, stored_part(layer)?)?;
        layers.push(LayerHeader {
            kind,
            offset,
            window,
            tensors,
        });
    }
    let header = Header {
        fingerprint: fingerprint.to_owned(),
        tokens: cache.len(),
        layers,
    };
    Ok(write_frame(MAGIC, FORMAT_VERSION, &header, &payload))
}

fn read_u32(bytes: &[u8], at: usize) -> Result<u32, CodecError> {
    bytes
        .get(at..at + 4)
        .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
        .ok_or_else(|| CodecError::Corrupt("truncated header".into()))
}

/// Reads consecutive byte ranges of a payload.
struct PayloadReader<'a> {
    payload: &'a [u8],
    at: usize,
}

impl<'a> PayloadReader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        let slice = self
            .at
            .checked_add(n)
            .and_then(|end| self.payload.get(self.at..end))
            .ok_or_else(|| CodecError::Corrupt("payload too short".into()))?;
        self.at += n;
        Ok(slice)
    }

    /// The keys and values a [`TensorPair`] describes, if any.
    fn pair(&mut self, pair: Option<&TensorPair>) -> Result<Option<(Array, Array)>, CodecError> {
        let Some(t) = pair else {
            return Ok(None);
        };
        let dtype = dtype_from_name(&t.dtype)?;
        check_tensor(&t.key_shape, t.key_bytes, dtype)?;
        check_tensor(&t.value_shape, t.value_bytes, dtype)?;
        if t.key_shape[2] != t.value_shape[2] {
            return Err(CodecError::Corrupt(
                "keys and values hold different token counts".into(),
            ));
        }
        let k = array_from_bytes(self.take(t.key_bytes)?, &t.key_shape, dtype)?;
        let v = array_from_bytes(self.take(t.value_bytes)?, &t.value_shape, dtype)?;
        Ok(Some((k, v)))
    }

    fn is_done(&self) -> bool {
        self.at == self.payload.len()
    }
}

/// Frames a header and payload: magic, version, header length, JSON header, CRC-32 of
/// the payload, payload.
pub(super) fn write_frame(
    magic: &[u8; 8],
    version: u32,
    header: &impl Serialize,
    payload: &[u8],
) -> Vec<u8> {
    let header = serde_json::to_vec(header).expect("header serializes");
    let mut out = Vec::with_capacity(20 + header.len() + payload.len());
    out.extend_from_slice(magic);
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&(header.len() as u32).to_le_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// Checks a frame's magic, version and payload checksum; returns its header and payload.
pub(super) fn read_frame<'a, H: serde::de::DeserializeOwned>(
    bytes: &'a [u8],
    magic: &[u8; 8],
    version: u32,
) -> Result<(H, &'a [u8]), CodecError> {
    if bytes.len() < 16 || &bytes[..8] != magic {
        return Err(CodecError::BadMagic);
    }
    let found = read_u32(bytes, 8)?;
    if found != version {
        return Err(CodecError::Version { found });
    }
    let header_end = 16 + read_u32(bytes, 12)? as usize;
    let header = serde_json::from_slice(
        bytes
            .get(16..header_end)
            .ok_or_else(|| CodecError::Corrupt("truncated header".into()))?,
    )
    .map_err(|e| CodecError::Corrupt(format!("header: {e}")))?;
    let crc = read_u32(bytes, header_end)?;
    let payload = &bytes[header_end + 4..];
    if crc32fast::hash(payload) != crc {
        return Err(CodecError::Corrupt("checksum mismatch".into()));
    }
    Ok((header, payload))
}

/// Refuses data made by another model than `expected`.
pub(super) fn check_fingerprint(found: String, expected: &str) -> Result<(), CodecError> {
    if found != expected {
        return Err(CodecError::WrongModel {
            expected: expected.to_owned(),
            found,
        });
    }
    Ok(())
}

/// Checks that a decoded layer is at the cache's `tokens` and stores exactly the
/// tokens its kind keeps there (`stored`), in the cache's one `dtype`.
fn check_layer(
    l: &LayerHeader,
    stored: i32,
    tokens: usize,
    dtype: &mut Option<String>,
) -> Result<(), CodecError> {
    let keeps = match (&l.kind, l.window) {
        (Kind::Full, None) => l.offset,
        (Kind::Rotating, Some(w)) if w > 0 => l.offset.min(w),
        _ => return Err(CodecError::Corrupt("layer has a wrong window".into())),
    };
    if usize::try_from(l.offset).ok() != Some(tokens) || stored != keeps {
        return Err(CodecError::Corrupt(format!(
            "layer stores {stored} tokens at offset {} of a cache of {tokens}",
            l.offset
        )));
    }
    if let Some(t) = &l.tensors {
        if dtype.get_or_insert_with(|| t.dtype.clone()) != &t.dtype {
            return Err(CodecError::Corrupt("layers differ in dtype".into()));
        }
    }
    Ok(())
}

/// Restores a cache, refusing one made by another model or damaged in any way.
pub fn decode(bytes: &[u8], expected_fingerprint: &str) -> Result<ModelCache, CodecError> {
    let (header, payload): (Header, _) = read_frame(bytes, MAGIC, FORMAT_VERSION)?;
    check_fingerprint(header.fingerprint, expected_fingerprint)?;
    let mut reader = PayloadReader { payload, at: 0 };
    let mut layers = Vec::with_capacity(header.layers.len());
    let mut dtype = None;
    for l in &header.layers {
        let (keys, values) = reader.pair(l.tensors.as_ref())?.unzip();
        let stored = keys.as_ref().map_or(0, |k| k.dim(2));
        check_layer(l, stored, header.tokens, &mut dtype)?;
        layers.push(match l.kind {
            Kind::Full => LayerCache::Full(FullCache {
                keys,
                values,
                offset: l.offset,
            }),
            Kind::Rotating => LayerCache::Rotating(RotatingCache {
                keys,
                values,
                offset: l.offset,
                window: l
                    .window
                    .ok_or_else(|| CodecError::Corrupt("rotating layer without window".into()))?,
            }),
        });
    }
    if !reader.is_done() {
        return Err(CodecError::Corrupt(
            "trailing bytes after the last layer".into(),
        ));
    }
    let cache = ModelCache::new(layers);
    cache.eval()?;
    Ok(cache)
}
