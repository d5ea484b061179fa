//! Durable cluster state: small records in sled, cache blobs in files the store owns.
//!
//! ```text
//! {data_dir}/sled/            sled: the small records below
//! {data_dir}/blobs/           one immutable file per cache blob (see `blobs`)
//! {data_dir}/manifest.json    the number of acknowledged writes (fsynced, atomic)
//!
//! m/{id}                    ClusterMeta (JSON)
//! d/{id}/s/{seq:016x}       token segment: the ids of one prefill, with its chunk size
//! d/{id}/t/{seq:016x}       turn (JSON): the record of what was said
//! c/{id}                    CacheIndex (JSON): the blob files of the cache — a base
//!                           snapshot, the deltas after it, the next-token logits —
//!                           each by name, length and CRC-32
//! x/model                   fingerprint of the model the store was made with
//! x/commits                 number of acknowledged writes
//! ```
//! Every sled value is wrapped in an envelope `[version u8][kind u8][crc32 u32 LE]
//! [payload]` (see `envelope`), so a damaged or misplaced record is detected before use.
//! Cache blobs carry their own CRC in their [`CacheIndex`] entry, and the model
//! fingerprint in their codec header.
//!
//! **Writes.** An operation first writes its new blobs (temporary file, fsync, rename,
//! fsync of the directory), then applies its records — new segments, turns, the new
//! cache index, the metadata, the commit count — in one sled batch, flushed before the
//! operation is acknowledged; then it updates the manifest and removes the blobs the
//! new index no longer names. A crash at any point leaves either the old or the new
//! state; blobs that no record names are orphans, removed at open (and periodically,
//! see [`Store::collect_garbage`]). Appends cost O(new tokens): a delta holds only the
//! new tokens' keys/values; deltas are folded into a new base (compaction) when they
//! outgrow it, on `PersistCluster`, and after a rebuild.
//!
//! **Space.** sled never gives back the space of large values it held (measured: 300
//! cycles of 1 MB values, all deleted, left a 2 GB file); with only small records it
//! stays within a few MB, and a deleted or replaced blob is a deleted file.
//! `--max-store-bytes` and `--min-free-bytes` refuse writes (`RESOURCE_EXHAUSTED`)
//! before the store outgrows its budget or the disk fills; reads and deletes always
//! work.
//!
//! **Checks at open.** A database sled cannot open (even one that makes it panic) is
//! reported with its path; a database with fewer acknowledged writes than the manifest
//! records (truncated, rolled back, replaced) is refused; a store made with another
//! model is refused ([`Store::bind_model`]). `semkvd repair` salvages what is readable.
//!
//! The segments are the source of truth: replaying them in order with their chunk
//! sizes re-creates the cache bit for bit, which is how a cluster whose cache blobs
//! fail a check (or are missing) is rebuilt.

mod blobs;
mod envelope;
mod integrity;
mod keys;
mod manifest;
mod records;
mod repair;
mod space;
mod write;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use semkv_engine::generate::chat::Turn;

pub use blobs::{BlobDir, BlobError, BlobRef};
use envelope::{unwrap, wrap, Kind};
use integrity::{check_manifest, open_sled, panic_message, scan_manifest};
use keys::{key, Rec, Seq, META_PREFIX, MODEL_KEY};
use manifest::Manifest;
pub use records::{CacheIndex, ClusterMeta, KvWrite, Segment, StoredCache};
pub use repair::{repair, RepairReport};
pub use space::{Permissions, StoreOptions};

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
    /// A write was refused to keep the store within its budget or the disk from
    /// filling up.
    #[error("{0}")]
    Full(String),
    /// The database cannot be opened at all.
    #[error("cannot open the database {path}: {reason}")]
    Unreadable { path: PathBuf, reason: String },
    /// The database holds fewer acknowledged writes, or other clusters, than the
    /// manifest recorded.
    #[error(
        "the database {path} is older than what was acknowledged: {what} (truncated, rolled back, replaced or damaged?); run `semkvd repair` to keep what it has"
    )]
    RolledBack { path: PathBuf, what: String },
    /// The store was made with another model.
    #[error(
        "this store was made with model {stored}, the loaded model is {loaded}: its token ids and caches belong to the other model; start with that model, or use another --data-dir"
    )]
    ModelMismatch { stored: String, loaded: String },
}

