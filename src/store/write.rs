//! Writes: creating, committing, deleting and copying clusters — blobs first, then one
//! sled write with the commit count, then the manifest (see the module documentation
//! of `store`).

use std::collections::HashSet;
use std::sync::atomic::Ordering;

use semkv_engine::generate::chat::Turn;

use super::keys::{self, key, Rec, Seq, COMMITS_KEY};
use super::manifest::{self, id_digest, Manifest};
use super::{
    blocking, encode_json, space, wrap, BlobRef, CacheIndex, ClusterMeta, Kind, KvWrite, Result,
    Segment, Store, StoreError,
};

impl Store {
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
        self.blob_bytes_freed(freed);
    }
}

/// Runs `write` in a sled transaction unless `key` exists ([`StoreError::Exists`]
/// naming `id`).
pub(super) fn insert_new(
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
