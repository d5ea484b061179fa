//! `semkvd repair`: salvage every readable cluster of a damaged store into a fresh
//! database, keep the damaged one aside, and say what was lost.
//!
//! A cluster is kept when its metadata, turns and token segments all pass their checks
//! and the segments hold all its tokens (so its cache can always be rebuilt). Its cache
//! index is kept when every blob it names passes its check; otherwise it is dropped
//! and the cache is rebuilt from the segments on first use. Blobs no kept index names
//! are removed when the repaired store opens. A database sled cannot open at all holds
//! nothing that can be salvaged: that is reported, and nothing is changed.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use super::envelope::unwrap;
use super::keys::{blob_prefix, key, Rec, Seq};
use super::{
    decode_json, manifest, open_sled, panic_message, scan_manifest, BlobDir, CacheIndex,
    ClusterMeta, Kind, Result, Segment, Store, StoreError, StoreOptions, META_PREFIX, MODEL_KEY,
};

/// What a repair did.
#[derive(Debug, Default)]
pub struct RepairReport {
    /// Clusters salvaged whole (with their caches).
    pub kept: Vec<String>,
    /// Clusters salvaged whose caches will be rebuilt from their token logs, and why.
    pub caches_dropped: Vec<(String, String)>,
    /// Clusters that could not be salvaged, and why (also those whose records are gone
    /// and only their cache blobs name them).
    pub lost: Vec<(String, String)>,
    /// Further clusters the manifest recorded that nothing names any more.
    pub lost_unnamed: u64,
    /// Clusters with blob files but no records, while the manifest accounts for every
    /// cluster: leftovers of an interrupted delete (their files are removed).
    pub leftovers: Vec<String>,
    /// Kept clusters whose records look older than what was written last (cache blobs
    /// of theirs that their records do not name): their latest turns may be gone.
    pub older: Vec<String>,
    /// Where the damaged database was moved.
    pub damaged_database: PathBuf,
}

/// Salvages the store in `dir` (see the module documentation).
pub fn repair(dir: &Path, options: StoreOptions) -> Result<RepairReport> {
    let sled_path = dir.join("sled");
    let old = open_sled(&sled_path)?;
    let fresh_path = dir.join("sled.repair");
    if fresh_path.exists() {
        std::fs::remove_dir_all(&fresh_path)?;
    }
    let fresh = open_sled(&fresh_path)?;
    let blobs = BlobDir::open(&dir.join("blobs"), options.permissions.file_mode())?;
    let recorded = manifest::read(dir)?;
    let mut report = RepairReport::default();

    let names = blobs.names()?;
    let ids: Vec<String> = old
        .scan_prefix(META_PREFIX)
        .keys()
        .filter_map(|k| k.ok())
        .map(|k| String::from_utf8_lossy(&k[META_PREFIX.len()..]).into_owned())
        .collect();
    for id in ids {
        let salvaged = catch_unwind(AssertUnwindSafe(|| {
            salvage(&old, &fresh, &blobs, &names, &id)
        }));
        if let Ok(Ok((_, true))) = &salvaged {
            report.older.push(id.clone());
        }
        match salvaged {
            Ok(Ok((None, _))) => report.kept.push(id),
            Ok(Ok((Some(why), _))) => report.caches_dropped.push((id, why)),
            Ok(Err(e)) => report.lost.push((id, e.to_string())),
            Err(panic) => report.lost.push((
                id,
                format!("the database panicked: {}", panic_message(&panic)),
            )),
        }
    }
    // Clusters whose records are gone entirely: their blobs still name them.
    let seen: std::collections::HashSet<String> = report
        .kept
        .iter()
        .chain(report.caches_dropped.iter().map(|(id, _)| id))
        .chain(report.lost.iter().map(|(id, _)| id))
        .cloned()
        .collect();
    let mut orphaned: Vec<String> = names
        .iter()
        .filter_map(|n| n.split_once('+').map(|(id, _)| id.to_owned()))
        .filter(|id| !seen.contains(id))
        .collect();
    orphaned.sort();
    orphaned.dedup();
    // Blobs whose cluster has no records: leftovers of a delete interrupted between
    // its records and its files — unless the manifest counts more clusters than the
    // database named, then they may be all that is left of lost ones.
    let named = (report.kept.len() + report.caches_dropped.len() + report.lost.len()) as u64;
    let missing = recorded.map_or(0, |m| m.clusters.saturating_sub(named));
    if missing == 0 {
        report.leftovers = orphaned;
    } else {
        report.lost_unnamed = missing.saturating_sub(orphaned.len() as u64);
        for id in orphaned {
            report.lost.push((
                id,
                "its records are gone from the database; only its cache blobs remain".into(),
            ));
        }
    }
    if let Ok(Some(model)) = old.get(MODEL_KEY) {
        fresh.insert(MODEL_KEY, model)?;
    }
    fresh.flush()?;
    drop((old, fresh));

    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    report.damaged_database = dir.join(format!("sled.damaged-{stamp}"));
    std::fs::rename(&sled_path, &report.damaged_database)?;
    std::fs::rename(&fresh_path, &sled_path)?;
    // The repaired database is now what was acknowledged.
    let db = open_sled(&sled_path)?;
    let found = scan_manifest(&db)?;
    drop(db);
    manifest::write(dir, &found, options.permissions.file_mode())?;
    // Opening collects the blobs of lost clusters and dropped caches.
    drop(Store::open_with(dir, options)?);
    Ok(report)
}

