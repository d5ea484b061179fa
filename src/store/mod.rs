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
mod keys;
mod manifest;
mod records;
mod repair;
mod space;

use std::collections::HashSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use semkv_engine::generate::chat::Turn;

pub use blobs::{BlobDir, BlobError, BlobRef};
use envelope::{unwrap, wrap, Kind};
use keys::{key, Rec, Seq, CACHE_PREFIX, COMMITS_KEY, META_PREFIX, MODEL_KEY};
use manifest::{id_digest, Manifest};
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

/// Opens sled at `path`; a panic inside sled (it panics on some damaged files) is
/// reported as [`StoreError::Unreadable`].
fn open_sled(path: &Path) -> Result<sled::Db> {
    let opened = catch_unwind(AssertUnwindSafe(|| {
        sled::Config::new()
            .path(path)
            .mode(sled::Mode::HighThroughput)
            .open()
    }));
    match opened {
        Ok(Ok(db)) => Ok(db),
        Ok(Err(e)) => Err(StoreError::Unreadable {
            path: path.to_owned(),
            reason: e.to_string(),
        }),
        Err(panic) => Err(StoreError::Unreadable {
            path: path.to_owned(),
            reason: format!("sled panicked: {}", panic_message(&panic)),
        }),
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "unknown panic".into())
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

    /// Stores a new cluster; [`StoreError::Exists`] if the id is taken.
    pub async fn create(&self, meta: &ClusterMeta) -> Result<()> {
        self.check_space(0)?;
        let mut state = self.manifest.lock().await;
        let (meta_key, value) = (key(&meta.id, Rec::Meta), encode_json(Kind::Meta, meta));
        self.acknowledge_with(&mut state, Some((&meta.id, true)), |commits| {
            insert_new(&self.db, &meta_key, &meta.id, |tx| {
                tx.insert(meta_key.as_slice(), value.as_slice())?;
                tx.insert(COMMITS_KEY, commits.as_slice())?;
                Ok(())
            })
        })
        .await
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

    /// Records an operation atomically and durably: the new `segments` and `turns`
    /// (numbered from `before`'s counters), the cache change `kv` (its blobs written
    /// first) and the metadata `after`. Refused with [`StoreError::Full`] when it
    /// would outgrow the store's budget or the disk.
    pub async fn commit(
        &self,
        before: &ClusterMeta,
        after: &ClusterMeta,
        segments: &[Segment],
        turns: &[Turn],
        kv: KvWrite,
    ) -> Result<()> {
        let id = after.id.clone();
        let incoming = kv.byte_len() as u64
            + segments
                .iter()
                .map(|s| 4 * s.tokens.len() as u64)
                .sum::<u64>()
            + turns.iter().map(|t| t.text.len() as u64).sum::<u64>();
        self.check_space(incoming)?;
        let old = self.cache_index(&id).unwrap_or_else(|e| {
            tracing::warn!(cluster = id, error = %e, "cache index damaged; replacing it");
            None
        });
        let (index, written) = self
            .write_blobs(&id, old.clone().unwrap_or_default(), kv)
            .await?;
        let mut batch = sled::Batch::default();
        for (i, s) in segments.iter().enumerate() {
            batch.insert(
                key(&id, Rec::One(Seq::Segment, before.segments + i as u64)),
                wrap(Kind::Segment, &s.encode()),
            );
        }
        for (i, t) in turns.iter().enumerate() {
            batch.insert(
                key(&id, Rec::One(Seq::Turn, before.turns + i as u64)),
                encode_json(Kind::Turn, t),
            );
        }
        if !written.is_empty() {
            batch.insert(key(&id, Rec::Cache), encode_json(Kind::Index, &index));
        }
        batch.insert(key(&id, Rec::Meta), encode_json(Kind::Meta, after));
        let mut state = self.manifest.lock().await;
        if let Err(e) = self.acknowledge(&mut state, batch, None).await {
            drop(state);
            if written.is_empty() {
                return Err(e);
            }
            // Blobs the database does not name are removed now; if the batch was
            // applied (only its flush failed) they are needed and stay.
            if self.cache_index(&id).ok().flatten().as_ref() != Some(&index) {
                self.remove_blobs(written.iter().map(|b| b.name.clone()).collect())
                    .await;
            }
            return Err(e);
        }
        drop(state);
        if let Some(old) = old {
            let keep: HashSet<&str> = index.blobs().map(|b| b.name.as_str()).collect();
            let gone = old
                .blobs()
                .filter(|b| !keep.contains(b.name.as_str()))
                .map(|b| b.name.clone())
                .collect();
            self.remove_blobs(gone).await;
        }
        Ok(())
    }

    /// Writes the blobs of `kv` for cluster `id`; returns the index after it and the
    /// blobs written (removed again if writing fails part way).
    async fn write_blobs(
        &self,
        id: &str,
        mut index: CacheIndex,
        kv: KvWrite,
    ) -> Result<(CacheIndex, Vec<BlobRef>)> {
        let (part, bytes, logits) = match kv {
            KvWrite::None => return Ok((index, Vec::new())),
            KvWrite::Delta { kv, next_logits } => ('k', kv, next_logits),
            KvWrite::Snapshot { kv, next_logits } => ('b', kv, next_logits),
        };
        let names = (
            keys::blob_name(id, self.db.generate_id()?, part),
            keys::blob_name(id, self.db.generate_id()?, 'l'),
        );
        let blobs = self.blobs.clone();
        let written = blocking(move || -> std::io::Result<Vec<BlobRef>> {
            let mut written = vec![blobs.write(&names.0, &bytes)?];
            if let Some(logits) = logits {
                match blobs.write(&names.1, &logits) {
                    Ok(b) => written.push(b),
                    Err(e) => {
                        let _ = blobs.remove(&names.0);
                        return Err(e);
                    }
                }
            }
            Ok(written)
        })
        .await
        .map_err(|e| self.io_error(e))?;
        let added: u64 = written.iter().map(|b| b.len).sum();
        self.blob_bytes.fetch_add(added, Ordering::Relaxed);
        let mut parts = written.iter().cloned();
        let blob = parts.next().expect("one blob written");
        if part == 'b' {
            index.base = Some(blob);
            index.deltas.clear();
        } else {
            index.deltas.push(blob);
        }
        index.logits = parts.next();
        Ok((index, written))
    }

    /// Applies `batch` plus the next commit count atomically, flushes, and records the
    /// write in the manifest (see [`Store::acknowledge_with`]).
    async fn acknowledge(
        &self,
        state: &mut Manifest,
        mut batch: sled::Batch,
        added: Option<(&str, bool)>,
    ) -> Result<()> {
        self.acknowledge_with(state, added, |commits| {
            batch.insert(COMMITS_KEY, commits);
            Ok(self.db.apply_batch(batch)?)
        })
        .await
    }

    /// Runs `apply`, which must write its changes and the given encoded commit count
    /// (under `x/commits`) in ONE atomic sled write — a cluster added or removed
    /// without its count would look like a lost cluster at the next open — then
    /// flushes and records the write in the manifest. `added` says whether a cluster id
    /// was added (`true`) or removed; `state` is the held manifest lock.
    async fn acknowledge_with(
        &self,
        state: &mut Manifest,
        added: Option<(&str, bool)>,
        apply: impl FnOnce(Vec<u8>) -> Result<()>,
    ) -> Result<()> {
        let mut next = *state;
        next.commits += 1;
        if let Some((id, added)) = added {
            next.digest ^= id_digest(id);
            next.clusters = if added {
                next.clusters + 1
            } else {
                next.clusters.saturating_sub(1)
            };
        }
        apply(encode_json(Kind::Info, &next.commits))?;
        *state = next;
        self.db.flush_async().await?;
        let (dir, mode) = (self.dir.clone(), self.options.permissions.file_mode());
        blocking(move || manifest::write(&dir, &next, mode))
            .await
            .map_err(|e| self.io_error(e))?;
        Ok(())
    }

    /// An I/O error, as [`StoreError::Full`] when the disk is full.
    fn io_error(&self, e: std::io::Error) -> StoreError {
        if space::is_out_of_space(&e) {
            StoreError::Full(format!(
                "no space left on the device of {}: {e}; free space (or delete clusters) and retry",
                self.dir.display()
            ))
        } else {
            StoreError::Io(e)
        }
    }

    /// Refuses a write of about `incoming` bytes that would take the store past
    /// `--max-store-bytes` or leave less than `--min-free-bytes` on its disk.
    fn check_space(&self, incoming: u64) -> Result<()> {
        space::check(&self.options, &self.dir, self.size_on_disk(), incoming)
            .map_err(StoreError::Full)
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

    /// Deletes a cluster, all its records and blobs. Works whatever state its records
    /// are in (nothing is decoded), and whatever the budget.
    pub async fn delete(&self, id: &str) -> Result<()> {
        let mut batch = sled::Batch::default();
        for k in self.db.scan_prefix(key(id, Rec::Data)).keys() {
            batch.remove(k?);
        }
        batch.remove(key(id, Rec::Cache));
        batch.remove(key(id, Rec::Meta));
        let mut state = self.manifest.lock().await;
        let existed = self.db.contains_key(key(id, Rec::Meta))?;
        self.acknowledge(&mut state, batch, existed.then_some((id, false)))
            .await?;
        drop(state);
        let prefix = keys::blob_prefix(id);
        let names = self
            .blobs
            .names()?
            .into_iter()
            .filter(|n| n.starts_with(&prefix))
            .collect();
        self.remove_blobs(names).await;
        Ok(())
    }

    /// Copies cluster `from` (all records; its blobs as new names of the same files)
    /// to a new cluster described by `to`; [`StoreError::Exists`] if `to.id` is taken.
    pub async fn copy(&self, from: &str, to: &ClusterMeta) -> Result<()> {
        self.check_space(0)?;
        let from_prefix = key(from, Rec::Data);
        let to_prefix = key(&to.id, Rec::Data);
        let mut records = Vec::new();
        for item in self.db.scan_prefix(&from_prefix) {
            let (k, v) = item?;
            let mut key = to_prefix.clone();
            key.extend_from_slice(&k[from_prefix.len()..]);
            records.push((key, v.to_vec()));
        }
        let mut linked = Vec::new();
        if let Ok(Some(index)) = self.cache_index(from) {
            let mut copy = CacheIndex::default();
            let mut link = |b: &BlobRef| -> Result<BlobRef> {
                let name = keys::blob_name(&to.id, self.db.generate_id()?, part_of(&b.name));
                let r = self.blobs.link(b, &name).map_err(|e| self.io_error(e))?;
                linked.push(name);
                Ok(r)
            };
            let result = (|| -> Result<()> {
                copy.base = index.base.as_ref().map(&mut link).transpose()?;
                for d in &index.deltas {
                    copy.deltas.push(link(d)?);
                }
                copy.logits = index.logits.as_ref().map(&mut link).transpose()?;
                Ok(())
            })();
            if let Err(e) = result {
                self.remove_blobs(linked).await;
                return Err(e);
            }
            records.push((key(&to.id, Rec::Cache), encode_json(Kind::Index, &copy)));
        }
        let to_meta = encode_json(Kind::Meta, to);
        let to_key = key(&to.id, Rec::Meta);
        let mut state = self.manifest.lock().await;
        let result = self
            .acknowledge_with(&mut state, Some((&to.id, true)), |commits| {
                insert_new(&self.db, &to_key, &to.id, |tx| {
                    for (k, v) in &records {
                        tx.insert(k.as_slice(), v.as_slice())?;
                    }
                    tx.insert(to_key.as_slice(), to_meta.as_slice())?;
                    tx.insert(COMMITS_KEY, commits.as_slice())?;
                    Ok(())
                })
            })
            .await;
        drop(state);
        if let Err(e) = result {
            if matches!(e, StoreError::Exists(_)) {
                self.remove_blobs(linked).await;
            }
            return Err(e);
        }
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

    /// Bytes the store occupies on disk (database and blobs).
    pub fn size_on_disk(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0) + self.blob_bytes.load(Ordering::Relaxed)
    }

    /// Removes blob files no cache index names and older than `min_age` (a younger
    /// one may belong to a write in progress); returns the files and bytes removed.
    pub fn collect_orphans(&self, min_age: Duration) -> Result<(usize, u64)> {
        let mut referenced = HashSet::new();
        for item in self.db.scan_prefix(CACHE_PREFIX) {
            let (k, v) = item?;
            match decode_json::<CacheIndex>(Kind::Index, &k, &v) {
                Ok(index) => referenced.extend(index.blobs().map(|b| b.name.clone())),
                // Its cache is rebuilt from segments anyway; its blobs can go.
                Err(e) => tracing::warn!(error = %e, "damaged cache index"),
            }
        }
        let (files, bytes) = self.blobs.collect(|n| referenced.contains(n), min_age)?;
        self.blob_bytes.fetch_sub(
            bytes.min(self.blob_bytes.load(Ordering::Relaxed)),
            Ordering::Relaxed,
        );
        Ok((files, bytes))
    }

    /// Collects orphaned blobs every `every` (see [`Store::collect_orphans`]) until the
    /// runtime stops.
    pub fn collect_garbage(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        let store = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                let s = store.clone();
                match blocking(move || s.collect_orphans(every)).await {
                    Ok((0, _)) => {}
                    Ok((files, bytes)) => {
                        tracing::info!(files, bytes, "removed orphaned cache blobs")
                    }
                    Err(e) => tracing::warn!(error = %e, "orphan collection failed"),
                }
            }
        })
    }

    async fn remove_blobs(&self, names: Vec<String>) {
        if names.is_empty() {
            return;
        }
        let blobs = self.blobs.clone();
        let freed = blocking(move || {
            let mut freed = 0;
            for name in names {
                let len = std::fs::metadata(blobs.path().join(&name)).map_or(0, |m| m.len());
                match blobs.remove(&name) {
                    Ok(()) => freed += len,
                    Err(e) => tracing::warn!(blob = name, error = %e, "cannot remove a blob; it is collected later"),
                }
            }
            freed
        })
        .await;
        let now = self.blob_bytes.load(Ordering::Relaxed);
        self.blob_bytes
            .store(now.saturating_sub(freed), Ordering::Relaxed);
    }

    /// Removes the cache records of builds before blob files; those clusters' caches
    /// are rebuilt from their segments on first use.
    fn drop_legacy_cache_records(&self) -> Result<()> {
        let mut batch = sled::Batch::default();
        let mut n = 0;
        for k in self.db.scan_prefix(b"d/").keys() {
            let k = k?;
            if keys::is_legacy_cache_key(&k) {
                batch.remove(k);
                n += 1;
            }
        }
        if n > 0 {
            self.db.apply_batch(batch)?;
            self.db.flush()?;
            tracing::info!(records = n, "removed cache records of an earlier store layout; caches are rebuilt from their token logs on first use");
        }
        Ok(())
    }
}

