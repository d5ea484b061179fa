//! Which clusters' caches are in memory, and how a cache goes to and comes back from
//! the store.
//!
//! [`Residency`] is plain state with no actor code: the map cluster → [`ModelCache`],
//! a use clock for the least-recently-used budget (`--max-cache-bytes`), and the
//! shared status the API reads. It is also the one owner of *persistence assembly*:
//! the store writes a cache turns into ([`snapshot_write`], [`delta_write`]) and the
//! cache a cold cluster's stored records turn back into ([`Residency::bring_in`]).
//! The model actor decides *when* (per message and job); this module knows *how*.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use semkv_engine::cache::{codec, logits_codec, ModelCache};
use semkv_engine::Engine;

use crate::actors::SharedStatus;
use crate::cluster_id::ClusterId;
use crate::error::ServiceError;
use crate::store::{KvWrite, Segment, StoredCache};

use super::{Restore, RunError};

struct Resident {
    cache: ModelCache,
    last_used: u64,
}

/// The in-memory caches of the model actor (see the module documentation).
pub struct Residency {
    caches: HashMap<ClusterId, Resident>,
    /// Budget in bytes (0: unlimited).
    budget: u64,
    clock: u64,
    status: Arc<SharedStatus>,
}

/// How a cluster's cache got into memory for a run ([`Residency::bring_in`]).
#[derive(Debug)]
pub enum Arrival {
    /// It was in memory already, or the cluster is empty (a fresh cache).
    Resident,
    /// Restored from its stored records.
    Restored {
        /// Store read + decoding.
        load_time: Duration,
    },
    /// The stored records failed a check: an empty cache is in place and the run must
    /// first replay `segments` (the cluster's whole token log).
    Rebuild {
        reason: String,
        segments: Vec<Segment>,
        load_time: Duration,
    },
}

impl Residency {
    /// No caches; `budget` bytes at most (0: unlimited); residency is reported to
    /// `status`.
    pub fn new(budget: u64, status: Arc<SharedStatus>) -> Self {
        Self {
            caches: HashMap::new(),
            budget,
            clock: 0,
            status,
        }
    }

    /// Advances the use clock (once per scheduler step or cache event).
    pub fn tick(&mut self) {
        self.clock += 1;
    }

    /// Whether `cluster`'s cache is in memory.
    pub fn contains(&self, cluster: &str) -> bool {
        self.caches.contains_key(cluster)
    }

    /// `cluster`'s cache, if in memory.
    pub fn get(&self, cluster: &str) -> Option<&ModelCache> {
        self.caches.get(cluster).map(|r| &r.cache)
    }

    /// `cluster`'s cache for a step, marked as used now.
    pub fn use_mut(&mut self, cluster: &str) -> Option<&mut ModelCache> {
        let clock = self.clock;
        self.caches.get_mut(cluster).map(|r| {
            r.last_used = clock;
            &mut r.cache
        })
    }

    /// Puts `cache` in memory as `cluster`'s (replacing any).
    pub fn insert(&mut self, cluster: &ClusterId, cache: ModelCache) {
        self.status
            .set_resident(cluster.as_str(), Some(cache.nbytes() as u64));
        self.caches.insert(
            cluster.clone(),
            Resident {
                cache,
                last_used: self.clock,
            },
        );
    }

    /// Drops `cluster`'s cache from memory; the bytes freed (0 if it was not there).
    pub fn remove(&mut self, cluster: &str) -> u64 {
        self.status.set_resident(cluster, None);
        self.caches
            .remove(cluster)
            .map_or(0, |r| r.cache.nbytes() as u64)
    }

    /// Reports the current size of `cluster`'s cache (after it grew).
    pub fn report(&self, cluster: &str) {
        if let Some(r) = self.caches.get(cluster) {
            self.status
                .set_resident(cluster, Some(r.cache.nbytes() as u64));
        }
    }

    /// Bytes of every cache in memory.
    pub fn total_bytes(&self) -> u64 {
        self.caches.values().map(|r| r.cache.nbytes() as u64).sum()
    }

