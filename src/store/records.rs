//! What the store keeps per cluster: [`ClusterMeta`], token [`Segment`]s, and the
//! cache writes ([`KvWrite`]) and reads ([`StoredCache`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::blobs::BlobRef;

/// A cluster's metadata and counters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterMeta {
    pub id: String,
    pub labels: BTreeMap<String, String>,
    pub created_unix_ms: i64,
    /// Tokens in the cluster's cache (= sum of all segments).
    pub tokens: u64,
    /// Turns recorded (next turn sequence number).
    pub turns: u64,
    /// Segments recorded (next segment sequence number).
    pub segments: u64,
    /// Next cache delta sequence number.
    pub next_delta: u64,
    /// Deltas written since the base snapshot, and their bytes.
    pub deltas_since_base: u64,
    pub delta_bytes_since_base: u64,
    /// Bytes of the base snapshot (0: none).
    pub base_bytes: u64,
    /// A system turn waiting to be folded into the next user turn (chat format).
    pub pending_system: Option<String>,
    /// Times the cache was rebuilt from the segments.
    pub rebuilds: u64,
}

impl ClusterMeta {
    /// A new, empty cluster.
    pub fn new(id: &str, labels: BTreeMap<String, String>) -> Self {
        let created_unix_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        Self {
            id: id.to_owned(),
            labels,
            created_unix_ms,
            tokens: 0,
            turns: 0,
            segments: 0,
            next_delta: 0,
            deltas_since_base: 0,
            delta_bytes_since_base: 0,
            base_bytes: 0,
            pending_system: None,
            rebuilds: 0,
        }
    }

    /// Whether the next cache write should be a full snapshot: the deltas since the
    /// base hold more than the base itself (and a few MiB), or there are very many.
    pub fn wants_compaction(&self) -> bool {
        self.deltas_since_base >= 256
            || (self.delta_bytes_since_base > self.base_bytes
                && self.delta_bytes_since_base > 4 << 20)
    }
}

/// Token ids fed to the model in one go, in chunks of `chunk` tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub tokens: Vec<u32>,
    pub chunk: u32,
}

impl Segment {
    pub(super) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + 4 * self.tokens.len());
        out.extend_from_slice(&self.chunk.to_le_bytes());
        out.extend_from_slice(&(self.tokens.len() as u32).to_le_bytes());
        for t in &self.tokens {
            out.extend_from_slice(&t.to_le_bytes());
        }
        out
    }

    pub(super) fn decode(bytes: &[u8]) -> Option<Self> {
        let word = |i: usize| {
            bytes
                .get(4 * i..4 * i + 4)
                .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
        };
        let chunk = word(0)?;
        let n = word(1)? as usize;
        if bytes.len() != 8 + 4 * n || chunk == 0 {
            return None;
        }
        let tokens = (0..n).map(|i| word(2 + i)).collect::<Option<Vec<_>>>()?;
        Some(Self { tokens, chunk })
    }
}

/// How an operation changes the stored cache. `next_logits` (the encoded logits after
/// the cache's new last token) replaces the stored ones; `None` removes them.
#[derive(Debug, Clone)]
pub enum KvWrite {
    /// No change (no tokens were added).
    None,
    /// One more delta after the existing ones.
    Delta {
        kv: Vec<u8>,
        next_logits: Option<Vec<u8>>,
    },
    /// A fresh base snapshot replacing the base and all deltas.
    Snapshot {
        kv: Vec<u8>,
        next_logits: Option<Vec<u8>>,
    },
}

impl KvWrite {
    /// Bytes of the blobs it writes.
    pub fn byte_len(&self) -> usize {
        match self {
            KvWrite::None => 0,
            KvWrite::Delta { kv, next_logits } | KvWrite::Snapshot { kv, next_logits } => {
                kv.len() + next_logits.as_ref().map_or(0, Vec::len)
            }
        }
    }
}

/// A cluster's stored cache blobs, checked against their envelopes.
#[derive(Debug, Default)]
pub struct StoredCache {
    pub base: Option<Vec<u8>>,
    pub deltas: Vec<Vec<u8>>,
    /// The logits after the cache's last token, if stored.
    pub next_logits: Option<Vec<u8>>,
    /// Set when a blob failed its check; the blobs must then not be used.
    pub damaged: Option<String>,
}

/// Which blob files hold a cluster's cache: a base snapshot, the deltas after it, and
/// the logits after its last token.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheIndex {
    pub base: Option<BlobRef>,
    pub deltas: Vec<BlobRef>,
    pub logits: Option<BlobRef>,
}

impl CacheIndex {
    /// Every blob the index names.
    pub fn blobs(&self) -> impl Iterator<Item = &BlobRef> {
        self.base.iter().chain(&self.deltas).chain(&self.logits)
    }
}

#[cfg(test)]
mod props {
    //! Property tests: any bytes decode to an error or to a segment that encodes back
    //! to them; every segment with a non-zero chunk round-trips.
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn segments_round_trip(tokens in prop::collection::vec(any::<u32>(), 0..64), chunk in 1u32..) {
            let s = Segment { tokens, chunk };
            prop_assert_eq!(Segment::decode(&s.encode()), Some(s));
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            if let Some(s) = Segment::decode(&bytes) {
                prop_assert!(s.chunk > 0);
                prop_assert_eq!(s.encode(), bytes);
            }
        }

        /// A cut or extended segment, or one whose count is changed, is refused.
        #[test]
        fn damage_is_refused(
            tokens in prop::collection::vec(any::<u32>(), 0..32),
            chunk in 1u32..,
            cut in any::<prop::sample::Index>(),
            tail in prop::collection::vec(any::<u8>(), 1..8),
            count in any::<u32>(),
        ) {
            let bytes = Segment { tokens: tokens.clone(), chunk }.encode();
            prop_assert!(Segment::decode(&bytes[..cut.index(bytes.len())]).is_none());
            prop_assert!(Segment::decode(&[&bytes[..], &tail].concat()).is_none());
            let mut recounted = bytes.clone();
            recounted[4..8].copy_from_slice(&count.to_le_bytes());
            prop_assert_eq!(Segment::decode(&recounted).is_some(), count as usize == tokens.len());
        }
    }
}