/// Copies cluster `id` from `old` to `fresh`; returns `Some(reason)` when its cache
/// index had to be dropped, and whether blob files of the cluster exist that its index
/// does not name (`names`: all blob files), i.e. its records are older than its last
/// write.
fn salvage(
    old: &sled::Db,
    fresh: &sled::Db,
    blobs: &BlobDir,
    names: &[String],
    id: &str,
) -> Result<(Option<String>, bool)> {
    let meta_key = key(id, Rec::Meta);
    let meta_value = old
        .get(&meta_key)?
        .ok_or_else(|| StoreError::NotFound(id.to_owned()))?;
    let meta: ClusterMeta = decode_json(Kind::Meta, &meta_key, &meta_value)?;
    let mut batch = sled::Batch::default();
    let mut tokens = 0u64;
    for item in old.scan_prefix(key(id, Rec::All(Seq::Segment))) {
        let (k, v) = item?;
        let segment =
            Segment::decode(unwrap(Kind::Segment, &k, &v)?).ok_or_else(|| StoreError::Corrupt {
                key: String::from_utf8_lossy(&k).into_owned(),
                reason: "malformed segment".into(),
            })?;
        tokens += segment.tokens.len() as u64;
        batch.insert(k, v);
    }
    if tokens != meta.tokens {
        return Err(StoreError::Corrupt {
            key: String::from_utf8_lossy(&meta_key).into_owned(),
            reason: format!("its token log holds {tokens} of its {} tokens", meta.tokens),
        });
    }
    for item in old.scan_prefix(key(id, Rec::All(Seq::Turn))) {
        let (k, v) = item?;
        unwrap(Kind::Turn, &k, &v)?;
        batch.insert(k, v);
    }
    let cache_key = key(id, Rec::Cache);
    let index = old
        .get(&cache_key)?
        .map(|v| decode_json::<CacheIndex>(Kind::Index, &cache_key, &v).map(|i| (i, v)));
    let named: std::collections::HashSet<&str> = match &index {
        Some(Ok((i, _))) => i.blobs().map(|b| b.name.as_str()).collect(),
        _ => Default::default(),
    };
    let prefix = blob_prefix(id);
    let older = names
        .iter()
        .any(|n| n.starts_with(&prefix) && !named.contains(n.as_str()));
    let dropped = match index {
        None => None,
        Some(Err(e)) => Some(e.to_string()),
        Some(Ok((index, v))) => match index.blobs().find_map(|b| blobs.read(b).err()) {
            Some(e) => Some(e.to_string()),
            None => {
                batch.insert(cache_key, v);
                None
            }
        },
    };
    batch.insert(meta_key, meta_value);
    fresh.apply_batch(batch)?;
    Ok((dropped, older))
}