    /// Drops least recently used caches while over the budget, never `keep` or a
    /// cluster that is `busy`; returns the clusters dropped, oldest first. Their state
    /// is already in the store.
    pub fn enforce_budget(
        &mut self,
        keep: Option<&str>,
        busy: impl Fn(&str) -> bool,
    ) -> Vec<ClusterId> {
        let mut evicted = Vec::new();
        if self.budget == 0 {
            return evicted;
        }
        loop {
            let total = self.total_bytes();
            if total <= self.budget {
                return evicted;
            }
            let victim = self
                .caches
                .iter()
                .filter(|(c, _)| Some(c.as_str()) != keep && !busy(c.as_str()))
                .min_by_key(|(_, r)| r.last_used)
                .map(|(c, _)| c.clone());
            let Some(victim) = victim else {
                return evicted;
            };
            let freed = self.remove(victim.as_str());
            tracing::info!(
                cluster = %victim,
                freed,
                total,
                budget = self.budget,
                "evicted cache to disk (LRU)"
            );
            evicted.push(victim);
        }
    }

    /// Makes sure `cluster`'s cache is in memory at `expected` tokens before a run.
    ///
    /// A resident cache out of step with the cluster (and not `busy`) is dropped and
    /// brought back. A cold cluster needs its stored records (`restore`), else
    /// [`RunError::NeedsRestore`]; records that fail a check mean a rebuild from the
    /// token log, or `DATA_LOSS` when the log itself is short.
    pub fn bring_in(
        &mut self,
        engine: &Engine,
        cluster: &ClusterId,
        expected: usize,
        busy: bool,
        restore: Option<Restore>,
    ) -> Result<Arrival, RunError> {
        if let Some(cache) = self.get(cluster.as_str()) {
            if cache.len() == expected || busy {
                return Ok(Arrival::Resident);
            }
            tracing::warn!(
                cluster = %cluster,
                cached = cache.len(),
                expected,
                "in-memory cache out of step with the cluster; reloading"
            );
            self.remove(cluster.as_str());
        }
        if expected == 0 {
            self.insert(cluster, engine.new_cache());
            return Ok(Arrival::Resident);
        }
        let Some(restore) = restore else {
            return Err(RunError::NeedsRestore);
        };
        let started = Instant::now();
        match restore_cache(engine, &restore.cache, expected) {
            Ok(cache) => {
                self.insert(cluster, cache);
                Ok(Arrival::Restored {
                    load_time: restore.read_time + started.elapsed(),
                })
            }
            Err(reason) => {
                let stored: usize = restore.segments.iter().map(|s| s.tokens.len()).sum();
                if stored != expected {
                    return Err(RunError::Service(ServiceError::DataLoss(format!(
                        "cluster {:?}: stored cache unusable ({reason}) and its token log holds {stored} of {expected} tokens",
                        cluster.as_str()
                    ))));
                }
                tracing::warn!(
                    cluster = %cluster,
                    reason,
                    tokens = expected,
                    "stored cache failed a check; rebuilding from the token log"
                );
                self.insert(cluster, engine.new_cache());
                Ok(Arrival::Rebuild {
                    reason,
                    segments: restore.segments,
                    load_time: restore.read_time + started.elapsed(),
                })
            }
        }
    }
}

fn internal(e: codec::CodecError) -> ServiceError {
    ServiceError::Internal(e.to_string())
}

/// The store write replacing a cluster's stored cache with `cache`.
pub fn snapshot_write(engine: &Engine, cache: &ModelCache) -> Result<KvWrite, ServiceError> {
    Ok(KvWrite::Snapshot {
        kv: engine.save_cache(cache).map_err(internal)?,
        next_logits: logits_codec::encode(cache, engine.fingerprint()).map_err(internal)?,
    })
}

/// The store write adding what `cache` gained after its first `from` tokens.
pub fn delta_write(
    engine: &Engine,
    cache: &ModelCache,
    from: usize,
) -> Result<KvWrite, ServiceError> {
    let fingerprint = engine.fingerprint();
    Ok(KvWrite::Delta {
        kv: codec::encode_delta(cache, from, fingerprint).map_err(internal)?,
        next_logits: logits_codec::encode(cache, fingerprint).map_err(internal)?,
    })
}