/// Runs `write` in a sled transaction unless `key` exists ([`StoreError::Exists`]
/// naming `id`).
fn insert_new(
    db: &sled::Db,
    key: &[u8],
    id: &str,
    write: impl Fn(
        &sled::transaction::TransactionalTree,
    ) -> sled::transaction::ConflictableTransactionResult<(), ()>,
) -> Result<()> {
    let result = db.transaction(|tx| {
        if tx.get(key)?.is_some() {
            return sled::transaction::abort(());
        }
        write(tx)
    });
    match result {
        Ok(()) => Ok(()),
        Err(sled::transaction::TransactionError::Abort(())) => {
            Err(StoreError::Exists(id.to_owned()))
        }
        Err(sled::transaction::TransactionError::Storage(e)) => Err(e.into()),
    }
}

/// The part letter of a blob name (`b`, `k` or `l`).
fn part_of(name: &str) -> char {
    name.chars().last().unwrap_or('k')
}

/// What `db` holds, as a manifest: its commit count, clusters and id digest.
fn scan_manifest(db: &sled::Db) -> Result<Manifest> {
    let commits = db
        .get(COMMITS_KEY)?
        .map(|v| decode_json(Kind::Info, COMMITS_KEY, &v))
        .transpose()?
        .unwrap_or(0);
    let mut found = Manifest {
        commits,
        ..Default::default()
    };
    for k in db.scan_prefix(META_PREFIX).keys() {
        let k = k?;
        found.clusters += 1;
        found.digest ^= id_digest(&String::from_utf8_lossy(&k[META_PREFIX.len()..]));
    }
    Ok(found)
}

/// Refuses a database that holds less than `recorded` says was acknowledged.
fn check_manifest(path: &Path, recorded: &Manifest, found: &Manifest) -> Result<()> {
    let what = if found.commits < recorded.commits {
        format!(
            "the manifest records {} writes, the database {}",
            recorded.commits, found.commits
        )
    } else if found.commits == recorded.commits
        && (found.clusters, found.digest) != (recorded.clusters, recorded.digest)
    {
        format!(
            "the manifest records {} clusters, the database holds {} (or other ones)",
            recorded.clusters, found.clusters
        )
    } else {
        // Equal, or writes the manifest missed (a crash between flush and manifest).
        return Ok(());
    };
    Err(StoreError::RolledBack {
        path: path.to_owned(),
        what,
    })
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
