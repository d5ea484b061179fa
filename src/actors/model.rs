//! The model actor: the one place where MLX runs.
//!
//! It owns the [`Engine`], every in-memory cluster cache (MLX arrays stay on this
//! actor's thread) and the fair [`Scheduler`]. Work arrives as [`ModelMsg::Run`]; the
//! actor advances the scheduled job(s) by one step per [`ModelMsg::Tick`] it sends
//! itself, so new requests, cancellations and evictions are handled between any two
//! steps. Decode steps of several clusters run as one batched pass (`model/batching.rs`).
//!
//! ractor runs actors as tokio tasks, which may move between worker threads; MLX
//! evaluation is not safe from several threads, so [`spawn`] gives this actor its own
//! OS thread with a single-threaded runtime, where it stays for its whole life.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::sync::mpsc::UnboundedSender;

use crate::engine::cache::ModelCache;
use crate::engine::device::DeviceInfo;
use crate::engine::generate::GenerationOutput;
use crate::engine::tokenizer::TextTokenizer;
use crate::engine::{cache_codec, logits_codec, Engine, EngineError};
use crate::error::ServiceError;
use crate::scheduler::{JobId, Scheduler, SchedulerConfig, StepRecord};
use crate::store::{KvWrite, Segment, StoredCache};

use super::work::{Job, Op, Progress};

mod batching;
use super::{GenEvent, LoadReport, SharedStatus};

/// Loads the engine on the model thread.
pub type EngineLoader = Box<dyn FnOnce() -> Result<Engine, EngineError> + Send>;

/// Settings of the model actor.
#[derive(Debug, Clone)]
pub struct ModelSettings {
    /// Budget for in-memory caches (0: unlimited); past it, least recently used
    /// clusters are dropped from memory (their state is already on disk).
    pub max_cache_bytes: u64,
    /// Tokens per prefill step.
    pub prefill_chunk: usize,
    pub scheduler: SchedulerConfig,
}

/// Stored state to bring a cold cluster back.
#[derive(Debug, Default)]
pub struct Restore {
    pub cache: StoredCache,
    pub segments: Vec<Segment>,
    /// Time spent reading these records from the store.
    pub read_time: Duration,
}

/// Why a run was refused.
#[derive(Debug)]
pub enum RunError {
    /// The cluster's cache is not in memory: send the run again with a [`Restore`].
    NeedsRestore,
    Service(ServiceError),
}

/// The result of a run.
#[derive(Debug)]
pub struct OpOutcome {
    /// Token segments added to the cluster's cache (to be stored).
    pub segments: Vec<Segment>,
    /// How the stored cache must change.
    pub kv: KvWrite,
    pub total_tokens: usize,
    pub output: Option<GenerationOutput>,
    pub load: LoadReport,
    /// From submission to the first step.
    pub queue_time: Duration,
    /// From the first step to the end.
    pub model_time: Duration,
}

/// A request to run an operation on a cluster's cache.
pub struct RunRequest {
    pub cluster: String,
    pub op: Op,
    /// Tokens the cluster's cache must hold (from its metadata).
    pub expected_tokens: usize,
    pub restore: Option<Restore>,
    /// Store a full snapshot instead of a delta (compaction).
    pub snapshot: bool,
    pub events: Option<UnboundedSender<GenEvent>>,
    pub reply: RpcReplyPort<Result<OpOutcome, RunError>>,
}

/// Facts about the loaded engine.
#[derive(Clone)]
pub struct EngineInfo {
    pub fingerprint: String,
    pub device: DeviceInfo,
    pub tokenizer: TextTokenizer,
}

/// The scheduler's record, for the trace RPC.
#[derive(Debug, Clone, Default)]
pub struct TraceSnapshot {
    pub steps: Vec<StepRecord>,
    pub decode_steps: HashMap<String, u64>,
}