impl StoreError {
    /// Whether the error means the disk (or the store's budget) is full.
    pub fn is_full(&self) -> bool {
        match self {
            StoreError::Full(_) => true,
            StoreError::Io(e) => space::is_out_of_space(e),
            StoreError::Sled(sled::Error::Io(e)) => space::is_out_of_space(e),
            _ => false,
        }
    }
}

type Result<T> = std::result::Result<T, StoreError>;

/// A cluster whose metadata record cannot be read: (id, why).
pub type DamagedCluster = (String, String);

/// The store of a daemon. Cheap to clone (handles are shared).
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    blobs: BlobDir,
    dir: PathBuf,
    options: StoreOptions,
    /// The manifest of the last acknowledged write; its lock serializes the commit
    /// count and the manifest (held around batch + flush).
    manifest: Arc<tokio::sync::Mutex<Manifest>>,
    /// Bytes of all blob files (kept up to date by every write and removal).
    blob_bytes: Arc<AtomicU64>,
}

fn encode_json<T: serde::Serialize>(kind: Kind, value: &T) -> Vec<u8> {
    wrap(kind, &serde_json::to_vec(value).expect("record serializes"))
}

fn decode_json<T: serde::de::DeserializeOwned>(kind: Kind, key: &[u8], value: &[u8]) -> Result<T> {
    serde_json::from_slice(unwrap(kind, key, value)?).map_err(|e| StoreError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        reason: e.to_string(),
    })
}

fn corrupt(key: &[u8], reason: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        reason: reason.into(),
    }
}

/// Runs blocking file work off the async runtime's worker threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f)
        .await
        .expect("store file work does not panic")
}

impl Store {
    /// Opens (or creates) the store in `dir` with default options.
    pub fn open(dir: &Path) -> Result<Self> {
        Self::open_with(dir, StoreOptions::default())
    }

