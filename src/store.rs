//! Durable cluster state in sled: metadata, turns, token segments and the KV cache.
//!
//! Layout (one sled tree; ids are validated, so they never contain `/`):
//! ```text
//! m/{id}                    ClusterMeta (JSON)
//! d/{id}/s/{seq:016x}       token segment: the ids of one prefill, with its chunk size
//! d/{id}/t/{seq:016x}       turn (JSON): the record of what was said
//! d/{id}/b                  cache base snapshot (engine::cache_codec full encoding)
//! d/{id}/k/{seq:016x}       cache delta of one operation (cache_codec delta encoding)
//! d/{id}/l                  logits after the cache's last token (engine::logits_codec),
//!                           replaced by every cache write
//! ```
//! Every value is wrapped in an envelope `[version u8][kind u8][crc32 u32 LE][payload]`
//! whose CRC covers kind and payload, so a damaged or misplaced blob is detected
//! before use. Cache blobs additionally carry the model fingerprint and their own CRC.
//!
//! An operation's records (new segments, turns, one cache delta and the updated
//! metadata) go in one atomic batch, flushed before the operation is acknowledged.
//! Its cost is O(new tokens): a delta holds only the new tokens' keys/values (see
//! `cache_codec::encode_delta`). The deltas are folded into a fresh base snapshot
//! (compaction) when they outgrow it, on `PersistCluster`, and after a rebuild.
//!
//! The segments are the source of truth: replaying them in order with their chunk
//! sizes re-creates the cache bit for bit, which is how a cluster whose cache blobs
//! fail a check is rebuilt.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::engine::chat::Turn;

const ENVELOPE_VERSION: u8 = 1;
const HEADER_LEN: usize = 6;

/// What a stored value is (part of its checksum).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Kind {
    Meta = 1,
    Segment = 2,
    Turn = 3,
    Delta = 4,
    Base = 5,
    Logits = 6,
}

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage error: {0}")]
    Sled(#[from] sled::Error),
    #[error("storage I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("cluster {0:?} already exists")]
    Exists(String),
    #[error("cluster {0:?} not found")]
    NotFound(String),
    #[error("stored record {key} is damaged: {reason}")]
    Corrupt { key: String, reason: String },
}

type Result<T> = std::result::Result<T, StoreError>;

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
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + 4 * self.tokens.len());
        out.extend_from_slice(&self.chunk.to_le_bytes());
        out.extend_from_slice(&(self.tokens.len() as u32).to_le_bytes());
        for t in &self.tokens {
            out.extend_from_slice(&t.to_le_bytes());
        }
        out
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
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
#[derive(Debug)]
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

/// The sled database of a daemon. Cheap to clone (handles are shared).
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
}

fn wrap(kind: Kind, payload: &[u8]) -> Vec<u8> {
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

fn unwrap<'a>(kind: Kind, key: &[u8], value: &'a [u8]) -> Result<&'a [u8]> {
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

fn meta_key(id: &str) -> Vec<u8> {
    format!("m/{id}").into_bytes()
}

fn data_prefix(id: &str) -> Vec<u8> {
    format!("d/{id}/").into_bytes()
}

fn seq_key(id: &str, tag: char, seq: u64) -> Vec<u8> {
    format!("d/{id}/{tag}/{seq:016x}").into_bytes()
}

fn base_key(id: &str) -> Vec<u8> {
    format!("d/{id}/b").into_bytes()
}

fn logits_key(id: &str) -> Vec<u8> {
    format!("d/{id}/l").into_bytes()
}

/// Replaces (or removes) a cluster's stored next-token logits in `batch`.
fn put_logits(batch: &mut sled::Batch, id: &str, next_logits: &Option<Vec<u8>>) {
    match next_logits {
        Some(bytes) => batch.insert(logits_key(id), wrap(Kind::Logits, bytes)),
        None => batch.remove(logits_key(id)),
    }
}