/// Messages of the model actor.
pub enum ModelMsg {
    Run(Box<RunRequest>),
    /// Take the next scheduled step (sent by the actor to itself).
    Tick,
    /// Drop a cluster's cache from memory; replies with the bytes freed.
    Evict {
        cluster: String,
        reply: RpcReplyPort<u64>,
    },
    /// Forget everything about a cluster (deleted, or its actor restarted): cancel its
    /// jobs and drop its cache.
    Forget {
        cluster: String,
    },
    /// A full snapshot of a cluster's cache if it is in memory and holds
    /// `expected_tokens`.
    Snapshot {
        cluster: String,
        expected_tokens: usize,
        /// A [`KvWrite::Snapshot`], or `None` when the cache is not in memory at
        /// `expected_tokens` tokens.
        reply: RpcReplyPort<Result<Option<KvWrite>, ServiceError>>,
    },
    /// Give cluster `to` a copy of `from`'s in-memory cache (fork).
    CopyCache {
        from: String,
        to: String,
    },
    Info {
        reply: RpcReplyPort<EngineInfo>,
    },
    Trace {
        limit: usize,
        reply: RpcReplyPort<TraceSnapshot>,
    },
}

/// The model actor (see the module documentation).
pub struct ModelActor;

/// What the model actor starts from.
pub struct ModelArgs {
    pub loader: EngineLoader,
    pub settings: ModelSettings,
    pub status: Arc<SharedStatus>,
}

struct Resident {
    cache: ModelCache,
    last_used: u64,
}

struct ActiveJob {
    job: Job,
    reply: Option<RpcReplyPort<Result<OpOutcome, RunError>>>,
}

/// The model actor's state.
pub struct ModelState {
    engine: Engine,
    settings: ModelSettings,
    status: Arc<SharedStatus>,
    caches: HashMap<String, Resident>,
    jobs: HashMap<JobId, ActiveJob>,
    scheduler: Scheduler,
    next_job: JobId,
    clock: u64,
    tick_pending: bool,
    /// Decode caches of the jobs decoding together, stacked while the set of
    /// decoding jobs stays the same (their own cache slots hold placeholders).
    batch: Option<batching::LiveBatch>,
}

/// Starts the model actor on its own OS thread; the engine is loaded there.
pub async fn spawn(
    args: ModelArgs,
) -> Result<(ActorRef<ModelMsg>, std::thread::JoinHandle<()>), ServiceError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let thread = std::thread::Builder::new()
        .name("semkv-model".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    let _ = tx.send(Err(ServiceError::Internal(e.to_string())));
                    return;
                }
            };
            runtime.block_on(async move {
                match Actor::spawn(Some("model".into()), ModelActor, args).await {
                    Ok((actor, handle)) => {
                        let _ = tx.send(Ok(actor));
                        let _ = handle.await;
                    }
                    Err(e) => {
                        let _ = tx.send(Err(ServiceError::Unavailable(format!(
                            "the model failed to load: {e}"
                        ))));
                    }
                }
            });
        })
        .map_err(|e| ServiceError::Internal(e.to_string()))?;
    let actor = rx
        .await
        .map_err(|_| ServiceError::Internal("model thread ended during start".into()))??;
    Ok((actor, thread))
}

