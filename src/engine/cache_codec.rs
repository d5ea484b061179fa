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

use super::cache::{FullCache, LayerCache, ModelCache, RotatingCache};

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
            .payload
            .get(self.at..self.at + n)
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

/// Restores a cache, refusing one made by another model or damaged in any way.
pub fn decode(bytes: &[u8], expected_fingerprint: &str) -> Result<ModelCache, CodecError> {
    let (header, payload): (Header, _) = read_frame(bytes, MAGIC, FORMAT_VERSION)?;
    check_fingerprint(header.fingerprint, expected_fingerprint)?;
    let mut reader = PayloadReader { payload, at: 0 };
    let mut layers = Vec::with_capacity(header.layers.len());
    for l in &header.layers {
        let (keys, values) = reader.pair(l.tensors.as_ref())?.unzip();
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

// ---------------------------------------------------------------------------------
// Deltas: what a cache gained since it held `from` tokens, so that persisting an
// append costs O(new tokens) instead of O(cache).
//
// Layout: as above with magic "SEMKVDL\0" and a header {fingerprint, from, to, layers}.
// A full layer stores the keys/values of positions `from..to`; a rotating layer
// stores those of the positions `max(from, to - window)..to` (the slots the new
// tokens wrote, in temporal order), so a delta is bounded by the new tokens too.
// ---------------------------------------------------------------------------------

const DELTA_MAGIC: &[u8; 8] = b"SEMKVDL\0";
/// Bumped on any incompatible change of the delta layout.
pub const DELTA_FORMAT_VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct DeltaHeader {
    fingerprint: String,
    from: usize,
    to: usize,
    layers: Vec<DeltaLayer>,
}

#[derive(Serialize, Deserialize)]
struct DeltaLayer {
    kind: Kind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    window: Option<i32>,
    /// Absolute position of the first stored token.
    start: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tensors: Option<TensorPair>,
}

/// Slots `start..start + n` of a ring of `window` slots, as one temporal run.
fn ring_run(buffer: &Array, start: i32, n: i32, window: i32) -> Result<Array, CodecError> {
    use mlx_rs::ops::indexing::TryIndexOp;
    let first = start % window;
    if first + n <= window {
        return Ok(buffer.try_index((.., .., first..first + n, ..))?);
    }
    let head = buffer.try_index((.., .., first..window, ..))?;
    let tail = buffer.try_index((.., .., ..n - (window - first), ..))?;
    Ok(mlx_rs::ops::concatenate(&[head, tail], 2)?)
}

/// Serializes what `cache` gained after its first `from` tokens, bound to `fingerprint`.
///
/// Applying it with [`apply_delta`] to the same cache as it was at `from` tokens gives
/// back exactly `cache` (the stored tokens' keys and values, bit for bit).
pub fn encode_delta(
    cache: &ModelCache,
    from: usize,
    fingerprint: &str,
) -> Result<Vec<u8>, CodecError> {
    use mlx_rs::ops::indexing::TryIndexOp;
    let to = cache.len();
    if from > to {
        return Err(CodecError::Corrupt(format!(
            "delta from {from} tokens of a cache holding {to}"
        )));
    }
    let (from_i, to_i) = (from as i32, to as i32);
    let mut layers = Vec::with_capacity(cache.layers.len());
    let mut payload = Vec::new();
    for layer in &cache.layers {
        let (kind, window, start, part) = match layer {
            LayerCache::Full(c) => {
                let part = match (&c.keys, &c.values) {
                    (Some(k), Some(v)) if to_i > from_i => Some((
                        k.try_index((.., .., from_i..to_i, ..))?,
                        v.try_index((.., .., from_i..to_i, ..))?,
                    )),
                    _ => None,
                };
                (Kind::Full, None, from_i, part)
            }
            LayerCache::Rotating(c) => {
                let start = from_i.max(to_i - c.window);
                let part = match (&c.keys, &c.values) {
                    (Some(k), Some(v)) if to_i > start => Some((
                        ring_run(k, start, to_i - start, c.window)?,
                        ring_run(v, start, to_i - start, c.window)?,
                    )),
                    _ => None,
                };
                (Kind::Rotating, Some(c.window), start, part)
            }
        };
        let tensors = write_pair(&mut payload, part)?;
        layers.push(DeltaLayer {
            kind,
            window,
            start,
            tensors,
        });
    }
    let header = DeltaHeader {
        fingerprint: fingerprint.to_owned(),
        from,
        to,
        layers,
    };
    let out = write_frame(DELTA_MAGIC, DELTA_FORMAT_VERSION, &header, &payload);
    Ok(out)
}

/// Writes `update` (`[1, h, n, d]`, a temporal run starting at absolute position
/// `start`) into a ring of `window` slots that must hold `needed` slots.
fn write_ring(
    buffer: Option<Array>,
    update: &Array,
    start: i32,
    window: i32,
    needed: i32,
) -> Result<Array, CodecError> {
    use mlx_rs::ops::indexing::{TryIndexMutOp, TryIndexOp};
    let have = buffer.as_ref().map_or(0, |b| b.dim(2));
    let mut buffer = if have >= needed {
        buffer.expect("has slots")
    } else {
        let shape = [update.dim(0), update.dim(1), needed - have, update.dim(3)];
        let zeros = mlx_rs::ops::zeros_dtype(&shape, update.dtype())?;
        match buffer {
            Some(b) => mlx_rs::ops::concatenate(&[b, zeros], 2)?,
            None => zeros,
        }
    };
    let n = update.dim(2);
    let first = start % window;
    let head = n.min(window - first);
    buffer.try_index_mut(
        (.., .., first..first + head, ..),
        &update.try_index((.., .., ..head, ..))?,
    )?;
    if head < n {
        buffer.try_index_mut(
            (.., .., ..n - head, ..),
            &update.try_index((.., .., head.., ..))?,
        )?;
    }
    Ok(buffer)
}

/// Applies a delta made by [`encode_delta`] to `cache`, which must hold exactly the
/// delta's `from` tokens. On error the cache is left unchanged.
pub fn apply_delta(
    cache: &mut ModelCache,
    bytes: &[u8],
    expected_fingerprint: &str,
) -> Result<(), CodecError> {
    use mlx_rs::ops::indexing::TryIndexOp;
    let (header, payload): (DeltaHeader, _) = read_frame(bytes, DELTA_MAGIC, DELTA_FORMAT_VERSION)?;
    check_fingerprint(header.fingerprint, expected_fingerprint)?;
    if header.from != cache.len() || header.to < header.from {
        return Err(CodecError::Corrupt(format!(
            "delta covers tokens {}..{} but the cache holds {}",
            header.from,
            header.to,
            cache.len()
        )));
    }
    if header.layers.len() != cache.layers.len() {
        return Err(CodecError::Corrupt(
            "delta has a different layer count".into(),
        ));
    }
    let (from, to) = (header.from as i32, header.to as i32);
    let mut reader = PayloadReader { payload, at: 0 };
    // Build the new layers aside, so a failure leaves `cache` as it was.
    let mut layers = Vec::with_capacity(cache.layers.len());
    for (layer, d) in cache.layers.iter().zip(&header.layers) {
        let part = reader.pair(d.tensors.as_ref())?;
        let stored = part.as_ref().map_or(0, |(k, _)| k.dim(2));
        let new_layer = match (layer, d.kind == Kind::Full) {
            (LayerCache::Full(c), true) => {
                if d.start != from || stored != to - from {
                    return Err(CodecError::Corrupt(
                        "full layer delta has a wrong span".into(),
                    ));
                }
                let (keys, values) = match (part, &c.keys, &c.values) {
                    (None, k, v) => (k.clone(), v.clone()),
                    (Some((nk, nv)), Some(k), Some(v)) if from > 0 => (
                        Some(mlx_rs::ops::concatenate(
                            &[k.try_index((.., .., ..from, ..))?, nk],
                            2,
                        )?),
                        Some(mlx_rs::ops::concatenate(
                            &[v.try_index((.., .., ..from, ..))?, nv],
                            2,
                        )?),
                    ),
                    (Some((nk, nv)), _, _) if from == 0 => (Some(nk), Some(nv)),
                    _ => return Err(CodecError::Corrupt("full layer has no buffer".into())),
                };
                LayerCache::Full(FullCache {
                    keys,
                    values,
                    offset: to,
                })
            }
            (LayerCache::Rotating(c), false) => {
                let w = c.window;
                if d.window != Some(w) || d.start != from.max(to - w) || stored != to - d.start {
                    return Err(CodecError::Corrupt(
                        "rotating layer delta has a wrong span or window".into(),
                    ));
                }
                let (keys, values) = match part {
                    None => (c.keys.clone(), c.values.clone()),
                    Some((nk, nv)) => {
                        let needed = to.min(w);
                        (
                            Some(write_ring(c.keys.clone(), &nk, d.start, w, needed)?),
                            Some(write_ring(c.values.clone(), &nv, d.start, w, needed)?),
                        )
                    }
                };
                LayerCache::Rotating(RotatingCache {
                    keys,
                    values,
                    offset: to,
                    window: w,
                })
            }
            _ => return Err(CodecError::Corrupt("delta layer kinds differ".into())),
        };
        layers.push(new_layer);
    }
    if !reader.is_done() {
        return Err(CodecError::Corrupt(
            "trailing bytes after the last layer".into(),
        ));
    }
    let updated = ModelCache::new(layers);
    updated.eval()?;
    *cache = updated;
    Ok(())
}
