//! Serialization of a cache's next-token logits ([`ModelCache::next_logits`]), kept
//! beside the KV blobs so a restored cluster can produce its next token without a
//! forward pass.
//!
//! Layout: the frame of [`crate::cache::codec`] (magic `"SEMKVLG\0"`, version, JSON
//! header, CRC-32, payload) with a header naming the model fingerprint, the number of
//! cached tokens the logits follow, their dtype and shape; the payload is the raw
//! logits. Logits are only ever attached to a cache of exactly that many tokens made
//! by that model.

use serde::{Deserialize, Serialize};

use crate::cache::codec::{
    array_bytes, array_from_bytes, check_fingerprint, dtype_from_name, dtype_name, dtype_size,
    read_frame, write_frame, CodecError,
};
use crate::cache::ModelCache;

const MAGIC: &[u8; 8] = b"SEMKVLG\0";
/// Bumped on any incompatible change of the layout.
pub const FORMAT_VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct Header {
    fingerprint: String,
    /// Cached tokens the logits follow.
    tokens: usize,
    dtype: String,
    shape: Vec<i32>,
}

/// Serializes `cache`'s next-token logits bound to `fingerprint` and the cache's
/// length; `None` when the cache has none.
pub fn encode(cache: &ModelCache, fingerprint: &str) -> Result<Option<Vec<u8>>, CodecError> {
    let Some(logits) = cache.next_logits() else {
        return Ok(None);
    };
    let header = Header {
        fingerprint: fingerprint.to_owned(),
        tokens: cache.len(),
        dtype: dtype_name(logits.dtype())?.to_owned(),
        shape: logits.shape().to_vec(),
    };
    let payload = array_bytes(logits)?;
    Ok(Some(write_frame(MAGIC, FORMAT_VERSION, &header, &payload)))
}

/// Attaches logits made by [`encode`] to `cache`, refusing them unless they were made
/// by the model `expected_fingerprint` for a cache of exactly `cache.len()` tokens.
pub fn attach(
    cache: &mut ModelCache,
    bytes: &[u8],
    expected_fingerprint: &str,
) -> Result<(), CodecError> {
    let (header, payload): (Header, _) = read_frame(bytes, MAGIC, FORMAT_VERSION)?;
    check_fingerprint(header.fingerprint, expected_fingerprint)?;
    if header.tokens != cache.len() {
        return Err(CodecError::Corrupt(format!(
            "next-token logits follow {} tokens but the cache holds {}",
            header.tokens,
            cache.len()
        )));
    }
    let dtype = dtype_from_name(&header.dtype)?;
    let elements = match header.shape[..] {
        [1, vocab] => i64::from(vocab),
        _ => 0,
    };
    if elements <= 0 {
        return Err(CodecError::Corrupt(format!(
            "next-token logits have shape {:?}, expected [1, vocab]",
            header.shape
        )));
    }
    let expected_bytes = elements as usize * dtype_size(dtype);
    if payload.len() != expected_bytes {
        return Err(CodecError::Corrupt(format!(
            "next-token logits hold {} bytes, their header says {expected_bytes}",
            payload.len()
        )));
    }
    let logits = array_from_bytes(payload, &header.shape, dtype)?;
    logits.eval()?;
    cache.set_next_logits(Some(logits));
    Ok(())
}