fn encode_meta(meta: &ClusterMeta) -> Vec<u8> {
    wrap(
        Kind::Meta,
        &serde_json::to_vec(meta).expect("metadata serializes"),
    )
}

fn decode_meta(key: &[u8], value: &[u8]) -> Result<ClusterMeta> {
    serde_json::from_slice(unwrap(Kind::Meta, key, value)?).map_err(|e| StoreError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        reason: e.to_string(),
    })
}

impl Store {
    /// Opens (or creates) the database in `dir`.
    pub fn open(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir)?;
        let db = sled::Config::new()
            .path(dir.join("sled"))
            .mode(sled::Mode::HighThroughput)
            .open()?;
        Ok(Self { db })
    }

    /// Stores a new cluster; [`StoreError::Exists`] if the id is taken.
    pub async fn create(&self, meta: &ClusterMeta) -> Result<()> {
        let swapped = self.db.compare_and_swap(
            meta_key(&meta.id),
            None as Option<&[u8]>,
            Some(encode_meta(meta)),
        )?;
        if swapped.is_err() {
            return Err(StoreError::Exists(meta.id.clone()));
        }
        self.db.flush_async().await?;
        Ok(())
    }

    /// A cluster's metadata, if it exists.
    pub fn meta(&self, id: &str) -> Result<Option<ClusterMeta>> {
        let key = meta_key(id);
        self.db
            .get(&key)?
            .map(|v| decode_meta(&key, &v))
            .transpose()
    }

    /// Every cluster; damaged metadata records are logged and left out.
    pub fn list(&self) -> Result<Vec<ClusterMeta>> {
        let mut out = Vec::new();
        for item in self.db.scan_prefix(b"m/") {
            let (k, v) = item?;
            match decode_meta(&k, &v) {
                Ok(meta) => out.push(meta),
                Err(e) => tracing::error!(error = %e, "skipping damaged cluster metadata"),
            }
        }
        Ok(out)
    }

    /// Records an operation atomically and durably: the new `segments` and `turns`
    /// (numbered from `before`'s counters), the cache change and the metadata `after`.
    pub async fn commit(
        &self,
        before: &ClusterMeta,
        after: &ClusterMeta,
        segments: &[Segment],
        turns: &[Turn],
        kv: &KvWrite,
    ) -> Result<()> {
        let id = &after.id;
        let mut batch = sled::Batch::default();
        for (i, s) in segments.iter().enumerate() {
            batch.insert(
                seq_key(id, 's', before.segments + i as u64),
                wrap(Kind::Segment, &s.encode()),
            );
        }
        for (i, t) in turns.iter().enumerate() {
            let json = serde_json::to_vec(t).expect("turn serializes");
            batch.insert(
                seq_key(id, 't', before.turns + i as u64),
                wrap(Kind::Turn, &json),
            );
        }
        match kv {
            KvWrite::None => {}
            KvWrite::Delta { kv, next_logits } => {
                batch.insert(seq_key(id, 'k', before.next_delta), wrap(Kind::Delta, kv));
                put_logits(&mut batch, id, next_logits);
            }
            KvWrite::Snapshot { kv, next_logits } => {
                for key in self.db.scan_prefix(format!("d/{id}/k/")).keys() {
                    batch.remove(key?);
                }
                batch.insert(base_key(id), wrap(Kind::Base, kv));
                put_logits(&mut batch, id, next_logits);
            }
        }
        batch.insert(meta_key(id), encode_meta(after));
        self.db.apply_batch(batch)?;
        self.db.flush_async().await?;
        Ok(())
    }

    /// The payload of the record at `key`, if any; a failed check is noted in `damaged`
    /// (the first failure is kept) and gives `None`.
    fn checked(
        &self,
        kind: Kind,
        key: &[u8],
        damaged: &mut Option<String>,
    ) -> Result<Option<Vec<u8>>> {
        let Some(v) = self.db.get(key)? else {
            return Ok(None);
        };
        Ok(match unwrap(kind, key, &v) {
            Ok(p) => Some(p.to_vec()),
            Err(e) => {
                damaged.get_or_insert(e.to_string());
                None
            }
        })
    }

    /// The cache blobs of a cluster, each checked; any failure sets `damaged` (the
    /// caller then rebuilds from the segments).
    pub fn cache(&self, id: &str) -> Result<StoredCache> {
        let mut out = StoredCache::default();
        out.base = self.checked(Kind::Base, &base_key(id), &mut out.damaged)?;
        for item in self.db.scan_prefix(format!("d/{id}/k/")) {
            let (k, v) = item?;
            match unwrap(Kind::Delta, &k, &v) {
                Ok(p) => out.deltas.push(p.to_vec()),
                Err(e) => {
                    out.damaged.get_or_insert(e.to_string());
                }
            }
        }
        out.next_logits = self.checked(Kind::Logits, &logits_key(id), &mut out.damaged)?;
        if out.damaged.is_some() {
            out.base = None;
            out.deltas.clear();
            out.next_logits = None;
        }
        Ok(out)
    }

    /// The token segments of a cluster, in order. A damaged segment is unrecoverable
    /// ([`StoreError::Corrupt`]).
    pub fn segments(&self, id: &str) -> Result<Vec<Segment>> {
        let mut out = Vec::new();
        for item in self.db.scan_prefix(format!("d/{id}/s/")) {
            let (k, v) = item?;
            let payload = unwrap(Kind::Segment, &k, &v)?;
            out.push(Segment::decode(payload).ok_or_else(|| StoreError::Corrupt {
                key: String::from_utf8_lossy(&k).into_owned(),
                reason: "malformed segment".into(),
            })?);
        }
        Ok(out)
    }

    /// The recorded turns of a cluster, in order.
    pub fn turns(&self, id: &str) -> Result<Vec<Turn>> {
        let mut out = Vec::new();
        for item in self.db.scan_prefix(format!("d/{id}/t/")) {
            let (k, v) = item?;
            let payload = unwrap(Kind::Turn, &k, &v)?;
            out.push(
                serde_json::from_slice(payload).map_err(|e| StoreError::Corrupt {
                    key: String::from_utf8_lossy(&k).into_owned(),
                    reason: e.to_string(),
                })?,
            );
        }
        Ok(out)
    }

    /// Deletes a cluster and all its records.
    pub async fn delete(&self, id: &str) -> Result<()> {
        let mut batch = sled::Batch::default();
        for key in self.db.scan_prefix(data_prefix(id)).keys() {
            batch.remove(key?);
        }
        batch.remove(meta_key(id));
        self.db.apply_batch(batch)?;
        self.db.flush_async().await?;
        Ok(())
    }

    /// Copies cluster `from` (all records) to a new cluster described by `to`;
    /// [`StoreError::Exists`] if `to.id` is taken.
    pub async fn copy(&self, from: &str, to: &ClusterMeta) -> Result<()> {
        let from_prefix = data_prefix(from);
        let to_prefix = data_prefix(&to.id);
        let mut records = Vec::new();
        for item in self.db.scan_prefix(&from_prefix) {
            let (k, v) = item?;
            let mut key = to_prefix.clone();
            key.extend_from_slice(&k[from_prefix.len()..]);
            records.push((key, v));
        }
        let to_meta = encode_meta(to);
        let to_key = meta_key(&to.id);
        let result = self.db.transaction(|tx| {
            if tx.get(&to_key)?.is_some() {
                return sled::transaction::abort(());
            }
            for (k, v) in &records {
                tx.insert(k.as_slice(), v.clone())?;
            }
            tx.insert(to_key.as_slice(), to_meta.as_slice())?;
            Ok(())
        });
        match result {
            Ok(()) => {}
            Err(sled::transaction::TransactionError::Abort(())) => {
                return Err(StoreError::Exists(to.id.clone()))
            }
            Err(sled::transaction::TransactionError::Storage(e)) => return Err(e.into()),
        }
        self.db.flush_async().await?;
        Ok(())
    }

    /// Number of clusters.
    pub fn count(&self) -> usize {
        self.db.scan_prefix(b"m/").count()
    }

    /// Flushes everything to disk.
    pub async fn flush(&self) -> Result<()> {
        self.db.flush_async().await?;
        Ok(())
    }

    /// Bytes the database occupies on disk.
    pub fn size_on_disk(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::chat::Role;

    fn run<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(f)
    }

    #[test]
    fn commit_read_back_and_detect_damage() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let before = ClusterMeta::new("a", BTreeMap::new());
        run(store.create(&before)).unwrap();
        assert!(matches!(
            run(store.create(&before)),
            Err(StoreError::Exists(_))
        ));
        let seg = Segment {
            tokens: vec![2, 3, 4],
            chunk: 64,
        };
        let turn = Turn {
            role: Role::User,
            text: "hi".into(),
        };
        let mut after = before.clone();
        after.tokens = 3;
        after.segments = 1;
        after.turns = 1;
        after.next_delta = 1;
        run(store.commit(
            &before,
            &after,
            std::slice::from_ref(&seg),
            std::slice::from_ref(&turn),
            &KvWrite::Delta {
                kv: vec![9, 9],
                next_logits: Some(vec![4]),
            },
        ))
        .unwrap();
        assert_eq!(store.meta("a").unwrap().unwrap(), after);
        assert_eq!(store.segments("a").unwrap(), vec![seg.clone()]);
        assert_eq!(store.turns("a").unwrap(), vec![turn]);
        let stored = store.cache("a").unwrap();
        assert_eq!(stored.deltas, vec![vec![9, 9]]);
        assert_eq!(stored.next_logits, Some(vec![4]));

        // Copy, then damage the copy's delta: detected, the original is untouched.
        let mut copy = after.clone();
        copy.id = "b".into();
        run(store.copy("a", &copy)).unwrap();
        let mut copy_c = after.clone();
        copy_c.id = "c".into();
        run(store.copy("a", &copy_c)).unwrap();
        assert_eq!(store.cache("c").unwrap().next_logits, Some(vec![4]));
        assert!(matches!(
            run(store.copy("a", &copy)),
            Err(StoreError::Exists(_))
        ));
        let key = seq_key("b", 'k', 0);
        let mut v = store.db.get(&key).unwrap().unwrap().to_vec();
        let last = v.len() - 1;
        v[last] ^= 1;
        store.db.insert(&key, v).unwrap();
        let damaged = store.cache("b").unwrap();
        assert!(damaged.damaged.unwrap().contains("checksum"));
        assert!(damaged.deltas.is_empty());
        assert!(store.cache("a").unwrap().damaged.is_none());

        // A snapshot replaces the deltas.
        let mut compacted = after.clone();
        compacted.next_delta = 2;
        run(store.commit(
            &after,
            &compacted,
            &[],
            &[],
            &KvWrite::Snapshot {
                kv: vec![7],
                next_logits: None,
            },
        ))
        .unwrap();
        let c = store.cache("a").unwrap();
        assert_eq!((c.base, c.deltas.len()), (Some(vec![7]), 0));
        assert_eq!(
            c.next_logits, None,
            "a write without logits removes the old ones"
        );

        // Damaged logits make the whole stored cache unusable (rebuilt from segments).
        let key = logits_key("c");
        let mut v = store.db.get(&key).unwrap().unwrap().to_vec();
        v[HEADER_LEN] ^= 1;
        store.db.insert(&key, v).unwrap();
        let damaged = store.cache("c").unwrap();
        assert!(damaged.damaged.unwrap().contains("checksum"));
        assert!(damaged.next_logits.is_none() && damaged.deltas.is_empty());

        run(store.delete("a")).unwrap();
        assert!(store.meta("a").unwrap().is_none());
        assert!(store.segments("a").unwrap().is_empty());
        assert_eq!(store.list().unwrap().len(), 2);
    }
}
