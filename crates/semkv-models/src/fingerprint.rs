//! Model fingerprints: a stable identity for "these weights, with this
//! configuration and this tokenizer".
//!
//! KV caches are only valid for the exact model that produced them, so
//! anything persisted alongside a cache is keyed by the model's fingerprint.
//! The fingerprint is a BLAKE3 hash (hex) over, in this order:
//!
//! 1. a version tag (`semkv-model-fingerprint-v1`), so that a change of
//!    scheme never collides with old fingerprints;
//! 2. the configuration bytes (e.g. `config.json`, or the serialized config
//!    derived from a GGUF file);
//! 3. the tokenizer bytes (e.g. `tokenizer.json`, or the serialized tokenizer
//!    built from a GGUF file);
//! 4. each weight file's *content*, in the order given.
//!
//! Every item is framed by its length, so moving bytes from one item to the
//! next changes the hash. File names, paths and timestamps are deliberately
//! left out: the same model copied elsewhere has the same fingerprint.

use std::fmt;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use thiserror::Error;

/// Domain-separation tag hashed first; bump it when the scheme changes.
const VERSION_TAG: &[u8] = b"semkv-model-fingerprint-v1";

/// Errors from computing a fingerprint.
#[derive(Debug, Error)]
#[error("cannot read weight file {path} for the model fingerprint: {source}")]
pub struct FingerprintError {
    /// The weight file.
    pub path: PathBuf,
    /// The underlying error.
    pub source: std::io::Error,
}

/// A model fingerprint: 64 lowercase hex digits of a BLAKE3 hash.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint(String);

impl Fingerprint {
    /// The full hex string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first 16 hex digits, for logs and directory names.
    pub fn short(&self) -> &str {
        &self.0[..16]
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Fingerprint {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Fingerprints a model from its configuration bytes, its tokenizer bytes and
/// its weight files (hashed by content, streaming, in the order given).
pub fn fingerprint(
    config: &[u8],
    tokenizer: &[u8],
    weight_files: &[impl AsRef<Path>],
) -> Result<Fingerprint, FingerprintError> {
    let mut hasher = blake3::Hasher::new();
    hash_item(&mut hasher, VERSION_TAG);
    hash_item(&mut hasher, config);
    hash_item(&mut hasher, tokenizer);
    hasher.update(&(weight_files.len() as u64).to_le_bytes());
    for path in weight_files {
        let path = path.as_ref();
        let error = |source| FingerprintError {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(error)?;
        let len = file.metadata().map_err(error)?.len();
        hasher.update(&len.to_le_bytes());
        let mut limited = file.take(len);
        hasher.update_reader(&mut limited).map_err(error)?;
        if limited.limit() != 0 {
            return Err(error(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the file shrank while it was being hashed",
            )));
        }
    }
    Ok(Fingerprint(hasher.finalize().to_hex().to_string()))
}

/// Hashes one length-framed item.
fn hash_item(hasher: &mut blake3::Hasher, bytes: &[u8]) {
    hasher.update(&(bytes.len() as u64).to_le_bytes());
    hasher.update(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_stable_and_sensitive_to_every_input() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.bin");
        let b = dir.path().join("b.bin");
        std::fs::write(&a, b"weights").unwrap();
        std::fs::write(&b, b"more weights").unwrap();

        let base = fingerprint(b"{}", b"tok", &[&a, &b]).unwrap();
        assert_eq!(base.as_str().len(), 64);
        assert_eq!(base.short(), &base.as_str()[..16]);
        assert_eq!(base, fingerprint(b"{}", b"tok", &[&a, &b]).unwrap());

        let variants = [
            fingerprint(b"{ }", b"tok", &[&a, &b]).unwrap(),
            fingerprint(b"{}", b"tok2", &[&a, &b]).unwrap(),
            fingerprint(b"{}", b"tok", &[&b, &a]).unwrap(),
            fingerprint(b"{}", b"tok", &[&a]).unwrap(),
            // Bytes moved between items do not collide.
            fingerprint(b"{}t", b"ok", &[&a, &b]).unwrap(),
        ];
        for variant in variants {
            assert_ne!(base, variant);
        }
    }

    #[test]
    fn ignores_file_location() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.bin");
        let copy = dir.path().join("elsewhere.gguf");
        std::fs::write(&a, b"weights").unwrap();
        std::fs::write(&copy, b"weights").unwrap();
        assert_eq!(
            fingerprint(b"", b"", &[&a]).unwrap(),
            fingerprint(b"", b"", &[&copy]).unwrap()
        );
    }

    #[test]
    fn reports_missing_files() {
        let missing = Path::new("/nonexistent/semkv/weights.bin");
        let err = fingerprint(b"", b"", &[missing]).unwrap_err();
        assert_eq!(err.path, missing);
    }
}