    /// Opens (or creates) the store in `dir`: sets its permissions, opens sled (never
    /// panics), checks it against the manifest, drops cache records of earlier builds
    /// and collects orphaned blobs.
    pub fn open_with(dir: &Path, options: StoreOptions) -> Result<Self> {
        std::fs::create_dir_all(dir)?;
        space::restrict(dir, options.permissions)?;
        let sled_path = dir.join("sled");
        let db = open_sled(&sled_path)?;
        let found = scan_manifest(&db)?;
        if let Some(recorded) = manifest::read(dir)? {
            check_manifest(&sled_path, &recorded, &found)?;
        }
        let blobs = BlobDir::open(&dir.join("blobs"), options.permissions.file_mode())?;
        space::restrict(dir, options.permissions)?;
        let store = Self {
            db,
            blob_bytes: Arc::new(AtomicU64::new(blobs.total_bytes())),
            blobs,
            dir: dir.to_owned(),
            options,
            manifest: Arc::new(tokio::sync::Mutex::new(found)),
        };
        store.drop_legacy_cache_records()?;
        manifest::write(dir, &found, store.options.permissions.file_mode())?;
        let (files, bytes) = store.collect_orphans(Duration::ZERO)?;
        if files > 0 {
            tracing::info!(files, bytes, "removed orphaned cache blobs");
        }
        Ok(store)
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Binds the store to the model with `fingerprint`: a new store records it, one
    /// made with another model is refused ([`StoreError::ModelMismatch`]).
    pub fn bind_model(&self, fingerprint: &str) -> Result<()> {
        match self.db.get(MODEL_KEY)? {
            Some(v) => {
                let stored: String = decode_json(Kind::Info, MODEL_KEY, &v)?;
                if stored != fingerprint {
                    return Err(StoreError::ModelMismatch {
                        stored,
                        loaded: fingerprint.to_owned(),
                    });
                }
            }
            None => {
                if self.count() > 0 {
                    tracing::warn!(
                        fingerprint,
                        "the store has clusters but no model binding (made by an earlier build); binding it to the loaded model"
                    );
                }
                self.db
                    .insert(MODEL_KEY, encode_json(Kind::Info, &fingerprint))?;
                self.db.flush()?;
            }
        }
        Ok(())
    }

    /// A cluster's metadata, if it exists.
    pub fn meta(&self, id: &str) -> Result<Option<ClusterMeta>> {
        let key = key(id, Rec::Meta);
        self.db
            .get(&key)?
            .map(|v| decode_json(Kind::Meta, &key, &v))
            .transpose()
    }

    /// Every cluster whose metadata can be read, and every one whose metadata record
    /// is damaged (such a cluster can still be deleted).
    pub fn list(&self) -> Result<(Vec<ClusterMeta>, Vec<DamagedCluster>)> {
        let (mut good, mut damaged) = (Vec::new(), Vec::new());
        for item in self.db.scan_prefix(META_PREFIX) {
            let (k, v) = item?;
            match decode_json::<ClusterMeta>(Kind::Meta, &k, &v) {
                Ok(meta) => good.push(meta),
                Err(e) => {
                    let id = String::from_utf8_lossy(&k[META_PREFIX.len()..]).into_owned();
                    damaged.push((id, e.to_string()));
                }
            }
        }
        Ok((good, damaged))
    }

    /// The cache index of a cluster (None when it has no stored cache).
    fn cache_index(&self, id: &str) -> Result<Option<CacheIndex>> {
        let key = key(id, Rec::Cache);
        self.db
            .get(&key)?
            .map(|v| decode_json(Kind::Index, &key, &v))
            .transpose()
    }

    /// The cache blobs of a cluster, each checked; any failure sets `damaged` (the
    /// caller then rebuilds from the segments).
    pub fn cache(&self, id: &str) -> Result<StoredCache> {
        let mut out = StoredCache::default();
        let index = match self.cache_index(id) {
            Ok(Some(index)) => index,
            Ok(None) => return Ok(out),
            Err(e) => {
                out.damaged = Some(e.to_string());
                return Ok(out);
            }
        };
        let read = |b: &BlobRef| self.blobs.read(b).map_err(|e| e.to_string());
        let result = (|| -> std::result::Result<(), String> {
            out.base = index.base.as_ref().map(read).transpose()?;
            for d in &index.deltas {
                out.deltas.push(read(d)?);
            }
            out.next_logits = index.logits.as_ref().map(read).transpose()?;
            Ok(())
        })();
        if let Err(reason) = result {
            out = StoredCache {
                damaged: Some(reason),
                ..Default::default()
            };
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
            out.push(Segment::decode(payload).ok_or_else(|| corrupt(&k, "malformed segment"))?);
        }
        Ok(out)
    }

    /// The recorded turns of a cluster, in order.
    pub fn turns(&self, id: &str) -> Result<Vec<Turn>> {
        let mut out = Vec::new();
        for item in self.db.scan_prefix(key(id, Rec::All(Seq::Turn))) {
            let (k, v) = item?;
            out.push(decode_json(Kind::Turn, &k, &v)?);
        }
        Ok(out)
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

    /// Takes `bytes` of removed blob files off the running total (atomically: writes
    /// add to it concurrently; never below zero).
    fn blob_bytes_freed(&self, bytes: u64) {
        let _ = self
            .blob_bytes
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |now| {
                Some(now.saturating_sub(bytes))
            });
    }

    /// Bytes the store occupies on disk (database and blobs).
    pub fn size_on_disk(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0) + self.blob_bytes.load(Ordering::Relaxed)
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

    fn delta(kv: &[u8], logits: &[u8]) -> KvWrite {
        KvWrite::Delta {
            kv: kv.to_vec(),
            next_logits: Some(logits.to_vec()),
        }
    }

    /// The blob file of cluster `id` whose name ends in `.{part}`.
    fn blob_of(store: &Store, id: &str, part: char) -> PathBuf {
        let name = store
            .blobs
            .names()
            .unwrap()
            .into_iter()
            .find(|n| n.starts_with(&keys::blob_prefix(id)) && n.ends_with(part))
            .unwrap();
        store.blobs.path().join(name)
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
            delta(&[9, 9], &[4]),
        ))
        .unwrap();
        assert_eq!(store.meta("a").unwrap().unwrap(), after);
        assert_eq!(store.segments("a").unwrap(), vec![seg.clone()]);
        assert_eq!(store.turns("a").unwrap(), vec![turn]);
        let stored = store.cache("a").unwrap();
        assert_eq!(stored.deltas, vec![vec![9, 9]]);
        assert_eq!(stored.next_logits, Some(vec![4]));