/// Rebuilds a cache from its stored records; the error says why they can't be used.
fn restore_cache(
    engine: &Engine,
    stored: &StoredCache,
    expected: usize,
) -> Result<ModelCache, String> {
    if let Some(reason) = &stored.damaged {
        return Err(reason.clone());
    }
    let fingerprint = engine.fingerprint();
    let mut cache = match &stored.base {
        Some(bytes) => engine
            .load_cache(bytes)
            .map_err(|e| format!("base snapshot: {e}"))?,
        None => engine.new_cache(),
    };
    for (i, delta) in stored.deltas.iter().enumerate() {
        codec::apply_delta(&mut cache, delta, fingerprint)
            .map_err(|e| format!("delta {i}: {e}"))?;
    }
    if cache.len() != expected {
        return Err(format!(
            "stored cache holds {} tokens, the cluster {expected}",
            cache.len()
        ));
    }
    match &stored.next_logits {
        Some(bytes) => logits_codec::attach(&mut cache, bytes, fingerprint)
            .map_err(|e| format!("next-token logits: {e}"))?,
        // Every cache write stores them; a cache written by an earlier build has none
        // and is rebuilt once from its segments.
        None if expected > 0 => return Err("no next-token logits stored".into()),
        None => {}
    }
    Ok(cache)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use semkv_engine::device::DeviceChoice;
    use semkv_engine::model::weights::WeightFormat;
    use semkv_engine::LoadOptions;

    use super::*;

    /// The tiny random Gemma 3 checkpoint of the repository's test fixtures (real
    /// loading code, real MLX, CPU).
    fn tiny() -> Engine {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-gemma3-bf16");
        let options = LoadOptions {
            device: DeviceChoice::Cpu,
            weights: WeightFormat::Native,
        };
        Engine::load_dir(&dir, &options).expect("load the tiny model")
    }

    fn id(s: &str) -> ClusterId {
        ClusterId::parse(s).unwrap()
    }

    fn cache_of(engine: &Engine, tokens: &[u32]) -> ModelCache {
        let mut cache = engine.new_cache();
        engine.append(&mut cache, tokens, 16).unwrap();
        cache
    }

    fn tokens(n: u32, salt: u32) -> Vec<u32> {
        (0..n).map(|i| 1 + (i * 7 + salt) % 200).collect()
    }

    fn stored(writes: &[KvWrite]) -> StoredCache {
        let mut out = StoredCache::default();
        for w in writes {
            match w {
                KvWrite::Snapshot { kv, next_logits } => {
                    out.base = Some(kv.clone());
                    out.deltas.clear();
                    out.next_logits = next_logits.clone();
                }
                KvWrite::Delta { kv, next_logits } => {
                    out.deltas.push(kv.clone());
                    out.next_logits = next_logits.clone();
                }
                KvWrite::None => {}
            }
        }
        out
    }

    fn restore_of(cache: StoredCache, segments: Vec<Segment>) -> Restore {
        Restore {
            cache,
            segments,
            read_time: Duration::ZERO,
        }
    }

    #[test]
    fn snapshot_then_deltas_restore_to_the_same_cache() {
        let e = tiny();
        let (a, b) = (tokens(20, 1), tokens(9, 2));
        let mut cache = cache_of(&e, &a);
        let snapshot = snapshot_write(&e, &cache).unwrap();
        e.append(&mut cache, &b, 16).unwrap();
        let delta = delta_write(&e, &cache, a.len()).unwrap();

        let mut r = Residency::new(0, Arc::new(SharedStatus::default()));
        let c = id("c");
        let arrival = r
            .bring_in(
                &e,
                &c,
                29,
                false,
                Some(restore_of(stored(&[snapshot, delta]), vec![])),
            )
            .unwrap();
        assert!(matches!(arrival, Arrival::Restored { .. }), "{arrival:?}");
        let restored = r.get("c").unwrap();
        assert_eq!(restored.len(), 29);
        assert!(restored.next_logits().is_some());
        // The same continuation as the cache that was never stored.
        let want = e
            .generate(&mut cache, &[3], &Default::default(), |_| true)
            .unwrap();
        let got = e
            .generate(r.use_mut("c").unwrap(), &[3], &Default::default(), |_| true)
            .unwrap();
        assert_eq!(got.tokens, want.tokens);
    }

    #[test]
    fn cold_cluster_needs_its_records_and_empty_one_does_not() {
        let e = tiny();
        let mut r = Residency::new(0, Arc::new(SharedStatus::default()));
        assert!(matches!(
            r.bring_in(&e, &id("cold"), 5, false, None),
            Err(RunError::NeedsRestore)
        ));
        assert!(matches!(
            r.bring_in(&e, &id("new"), 0, false, None),
            Ok(Arrival::Resident)
        ));
        assert_eq!(r.get("new").unwrap().len(), 0);
    }

    #[test]
    fn damaged_records_rebuild_from_a_complete_log_else_data_loss() {
        let e = tiny();
        let t = tokens(12, 3);
        let mut snapshot = snapshot_write(&e, &cache_of(&e, &t)).unwrap();
        if let KvWrite::Snapshot { kv, .. } = &mut snapshot {
            let mid = kv.len() / 2;
            kv[mid] ^= 0x40;
        }
        let segment = Segment {
            tokens: t.clone(),
            chunk: 16,
        };
        let mut r = Residency::new(0, Arc::new(SharedStatus::default()));
        let arrival = r
            .bring_in(
                &e,
                &id("c"),
                12,
                false,
                Some(restore_of(stored(&[snapshot.clone()]), vec![segment])),
            )
            .unwrap();
        let Arrival::Rebuild {
            reason, segments, ..
        } = arrival
        else {
            panic!("expected a rebuild, got {arrival:?}");
        };
        assert!(reason.contains("base snapshot"), "{reason}");
        assert_eq!(segments[0].tokens, t);
        assert_eq!(
            r.get("c").unwrap().len(),
            0,
            "an empty cache waits for the replay"
        );

        let short = Segment {
            tokens: t[..5].to_vec(),
            chunk: 16,
        };
        let err = r
            .bring_in(
                &e,
                &id("d"),
                12,
                false,
                Some(restore_of(stored(&[snapshot]), vec![short])),
            )
            .unwrap_err();
        assert!(
            matches!(&err, RunError::Service(ServiceError::DataLoss(m)) if m.contains("5 of 12")),
            "{err:?}"
        );
        assert!(!r.contains("d"));
    }

    #[test]
    fn out_of_step_cache_is_reloaded_unless_busy() {
        let e = tiny();
        let mut r = Residency::new(0, Arc::new(SharedStatus::default()));
        let c = id("c");
        r.insert(&c, cache_of(&e, &tokens(4, 1)));
        assert!(matches!(
            r.bring_in(&e, &c, 6, true, None),
            Ok(Arrival::Resident)
        ));
        assert!(matches!(
            r.bring_in(&e, &c, 6, false, None),
            Err(RunError::NeedsRestore)
        ));
        assert!(!r.contains("c"));
    }

    #[test]
    fn budget_drops_least_recently_used_idle_caches() {
        let e = tiny();
        let status = Arc::new(SharedStatus::default());
        let one = cache_of(&e, &tokens(8, 1)).nbytes() as u64;
        let mut r = Residency::new(2 * one, status.clone());
        for name in ["a", "b", "c"] {
            r.tick();
            r.insert(&id(name), cache_of(&e, &tokens(8, 1)));
        }
        // "a" is the oldest but busy; "b" goes.
        assert_eq!(r.enforce_budget(None, |c| c == "a"), vec![id("b")]);
        assert!(status.resident_bytes("b").is_none());
        r.tick();
        r.use_mut("a");
        r.insert(&id("d"), cache_of(&e, &tokens(8, 1)));
        // Now "c" is the least recently used; "d" is kept explicitly.
        assert_eq!(r.enforce_budget(Some("d"), |_| false), vec![id("c")]);
        assert_eq!(r.total_bytes(), 2 * one);
        assert_eq!(status.resident_totals(), (2, 2 * one));
        assert_eq!(r.remove("a"), one);
        assert_eq!(r.remove("a"), 0);
    }
}
