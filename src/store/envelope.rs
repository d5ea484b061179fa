//! The envelope every stored value is wrapped in:
//! `[version u8][kind u8][crc32 u32 LE][payload]`, whose CRC covers kind and payload,
//! so a damaged or misplaced value is detected before use.

use super::{Result, StoreError};

const ENVELOPE_VERSION: u8 = 1;
pub(super) const HEADER_LEN: usize = 6;

/// What a stored value is (part of its checksum).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(super) enum Kind {
    Meta = 1,
    Segment = 2,
    Turn = 3,
    // 4-6: cache delta, base and logits values of builds before blob files.
    /// A cluster's [`super::CacheIndex`].
    Index = 7,
    /// A store-wide fact (model fingerprint, commit count).
    Info = 8,
}

/// `payload` in an envelope of `kind`.
pub(super) fn wrap(kind: Kind, payload: &[u8]) -> Vec<u8> {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&[kind as u8]);
    hasher.update(payload);
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.push(ENVELOPE_VERSION);
    out.push(kind as u8);
    out.extend_from_slice(&hasher.finalize().to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// The payload of the value stored at `key`, checked to be an intact `kind`.
pub(super) fn unwrap<'a>(kind: Kind, key: &[u8], value: &'a [u8]) -> Result<&'a [u8]> {
    let corrupt = |reason: &str| StoreError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        reason: reason.to_owned(),
    };
    if value.len() < HEADER_LEN {
        return Err(corrupt("truncated envelope"));
    }
    if value[0] != ENVELOPE_VERSION {
        return Err(corrupt(&format!("unknown envelope version {}", value[0])));
    }
    if value[1] != kind as u8 {
        return Err(corrupt(&format!(
            "holds a record of kind {} where kind {} belongs",
            value[1], kind as u8
        )));
    }
    let stored = u32::from_le_bytes(value[2..6].try_into().expect("4 bytes"));
    let payload = &value[HEADER_LEN..];
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&[kind as u8]);
    hasher.update(payload);
    if hasher.finalize() != stored {
        return Err(corrupt("checksum mismatch"));
    }
    Ok(payload)
}

#[cfg(test)]
mod props {
    //! Property tests: any bytes unwrap to an error or to an intact payload.
    use proptest::prelude::*;

    use super::*;

    fn kind() -> impl Strategy<Value = Kind> {
        prop::sample::select(vec![
            Kind::Meta,
            Kind::Segment,
            Kind::Turn,
            Kind::Index,
            Kind::Info,
        ])
    }

    proptest! {
        #[test]
        fn wrap_round_trips(kind in kind(), payload in prop::collection::vec(any::<u8>(), 0..64)) {
            let value = wrap(kind, &payload);
            prop_assert_eq!(unwrap(kind, b"k", &value).unwrap(), &payload[..]);
        }

        #[test]
        fn arbitrary_bytes_never_panic(kind in kind(), value in prop::collection::vec(any::<u8>(), 0..32)) {
            if let Ok(payload) = unwrap(kind, b"k", &value) {
                prop_assert_eq!(wrap(kind, payload), value);
            }
        }

        /// A changed value (a flipped bit, a cut, another kind's envelope) is refused.
        #[test]
        fn damage_is_refused(
            kind in kind(),
            other in kind(),
            payload in prop::collection::vec(any::<u8>(), 0..64),
            at in any::<prop::sample::Index>(),
            bit in 0u8..8,
            cut in any::<prop::sample::Index>(),
        ) {
            let value = wrap(kind, &payload);
            let mut flipped = value.clone();
            flipped[at.index(value.len())] ^= 1 << bit;
            prop_assert!(unwrap(kind, b"k", &flipped).is_err());
            prop_assert!(unwrap(kind, b"k", &value[..cut.index(value.len())]).is_err());
            if other != kind {
                prop_assert!(unwrap(other, b"k", &value).is_err());
            }
        }
    }
}