        // Copies share the files; damaging the copy's delta is detected and the
        // original is untouched (a copy is a new name of the same bytes, so damage
        // is simulated by replacing the file).
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
        let b_delta = blob_of(&store, "b", 'k');
        std::fs::remove_file(&b_delta).unwrap();
        std::fs::write(&b_delta, [9, 8]).unwrap();
        let damaged = store.cache("b").unwrap();
        assert!(damaged.damaged.unwrap().contains("checksum"));
        assert!(damaged.deltas.is_empty());
        assert!(store.cache("a").unwrap().damaged.is_none());

        // A snapshot replaces the deltas (and their files).
        let mut compacted = after.clone();
        compacted.next_delta = 2;
        run(store.commit(
            &after,
            &compacted,
            &[],
            &[],
            KvWrite::Snapshot {
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
        let a_files = store
            .blobs
            .names()
            .unwrap()
            .into_iter()
            .filter(|n| n.starts_with("a+"))
            .count();
        assert_eq!(a_files, 1, "only the new base is left");

        // A missing blob (lost file) makes the stored cache unusable, never half-used.
        std::fs::remove_file(blob_of(&store, "c", 'l')).unwrap();
        let damaged = store.cache("c").unwrap();
        assert!(damaged.damaged.unwrap().contains("missing"));
        assert!(damaged.next_logits.is_none() && damaged.deltas.is_empty());

        run(store.delete("a")).unwrap();
        assert!(store.meta("a").unwrap().is_none());
        assert!(store.segments("a").unwrap().is_empty());
        assert_eq!(store.list().unwrap().0.len(), 2);
    }

    #[test]
    fn churn_gives_space_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        run(store.flush()).unwrap();
        let empty = store.size_on_disk();
        let blob = vec![5u8; 256 << 10];
        for cycle in 0..60 {
            let id = format!("c{cycle}");
            let mut before = ClusterMeta::new(&id, BTreeMap::new());
            run(store.create(&before)).unwrap();
            for i in 0..3u32 {
                let mut after = before.clone();
                after.tokens += 1;
                after.segments += 1;
                let seg = Segment {
                    tokens: vec![i; 64],
                    chunk: 64,
                };
                let kv = if i == 2 {
                    KvWrite::Snapshot {
                        kv: blob.clone(),
                        next_logits: Some(blob.clone()),
                    }
                } else {
                    delta(&blob, &blob)
                };
                run(store.commit(&before, &after, &[seg], &[], kv)).unwrap();
                before = after;
            }
            run(store.delete(&id)).unwrap();
        }
        assert_eq!(store.count(), 0);
        assert!(store.blobs.names().unwrap().is_empty());
        // 60 cycles wrote ~90 MB of blobs; what is left is sled's small records.
        let left = store.size_on_disk();
        assert!(
            left < empty + (8 << 20),
            "{left} bytes left after deleting everything (empty: {empty})"
        );
    }

    #[test]
    fn orphans_and_legacy_records_are_collected_at_open() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            let before = ClusterMeta::new("a", BTreeMap::new());
            run(store.create(&before)).unwrap();
            let mut after = before.clone();
            after.tokens = 1;
            run(store.commit(&before, &after, &[], &[], delta(&[1], &[2]))).unwrap();
            // A blob whose batch never came (a crash between the two), and a cache
            // record of the layout before blob files.
            store.blobs.write("a+00000000000000ff.k", &[3]).unwrap();
            store.db.insert(b"d/a/b", vec![1, 2, 3]).unwrap();
            store.db.flush().unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        let mut names = store.blobs.names().unwrap();
        names.sort();
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(!names.iter().any(|n| n.ends_with("ff.k")));
        assert!(store.db.get(b"d/a/b").unwrap().is_none());
        assert_eq!(store.cache("a").unwrap().deltas, vec![vec![1]]);
    }

