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

use semkv_engine::{Engine, EngineError};

use crate::cluster_id::ClusterId;
use crate::error::ServiceError;
use crate::scheduler::{JobId, Scheduler, StepCharge, StepCost, StepKind};
use crate::store::KvWrite;

use super::work::{Job, Progress};
use super::{LoadReport, SharedStatus};

mod batching;
mod messages;
pub mod residency;
mod step_clock;
pub mod supervisor;

pub use messages::{
    EngineInfo, ForgetReason, ModelMsg, ModelSettings, OpOutcome, Restore, RunError, RunRequest,
    TraceSnapshot,
};
use residency::{Arrival, Residency};
pub use supervisor::{supervise, ModelHandle, Supervised};

/// Loads the engine on the model thread (again after a restart).
pub type EngineLoader = Box<dyn FnOnce() -> Result<Engine, EngineError> + Send>;

/// The model actor (see the module documentation).
pub struct ModelActor;

/// What the model actor starts from.
pub struct ModelArgs {
    pub loader: EngineLoader,
    pub settings: ModelSettings,
    pub status: Arc<SharedStatus>,
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
    residency: Residency,
    jobs: HashMap<JobId, ActiveJob>,
    scheduler: Scheduler,
    next_job: JobId,
    tick_pending: bool,
    /// Decode caches of the jobs decoding together, stacked while the set of
    /// decoding jobs stays the same (their own cache slots hold placeholders).
    batch: Option<batching::LiveBatch>,
    /// How long decode steps take: the unit prefill steps are charged in.
    clock: step_clock::StepClock,
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
        if let Some(limit) = args.settings.mlx_cache_limit {
            semkv_engine::memory::set_cache_limit(limit as usize)?;
        }
        tracing::info!(
            fingerprint = engine.fingerprint(),
            device = %engine.device().device,
            load_ms = started.elapsed().as_millis() as u64,
            "model loaded"
        );
        let scheduler = Scheduler::new(args.settings.scheduler.clone());
        Ok(ModelState {
            engine,
            residency: Residency::new(args.settings.max_cache_bytes, args.status.clone()),
            settings: args.settings,
            status: args.status,
            jobs: HashMap::new(),
            scheduler,
            next_job: 0,
            tick_pending: false,
            batch: None,
            clock: step_clock::StepClock::default(),
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
            state.dissolve_if_batched(cluster.as_str());
        }
        match message {
            ModelMsg::Run(request) => state.submit(*request),
            ModelMsg::Tick => {
                state.tick_pending = false;
                state.tick();
            }
            ModelMsg::Evict { cluster, reply } => {
                let freed = if state.busy(cluster.as_str()) {
                    0
                } else {
                    state.residency.remove(cluster.as_str())
                };
                if freed > 0 {
                    release_freed_buffers();
                }
                let _ = reply.send(freed);
            }
            ModelMsg::Forget { cluster, why } => state.forget(&cluster, why),
            ModelMsg::Snapshot {
                cluster,
                expected_tokens,
                reply,
            } => {
                let result = match state.residency.get(cluster.as_str()) {
                    Some(cache) if cache.len() == expected_tokens => {
                        residency::snapshot_write(&state.engine, cache).map(Some)
                    }
                    _ => Ok(None),
                };
                let _ = reply.send(result);
            }
            ModelMsg::CopyCache { from, to } => {
                if let Some(cache) = state.residency.get(from.as_str()) {
                    let cache = cache.fork();
                    state.residency.tick();
                    state.residency.insert(&to, cache);
                    state.enforce_budget(None);
                }
            }
            ModelMsg::Info { reply } => {
                let _ = reply.send(EngineInfo {
                    fingerprint: state.engine.fingerprint().to_owned(),
                    device: state.engine.device().clone(),
                    tokenizer: state.engine.tokenizer().clone(),
                    chat: state.engine.chat().cloned(),
                    max_positions: state.engine.model().max_positions(),
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
        self.jobs
            .values()
            .any(|j| j.job.cluster.as_str() == cluster)
    }

    fn forget(&mut self, cluster: &ClusterId, why: ForgetReason) {
        let ids: Vec<JobId> = self
            .jobs
            .iter()
            .filter(|(_, j)| &j.job.cluster == cluster)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            let what = match why {
                ForgetReason::Deleted => "deleted while this request ran",
                ForgetReason::Reset => "reset while this request ran; retry",
            };
            self.fail(
                id,
                ServiceError::Unavailable(format!("cluster {:?} was {what}", cluster.as_str())),
            );
        }
        if self.residency.remove(cluster.as_str()) > 0 {
            release_freed_buffers();
        }
        self.scheduler.forget_cluster(cluster.as_str());
    }

    /// Admits a run: brings the cluster's cache into memory and queues a job for it.
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
        // Checked before any restore work (and again by `submit` below).
        if let Err(full) = self.scheduler.has_room() {
            let _ = reply.send(Err(RunError::Service(ServiceError::Unavailable(format!(
                "{full}; retry later"
            )))));
            return;
        }
        let busy = self.busy(cluster.as_str());
        let arrival =
            self.residency
                .bring_in(&self.engine, &cluster, expected_tokens, busy, restore);
        let arrival = match arrival {
            Ok(arrival) => arrival,
            Err(e) => {
                let _ = reply.send(Err(e));
                return;
            }
        };
        let mut job = Job::new(
            &cluster,
            op,
            expected_tokens,
            self.settings.prefill_chunk,
            events,
        );
        job.snapshot = snapshot;
        record_arrival(&mut job, arrival, expected_tokens);
        let id = self.next_job;
        self.next_job += 1;
        if let Err(full) = self.scheduler.submit(cluster.as_str(), id) {
            let _ = reply.send(Err(RunError::Service(ServiceError::Unavailable(format!(
                "{full}; retry later"
            )))));
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
        // An abandoned in-place job leaves nothing behind either: failing it drops the
        // cluster's cache (the store still has the state before it), so an operation
        // whose client is gone is never committed.
        for id in abandoned {
            self.fail(id, ServiceError::Unavailable("the client went away".into()));
        }
        let jobs = &self.jobs;
        let batch = self.scheduler.next_batch(
            |id| jobs[&id].job.next_cost(),
            |id| jobs[&id].job.can_batch_decode(),
        );
        self.residency.tick();
        let Some(&leader) = batch.first() else {
            return;
        };
        let step = self.jobs[&leader].job.next_cost();
        let rows = batch.len();
        let started = Instant::now();
        match batch[..] {
            [id] => self.step_one(id),
            _ => self.decode_batch(batch),
        }
        self.charge(leader, step, rows, started.elapsed());
    }

    /// Times decode steps, and charges a prefill step what it took when the
    /// scheduler prices steps by time (see `model/step_clock.rs`).
    fn charge(&mut self, job: JobId, step: StepCost, rows: usize, elapsed: Duration) {
        let config = self.scheduler.config();
        match step.kind {
            StepKind::Decode => self.clock.decode_step(elapsed, rows),
            StepKind::Prefill if config.charge == StepCharge::Time => {
                if let Some(price) = self.clock.price(elapsed, config.decode_cost) {
                    self.scheduler.settle(job, step, price);
                }
            }
            StepKind::Prefill => {}
        }
    }

    fn step_one(&mut self, id: JobId) {
        self.dissolve_if_member(id);
        let active = self.jobs.get_mut(&id).expect("scheduled job exists");
        let Some(cache) = self.residency.use_mut(active.job.cluster.as_str()) else {
            self.fail(id, ServiceError::Internal("cluster cache vanished".into()));
            return;
        };
        let progress = active.job.step(&self.engine, cache);
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
                self.residency.remove(active.job.cluster.as_str());
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
        let Some(cache) = self.residency.get(cluster.as_str()) else {
            return;
        };
        let total = cache.len();
        let added = job.added_tokens();
        let result = if total != job.from_tokens + added {
            Err(ServiceError::Internal(format!(
                "cache holds {total} tokens after adding {added} to {}",
                job.from_tokens
            )))
        } else if job.snapshot || job.load.rebuild_reason.is_some() {
            residency::snapshot_write(&self.engine, cache)
        } else if added > 0 {
            residency::delta_write(&self.engine, cache, job.from_tokens)
        } else {
            Ok(KvWrite::None)
        };
        self.residency.report(cluster.as_str());
        let now = Instant::now();
        let first = job.first_step.unwrap_or(now);
        let outcome = result.map(|kv| OpOutcome {
            segments: std::mem::take(&mut job.segments),
            kv,
            total_tokens: total,
            output: job.output.take(),
            scores: std::mem::take(&mut job.scores),
            load: job.load.clone(),
            queue_time: first.duration_since(job.submitted),
            model_time: now.duration_since(first),
        });
        if outcome.is_err() {
            self.residency.remove(cluster.as_str());
        }
        // Within budget before the caller hears back: a client that reads the server
        // status right after its reply must see the evictions this run caused.
        self.enforce_budget(Some(cluster.as_str()));
        if let Some(reply) = active.reply.take() {
            let _ = reply.send(outcome.map_err(RunError::Service));
        }
    }

    /// Drops least recently used idle caches while over the budget (never `keep`).
    fn enforce_budget(&mut self, keep: Option<&str>) {
        let jobs = &self.jobs;
        let evicted = self
            .residency
            .enforce_budget(keep, |c| jobs.values().any(|j| j.job.cluster.as_str() == c));
        if !evicted.is_empty() {
            release_freed_buffers();
        }
    }
}

/// Notes in `job` how its cluster's cache came into memory; a rebuild first replays the
/// whole token log and ends in a full snapshot.
fn record_arrival(job: &mut Job, arrival: Arrival, expected_tokens: usize) {
    match arrival {
        Arrival::Resident => {}
        Arrival::Restored { load_time } => {
            job.load.loaded_from_disk = true;
            job.load.load_time = load_time;
        }
        Arrival::Rebuild {
            reason,
            segments,
            load_time,
        } => {
            job.replay_first(&segments);
            job.load = LoadReport {
                loaded_from_disk: true,
                rebuilt_tokens: expected_tokens,
                rebuild_reason: Some(reason),
                load_time,
            };
            job.snapshot = true;
        }
    }
}

/// Returns MLX's cached buffers to the system after caches were dropped, so the
/// process's memory follows what it holds (MLX would keep them for reuse).
fn release_freed_buffers() {
    if let Err(e) = semkv_engine::memory::clear_cache() {
        tracing::warn!(error = %e, "could not clear MLX's buffer cache");
    }
}
