//! Batched decode in the model actor: the jobs that decode together share a live
//! [`BatchCache`] while the set of decoding jobs stays the same; their own cache slots
//! hold placeholders meanwhile, and every member gets its cache back (`dissolve`)
//! when the set changes, a member finishes or fails, or a snapshot or fork reads a
//! member's cluster. Nothing else touches a busy cluster's cache.

use std::collections::HashMap;

use crate::error::ServiceError;
use crate::scheduler::JobId;
use semkv_engine::cache::batch_cache::BatchCache;
use semkv_engine::cache::ModelCache;
use semkv_engine::generate::{Generation, Step};
use semkv_engine::EngineError;

use super::ModelState;

/// The decode caches of the jobs decoding together.
pub(super) struct LiveBatch {
    pub(super) members: Vec<JobId>,
    pub(super) cache: BatchCache,
}

impl ModelState {
    /// One decode step for several jobs (distinct clusters) in one forward pass, on
    /// the live batch of exactly these jobs (formed now if needed).
    pub(super) fn decode_batch(&mut self, ids: Vec<JobId>) {
        if self.batch.as_ref().is_some_and(|b| b.members != ids) {
            self.dissolve_batch();
        }
        if self.batch.is_none() {
            if let Err(e) = self.join_batch(&ids) {
                tracing::error!(error = %e, "could not form a decode batch");
                for id in ids {
                    self.fail(id, ServiceError::Internal(e.to_string()));
                }
                return;
            }
        }
        let live = self.batch.as_mut().expect("formed above");
        let (result, keep) = {
            let mut by_id: HashMap<JobId, &mut Generation> = self
                .jobs
                .iter_mut()
                .filter(|(id, _)| live.members.contains(id))
                .filter_map(|(id, a)| a.job.generation_mut().map(|g| (*id, g)))
                .collect();
            let mut generations: Vec<&mut Generation> = live
                .members
                .iter()
                .filter_map(|id| by_id.remove(id))
                .collect();
            if generations.len() != live.members.len() {
                (
                    Err(EngineError::Internal(
                        "a job of the decode batch stopped generating".into(),
                    )),
                    false,
                )
            } else {
                let result = self
                    .engine
                    .decode_batch_cache(&mut generations, &mut live.cache);
                let keep = result.as_ref().is_ok_and(|steps| {
                    steps
                        .iter()
                        .all(|s| matches!(s, Step::Token(_) | Step::FedFirst))
                        && generations.iter().all(|g| g.is_decoding())
                });
                (result, keep)
            }
        };
        let members = live.members.clone();
        // A member that finished (or will finish in its next step) needs its own
        // cache back: give every member its cache; the rest re-form next tick.
        if !keep {
            self.dissolve_batch();
        }
        let steps = match result {
            Ok(steps) => steps,
            Err(e) => {
                tracing::error!(error = %e, "batched decode step failed");
                for id in members {
                    self.fail(id, ServiceError::Internal(e.to_string()));
                }
                return;
            }
        };
        let mut outcomes = Vec::with_capacity(members.len());
        for (id, step) in members.into_iter().zip(steps) {
            let Some(active) = self.jobs.get_mut(&id) else {
                continue;
            };
            let Some(cache) = self.residency.use_mut(active.job.cluster.as_str()) else {
                outcomes.push((
                    id,
                    Err(EngineError::Internal("cluster cache vanished".into())),
                ));
                continue;
            };
            outcomes.push((id, active.job.decoded(&self.engine, cache, step)));
        }
        for (id, progress) in outcomes {
            self.after_step(id, progress);
        }
    }

    /// Moves the decode caches of `ids` into a new live batch.
    fn join_batch(&mut self, ids: &[JobId]) -> Result<(), String> {
        let mut taken = Vec::with_capacity(ids.len());
        for &id in ids {
            let target = self.jobs.get_mut(&id).and_then(|active| {
                let cache = self.residency.use_mut(active.job.cluster.as_str())?;
                active.job.decode_target(cache)
            });
            match target {
                Some(slot) => taken.push(std::mem::replace(slot, ModelCache::new(Vec::new()))),
                None => break,
            }
        }
        let joined = if taken.len() == ids.len() {
            BatchCache::join(&taken.iter().collect::<Vec<_>>()).map_err(|e| e.to_string())
        } else {
            Err("a job of the batch has no decode cache".into())
        };
        match joined {
            Ok(cache) => {
                self.batch = Some(LiveBatch {
                    members: ids.to_vec(),
                    cache,
                });
                Ok(())
            }
            Err(e) => {
                self.put_back(&ids[..taken.len()], taken);
                Err(e)
            }
        }
    }

    /// Gives every member of the live batch its cache back.
    pub(super) fn dissolve_batch(&mut self) {
        let Some(live) = self.batch.take() else {
            return;
        };
        match live.cache.split() {
            Ok(rows) => self.put_back(&live.members, rows),
            Err(e) => {
                tracing::error!(error = %e, "could not split the decode batch");
                for id in live.members {
                    self.fail(id, ServiceError::Internal(e.to_string()));
                }
            }
        }
    }

    fn put_back(&mut self, ids: &[JobId], caches: Vec<ModelCache>) {
        for (id, row) in ids.iter().zip(caches) {
            let Some(active) = self.jobs.get_mut(id) else {
                continue;
            };
            let Some(cache) = self.residency.use_mut(active.job.cluster.as_str()) else {
                continue;
            };
            if let Some(slot) = active.job.decode_target(cache) {
                *slot = row;
            }
        }
    }

    /// Dissolves the live batch if one of its members works on `cluster`.
    pub(super) fn dissolve_if_batched(&mut self, cluster: &str) {
        let batched = self.batch.as_ref().is_some_and(|b| {
            b.members.iter().any(|id| {
                self.jobs
                    .get(id)
                    .is_some_and(|a| a.job.cluster.as_str() == cluster)
            })
        });
        if batched {
            self.dissolve_batch();
        }
    }

    pub(super) fn dissolve_if_member(&mut self, id: JobId) {
        if self.batch.as_ref().is_some_and(|b| b.members.contains(&id)) {
            self.dissolve_batch();
        }
    }
}