    #[test]
    fn a_store_that_lost_acknowledged_writes_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            run(store.create(&ClusterMeta::new("a", BTreeMap::new()))).unwrap();
            run(store.create(&ClusterMeta::new("b", BTreeMap::new()))).unwrap();
        }
        // The database replaced by an empty one (as if truncated to nothing).
        std::fs::remove_dir_all(dir.path().join("sled")).unwrap();
        let err = Store::open(dir.path()).err().expect("refused");
        assert!(matches!(err, StoreError::RolledBack { .. }), "{err}");
        assert!(
            err.to_string().contains("2 writes, the database 0"),
            "{err}"
        );
        assert!(err.to_string().contains("semkvd repair"), "{err}");
    }

    #[test]
    fn a_cluster_lost_below_the_store_is_noticed() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            run(store.create(&ClusterMeta::new("a", BTreeMap::new()))).unwrap();
            run(store.create(&ClusterMeta::new("b", BTreeMap::new()))).unwrap();
            run(store.delete("a")).unwrap();
            // What a damaged page can do: a record gone, nothing else changed.
            store.db.remove(key("b", Rec::Meta)).unwrap();
            store.db.flush().unwrap();
        }
        let err = Store::open(dir.path()).err().expect("refused");
        assert!(
            err.to_string().contains("1 clusters, the database holds 0"),
            "{err}"
        );
    }

    #[test]
    fn a_store_is_bound_to_its_model() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.bind_model("model-a").unwrap();
        store.bind_model("model-a").unwrap();
        let err = store.bind_model("model-b").unwrap_err();
        assert!(matches!(err, StoreError::ModelMismatch { .. }), "{err}");
        assert!(err.to_string().contains("model-a"), "{err}");
    }

    #[test]
    fn damaged_metadata_is_listed_and_deletable() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let before = ClusterMeta::new("a", BTreeMap::new());
        run(store.create(&before)).unwrap();
        let mut after = before.clone();
        after.tokens = 1;
        run(store.commit(&before, &after, &[], &[], delta(&[1], &[2]))).unwrap();
        let meta = key("a", Rec::Meta);
        let mut v = store.db.get(&meta).unwrap().unwrap().to_vec();
        v[envelope::HEADER_LEN] ^= 1;
        store.db.insert(&meta, v).unwrap();
        assert!(matches!(store.meta("a"), Err(StoreError::Corrupt { .. })));
        let (good, damaged) = store.list().unwrap();
        assert!(good.is_empty());
        assert_eq!(damaged[0].0, "a");
        run(store.delete("a")).unwrap();
        assert_eq!(store.list().unwrap().1.len(), 0);
        assert!(store.blobs.names().unwrap().is_empty());
    }

    #[cfg(unix)]
    #[test]
    fn files_are_private_by_default() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let store = Store::open(&data).unwrap();
        let before = ClusterMeta::new("a", BTreeMap::new());
        run(store.create(&before)).unwrap();
        run(store.commit(&before, &before, &[], &[], delta(&[1], &[2]))).unwrap();
        drop(store);
        let _store = Store::open(&data).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&data), 0o700);
        for entry in walk(&data) {
            let want = if entry.is_dir() { 0o700 } else { 0o600 };
            assert_eq!(mode(&entry), want, "{}", entry.display());
        }
    }

    fn walk(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            }
            out.push(p);
        }
        out
    }

    #[test]
    fn writes_over_the_budget_are_refused_reads_and_deletes_work() {
        let dir = tempfile::tempdir().unwrap();
        let options = StoreOptions {
            max_bytes: 1,
            ..Default::default()
        };
        let store = Store::open_with(dir.path(), options).unwrap();
        let err = run(store.create(&ClusterMeta::new("a", BTreeMap::new()))).unwrap_err();
        assert!(err.is_full(), "{err}");
        assert!(err.to_string().contains("--max-store-bytes"), "{err}");
        assert!(store.list().unwrap().0.is_empty());
        run(store.delete("a")).unwrap();
    }
}
