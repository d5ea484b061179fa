//! Durable cluster state in sled: metadata, turns, token segments and the KV cache.
//!
//! Layout (one sled tree; ids are validated, so they never contain `/`):
//! ```text
//! m/{id}                    ClusterMeta (JSON)
//! d/{id}/s/{seq:016x}       token segment: the ids of one prefill, with its chunk size
//! d/{id}/t/{seq:016x}       turn (JSON): the record of what was said
//! d/{id}/b                  cache base snapshot (semkv_engine::cache::codec full encoding)
//! d/{id}/k/{seq:016x}       cache delta of one operation (cache_codec delta encoding)
//! d/{id}/l                  logits after the cache's last token (semkv_engine::cache::logits_codec),
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

mod envelope;
mod keys;
mod records;

use std::path::Path;

use semkv_engine::generate::chat::Turn;

use envelope::{unwrap, wrap, Kind};
use keys::{key, Rec, Seq, META_PREFIX};
pub use records::{ClusterMeta, KvWrite, Segment, StoredCache};

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

/// The sled database of a daemon. Cheap to clone (handles are shared).
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
}

/// Replaces (or removes) a cluster's stored next-token logits in `batch`.
fn put_logits(batch: &mut sled::Batch, id: &str, next_logits: &Option<Vec<u8>>) {
    match next_logits {
        Some(bytes) => batch.insert(key(id, Rec::Logits), wrap(Kind::Logits, bytes)),
        None => batch.remove(key(id, Rec::Logits)),
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
            key(&meta.id, Rec::Meta),
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
        let key = key(id, Rec::Meta);
        self.db
            .get(&key)?
            .map(|v| decode_meta(&key, &v))
            .transpose()
    }

    /// Every cluster; damaged metadata records are logged and left out.
    pub fn list(&self) -> Result<Vec<ClusterMeta>> {
        let mut out = Vec::new();
        for item in self.db.scan_prefix(META_PREFIX) {
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
                key(id, Rec::One(Seq::Segment, before.segments + i as u64)),
                wrap(Kind::Segment, &s.encode()),
            );
        }
        for (i, t) in turns.iter().enumerate() {
            let json = serde_json::to_vec(t).expect("turn serializes");
            batch.insert(
                key(id, Rec::One(Seq::Turn, before.turns + i as u64)),
                wrap(Kind::Turn, &json),
            );
        }
        match kv {
            KvWrite::None => {}
            KvWrite::Delta { kv, next_logits } => {
                batch.insert(
                    key(id, Rec::One(Seq::Delta, before.next_delta)),
                    wrap(Kind::Delta, kv),
                );
                put_logits(&mut batch, id, next_logits);
            }
            KvWrite::Snapshot { kv, next_logits } => {
                for k in self.db.scan_prefix(key(id, Rec::All(Seq::Delta))).keys() {
                    batch.remove(k?);
                }
                batch.insert(key(id, Rec::Base), wrap(Kind::Base, kv));
                put_logits(&mut batch, id, next_logits);
            }
        }
        batch.insert(key(id, Rec::Meta), encode_meta(after));
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
        out.base = self.checked(Kind::Base, &key(id, Rec::Base), &mut out.damaged)?;
        for item in self.db.scan_prefix(key(id, Rec::All(Seq::Delta))) {
            let (k, v) = item?;
            match unwrap(Kind::Delta, &k, &v) {
                Ok(p) => out.deltas.push(p.to_vec()),
                Err(e) => {
                    out.damaged.get_or_insert(e.to_string());
                }
            }
        }
        out.next_logits = self.checked(Kind::Logits, &key(id, Rec::Logits), &mut out.damaged)?;
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
        for item in self.db.scan_prefix(key(id, Rec::All(Seq::Segment))) {
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
        for item in self.db.scan_prefix(key(id, Rec::All(Seq::Turn))) {
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
        for k in self.db.scan_prefix(key(id, Rec::Data)).keys() {
            batch.remove(k?);
        }
        batch.remove(key(id, Rec::Meta));
        self.db.apply_batch(batch)?;
        self.db.flush_async().await?;
        Ok(())
    }

    /// Copies cluster `from` (all records) to a new cluster described by `to`;
    /// [`StoreError::Exists`] if `to.id` is taken.
    pub async fn copy(&self, from: &str, to: &ClusterMeta) -> Result<()> {
        let from_prefix = key(from, Rec::Data);
        let to_prefix = key(&to.id, Rec::Data);
        let mut records = Vec::new();
        for item in self.db.scan_prefix(&from_prefix) {
            let (k, v) = item?;
            let mut key = to_prefix.clone();
            key.extend_from_slice(&k[from_prefix.len()..]);
            records.push((key, v));
        }
        let to_meta = encode_meta(to);
        let to_key = key(&to.id, Rec::Meta);
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
        self.db.scan_prefix(META_PREFIX).count()
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
    use std::collections::BTreeMap;

    use super::*;
    use semkv_engine::generate::chat::Role;

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
        let delta = key("b", Rec::One(Seq::Delta, 0));
        let mut v = store.db.get(&delta).unwrap().unwrap().to_vec();
        let last = v.len() - 1;
        v[last] ^= 1;
        store.db.insert(&delta, v).unwrap();
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
        let logits = key("c", Rec::Logits);
        let mut v = store.db.get(&logits).unwrap().unwrap().to_vec();
        v[envelope::HEADER_LEN] ^= 1;
        store.db.insert(&logits, v).unwrap();
        let damaged = store.cache("c").unwrap();
        assert!(damaged.damaged.unwrap().contains("checksum"));
        assert!(damaged.next_logits.is_none() && damaged.deltas.is_empty());

        run(store.delete("a")).unwrap();
        assert!(store.meta("a").unwrap().is_none());
        assert!(store.segments("a").unwrap().is_empty());
        assert_eq!(store.list().unwrap().len(), 2);
    }
}
