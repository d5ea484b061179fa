//! Keeping the store honest: opening sled without letting a damaged file panic the
//! daemon, comparing the database with the manifest, dropping records of earlier
//! layouts, and collecting orphaned blobs.

use std::collections::HashSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::time::Duration;

use super::keys::{self, CACHE_PREFIX, COMMITS_KEY, META_PREFIX};
use super::manifest::{id_digest, Manifest};
use super::{blocking, decode_json, CacheIndex, Kind, Result, Store, StoreError};

impl Store {
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
        self.blob_bytes_freed(bytes);
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

    /// Removes the cache records of builds before blob files; those clusters' caches
    /// are rebuilt from their segments on first use.
    pub(super) fn drop_legacy_cache_records(&self) -> Result<()> {
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

/// Opens sled at `path`; a panic inside sled (it panics on some damaged files) is
/// reported as [`StoreError::Unreadable`].
pub(super) fn open_sled(path: &Path) -> Result<sled::Db> {
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

pub(super) fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "unknown panic".into())
}

/// What `db` holds, as a manifest: its commit count, clusters and id digest.
pub(super) fn scan_manifest(db: &sled::Db) -> Result<Manifest> {
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
pub(super) fn check_manifest(path: &Path, recorded: &Manifest, found: &Manifest) -> Result<()> {
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