impl Actor for ModelActor {
    type Msg = ModelMsg;
    type State = ModelState;
    type Arguments = ModelArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<ModelMsg>,
        args: ModelArgs,
    ) -> Result<ModelState, ActorProcessingErr> {
        let started = Instant::now();
        let engine = (args.loader)()?;
        tracing::info!(
            fingerprint = engine.fingerprint(),
            device = %engine.device().device,
            load_ms = started.elapsed().as_millis() as u64,
            "model loaded"
        );
        let scheduler = Scheduler::new(args.settings.scheduler.clone());
        Ok(ModelState {
            engine,
            settings: args.settings,
            status: args.status,
            caches: HashMap::new(),
            jobs: HashMap::new(),
            scheduler,
            next_job: 0,
            clock: 0,
            tick_pending: false,
            batch: None,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<ModelMsg>,
        message: ModelMsg,
        state: &mut ModelState,
    ) -> Result<(), ActorProcessingErr> {
        // Reading a batch member's cache needs it back from the batch. (Other messages
        // leave busy clusters' caches alone; failing a member dissolves the batch.)
        if let ModelMsg::Snapshot { cluster, .. } | ModelMsg::CopyCache { from: cluster, .. } =
            &message
        {
            state.dissolve_if_batched(cluster);
        }
        match message {
            ModelMsg::Run(request) => state.submit(*request),
            ModelMsg::Tick => {
                state.tick_pending = false;
                state.tick();
            }
            ModelMsg::Evict { cluster, reply } => {
                let freed = if state.busy(&cluster) {
                    0
                } else {
                    state.drop_cache(&cluster)
                };
                let _ = reply.send(freed);
            }
            ModelMsg::Forget { cluster } => state.forget(&cluster),
            ModelMsg::Snapshot {
                cluster,
                expected_tokens,
                reply,
            } => {
                let result = match state.caches.get(&cluster) {
                    Some(r) if r.cache.len() == expected_tokens => {
                        state.snapshot_write(&r.cache).map(Some)
                    }
                    _ => Ok(None),
                };
                let _ = reply.send(result);
            }
            ModelMsg::CopyCache { from, to } => {
                if let Some(r) = state.caches.get(&from) {
                    let cache = r.cache.fork();
                    state.clock += 1;
                    state.insert_cache(&to, cache);
                    state.enforce_budget(None);
                }
            }
            ModelMsg::Info { reply } => {
                let _ = reply.send(EngineInfo {
                    fingerprint: state.engine.fingerprint().to_owned(),
                    device: state.engine.device().clone(),
                    tokenizer: state.engine.tokenizer().clone(),
                });
            }
            ModelMsg::Trace { limit, reply } => {
                let trace = state.scheduler.trace();
                let skip = if limit == 0 {
                    0
                } else {
                    trace.len().saturating_sub(limit)
                };
                let _ = reply.send(TraceSnapshot {
                    steps: trace.skip(skip).cloned().collect(),
                    decode_steps: state.scheduler.decode_steps().clone(),
                });
            }
        }
        state.status.set_queue_len(state.scheduler.len());
        if !state.jobs.is_empty() && !state.tick_pending {
            state.tick_pending = true;
            myself.send_message(ModelMsg::Tick)?;
        }
        Ok(())
    }
}

impl ModelState {
    fn busy(&self, cluster: &str) -> bool {
        self.jobs.values().any(|j| j.job.cluster == cluster)
    }

    fn insert_cache(&mut self, cluster: &str, cache: ModelCache) {
        self.status
            .set_resident(cluster, Some(cache.nbytes() as u64));
        self.caches.insert(
            cluster.to_owned(),
            Resident {
                cache,
                last_used: self.clock,
            },
        );
    }

    fn drop_cache(&mut self, cluster: &str) -> u64 {
        self.status.set_resident(cluster, None);
        self.caches
            .remove(cluster)
            .map_or(0, |r| r.cache.nbytes() as u64)
    }

    fn forget(&mut self, cluster: &str) {
        let ids: Vec<JobId> = self
            .jobs
            .iter()
            .filter(|(_, j)| j.job.cluster == cluster)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            self.fail(
                id,
                ServiceError::Unavailable(format!(
                    "cluster {cluster:?} was reset while this request ran; retry"
                )),
            );
        }
        self.drop_cache(cluster);
    }

    /// The store write replacing a cluster's stored cache with `cache`.
    fn snapshot_write(&self, cache: &ModelCache) -> Result<KvWrite, ServiceError> {
        let internal = |e: cache_codec::CodecError| ServiceError::Internal(e.to_string());
        Ok(KvWrite::Snapshot {
            kv: self.engine.save_cache(cache).map_err(internal)?,
            next_logits: logits_codec::encode(cache, self.engine.fingerprint())
                .map_err(internal)?,
        })
    }

    /// The store write adding what `cache` gained after its first `from` tokens.
    fn delta_write(&self, cache: &ModelCache, from: usize) -> Result<KvWrite, ServiceError> {
        let internal = |e: cache_codec::CodecError| ServiceError::Internal(e.to_string());
        let fingerprint = self.engine.fingerprint();
        Ok(KvWrite::Delta {
            kv: cache_codec::encode_delta(cache, from, fingerprint).map_err(internal)?,
            next_logits: logits_codec::encode(cache, fingerprint).map_err(internal)?,
        })
    }

    /// Rebuilds a cache from its stored blobs; the error says why they can't be used.
    fn restore(&self, stored: &StoredCache, expected: usize) -> Result<ModelCache, String> {
        if let Some(reason) = &stored.damaged {
            return Err(reason.clone());
        }
        let fingerprint = self.engine.fingerprint();
        let mut cache = match &stored.base {
            Some(bytes) => self
                .engine
                .load_cache(bytes)
                .map_err(|e| format!("base snapshot: {e}"))?,
            None => self.engine.new_cache(),
        };
        for (i, delta) in stored.deltas.iter().enumerate() {
            cache_codec::apply_delta(&mut cache, delta, fingerprint)
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
            // Every cache write stores them; a cache written by an earlier build has
            // none and is rebuilt once from its segments.
            None if expected > 0 => return Err("no next-token logits stored".into()),
            None => {}
        }
        Ok(cache)
    }

    fn submit(&mut self, request: RunRequest) {
        let RunRequest {
            cluster,
            op,
            expected_tokens,
            restore,
            snapshot,
            events,
            reply,
        } = request;
        if self.scheduler.len() >= self.scheduler.config().capacity {
            let _ = reply.send(Err(RunError::Service(ServiceError::Unavailable(format!(
                "the model queue is full ({} requests); retry later",
                self.scheduler.config().capacity
            )))));
            return;
        }
        if let Some(r) = self.caches.get(&cluster) {
            if r.cache.len() != expected_tokens && !self.busy(&cluster) {
                tracing::warn!(
                    cluster,
                    cached = r.cache.len(),
                    expected_tokens,
                    "in-memory cache out of step with the cluster; reloading"
                );
                self.drop_cache(&cluster);
            }
        }
        let mut job = Job::new(
            &cluster,
            op,
            expected_tokens,
            self.settings.prefill_chunk,
            events,
        );
        job.snapshot = snapshot;
        if !self.caches.contains_key(&cluster) {
            if expected_tokens == 0 {
                let cache = self.engine.new_cache();
                self.insert_cache(&cluster, cache);
            } else {
                let Some(restore) = restore else {
                    let _ = reply.send(Err(RunError::NeedsRestore));
                    return;
                };
                let started = Instant::now();
                job.load.loaded_from_disk = true;
                match self.restore(&restore.cache, expected_tokens) {
                    Ok(cache) => self.insert_cache(&cluster, cache),
                    Err(reason) => {
                        let stored: usize = restore.segments.iter().map(|s| s.tokens.len()).sum();
                        if stored != expected_tokens {
                            let _ = reply.send(Err(RunError::Service(ServiceError::DataLoss(
                                format!(
                                    "cluster {cluster:?}: stored cache unusable ({reason}) and its token log holds {stored} of {expected_tokens} tokens"
                                ),
                            ))));
                            return;
                        }
                        tracing::warn!(
                            cluster,
                            reason,
                            tokens = expected_tokens,
                            "stored cache failed a check; rebuilding from the token log"
                        );
                        job.replay_first(&restore.segments);
                        job.load.rebuilt_tokens = expected_tokens;
                        job.load.rebuild_reason = Some(reason);
                        job.snapshot = true;
                        let cache = self.engine.new_cache();
                        self.insert_cache(&cluster, cache);
                    }
                }
                job.load.load_time = restore.read_time + started.elapsed();
            }
        }
        let id = self.next_job;
        self.next_job += 1;
        if let Err(e) = self.scheduler.submit(&cluster, id) {
            let _ = reply.send(Err(RunError::Service(ServiceError::Unavailable(
                e.to_string(),
            ))));
            return;
        }
        self.jobs.insert(
            id,
            ActiveJob {
                job,
                reply: Some(reply),
            },
        );
    }

    /// Takes one scheduled step.
    fn tick(&mut self) {
        // Clients that went away: cancel their generations before anything else.
        let abandoned: Vec<JobId> = self
            .jobs
            .iter()
            .filter(|(_, j)| j.job.abandoned())
            .map(|(id, _)| *id)
            .collect();
        for id in abandoned {
            if !self.jobs[&id].job.in_place() {
                self.fail(id, ServiceError::Unavailable("the client went away".into()));
            }
            // In-place jobs finish their cancellation in their next step, which
            // leaves the cache consistent with what is then stored.
        }
        let jobs = &self.jobs;
        let batch = self.scheduler.next_batch(
            |id| jobs[&id].job.next_cost(),
            |id| jobs[&id].job.can_batch_decode(),
        );
        self.clock += 1;
        match batch[..] {
            [] => {}
            [id] => self.step_one(id),
            _ => self.decode_batch(batch),
        }
    }

    fn step_one(&mut self, id: JobId) {
        self.dissolve_if_member(id);
        let active = self.jobs.get_mut(&id).expect("scheduled job exists");
        let Some(resident) = self.caches.get_mut(&active.job.cluster) else {
            self.fail(id, ServiceError::Internal("cluster cache vanished".into()));
            return;
        };
        resident.last_used = self.clock;
        let progress = active.job.step(&self.engine, &mut resident.cache);
        self.after_step(id, progress);
    }

    fn after_step(&mut self, id: JobId, progress: Result<Progress, EngineError>) {
        match progress {
            Ok(Progress::Continue) => {}
            Ok(Progress::Done) => self.complete(id),
            Err(e) => {
                tracing::error!(error = %e, "model step failed");
                self.fail(id, ServiceError::Internal(e.to_string()));
            }
        }
    }

    /// Ends a job with an error; an in-place job's cache is dropped, since it may be
    /// partway through the operation (the store still has the state before it).
    fn fail(&mut self, id: JobId, error: ServiceError) {
        self.dissolve_if_member(id);
        self.scheduler.remove(id);
        if let Some(mut active) = self.jobs.remove(&id) {
            if active.job.in_place() || active.job.load.rebuild_reason.is_some() {
                let cluster = active.job.cluster.clone();
                self.drop_cache(&cluster);
            }
            if let Some(reply) = active.reply.take() {
                let _ = reply.send(Err(RunError::Service(error)));
            }
        }
    }

    fn complete(&mut self, id: JobId) {
        self.dissolve_if_member(id);
        self.scheduler.remove(id);
        let Some(mut active) = self.jobs.remove(&id) else {
            return;
        };
        let job = &mut active.job;
        let cluster = job.cluster.clone();
        let Some(resident) = self.caches.get(&cluster) else {
            return;
        };
        let total = resident.cache.len();
        let added = job.added_tokens();
        let result = if total != job.from_tokens + added {
            Err(ServiceError::Internal(format!(
                "cache holds {total} tokens after adding {added} to {}",
                job.from_tokens
            )))
        } else if job.snapshot || job.load.rebuild_reason.is_some() {
            self.snapshot_write(&resident.cache)
        } else if added > 0 {
            self.delta_write(&resident.cache, job.from_tokens)
        } else {
            Ok(KvWrite::None)
        };
        let bytes = resident.cache.nbytes() as u64;
        self.status.set_resident(&cluster, Some(bytes));
        let now = Instant::now();
        let first = job.first_step.unwrap_or(now);
        let outcome = result.map(|kv| OpOutcome {
            segments: std::mem::take(&mut job.segments),
            kv,
            total_tokens: total,
            output: job.output.take(),
            load: job.load.clone(),
            queue_time: first.duration_since(job.submitted),
            model_time: now.duration_since(first),
        });
        if outcome.is_err() {
            self.drop_cache(&cluster);
        }
        if let Some(reply) = active.reply.take() {
            let _ = reply.send(outcome.map_err(RunError::Service));
        }
        self.enforce_budget(Some(&cluster));
    }

    /// Drops least recently used idle caches while over the budget (never `keep`).
    fn enforce_budget(&mut self, keep: Option<&str>) {
        let budget = self.settings.max_cache_bytes;
        if budget == 0 {
            return;
        }
        loop {
            let total: u64 = self.caches.values().map(|r| r.cache.nbytes() as u64).sum();
            if total <= budget {
                return;
            }
            let victim = self
                .caches
                .iter()
                .filter(|(c, _)| Some(c.as_str()) != keep && !self.busy(c))
                .min_by_key(|(_, r)| r.last_used)
                .map(|(c, _)| c.clone());
            let Some(victim) = victim else {
                return;
            };
            let freed = self.drop_cache(&victim);
            tracing::info!(
                cluster = victim,
                freed,
                total,
                budget,
                "evicted cache to disk (LRU)"
            );
        }
    }
}
