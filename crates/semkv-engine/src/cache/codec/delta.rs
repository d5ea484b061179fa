//! Cache deltas: what a cache gained since it held `from` tokens, so that persisting
//! an append costs O(new tokens) instead of O(cache).
//!
//! Layout: as a full encoding with magic `"SEMKVDL\0"` and a header {fingerprint, from,
//! to, layers}. A full layer stores the keys/values of positions `from..to`; a rotating
//! layer stores those of the positions `max(from, to - window)..to` (the slots the new
//! tokens wrote, in temporal order), so a delta is bounded by the new tokens too.

use mlx_rs::Array;
use serde::{Deserialize, Serialize};

use super::*;

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
    let (Ok(from), Ok(to)) = (i32::try_from(header.from), i32::try_from(header.to)) else {
        return Err(CodecError::Corrupt("delta spans too many tokens".into()));
    };
    if header.layers.len() != cache.layers.len() {
        return Err(CodecError::Corrupt(
            "delta has a different layer count".into(),
        ));
    }
    let mut reader = PayloadReader { payload, at: 0 };
    // Build the new layers aside, so a failure leaves `cache` as it was.
    let mut layers = Vec::with_capacity(cache.layers.len());
    for (layer, d) in cache.layers.iter().zip(&header.layers) {
        let part = reader.pair(d.tensors.as_ref())?;
        let stored = part.as_ref().map_or(0, |(k, _)| k.dim(2));
        if let (Some((k, _)), Some(dtype)) = (&part, cache.dtype()) {
            if k.dtype() != dtype {
                return Err(CodecError::Corrupt("delta has another dtype".into()));
            }
        }
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
