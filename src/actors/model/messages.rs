//! What the model actor is asked ([`ModelMsg`], [`RunRequest`]) and what it answers
//! ([`OpOutcome`], [`RunError`], [`EngineInfo`], [`TraceSnapshot`]), and its settings.

use std::collections::HashMap;
use std::time::Duration;

use ractor::RpcReplyPort;
use tokio::sync::mpsc::UnboundedSender;

use semkv_engine::device::DeviceInfo;
use semkv_engine::generate::chat::ChatTemplate;
use semkv_engine::generate::score::TokenScore;
use semkv_engine::generate::tokenizer::TextTokenizer;
use semkv_engine::generate::GenerationOutput;

use crate::actors::work::Op;
use crate::actors::{GenEvent, LoadReport};
use crate::cluster_id::ClusterId;
use crate::error::ServiceError;
use crate::scheduler::{SchedulerConfig, StepRecord};
use crate::store::{KvWrite, Segment, StoredCache};

/// Settings of the model actor.
#[derive(Debug, Clone)]
pub struct ModelSettings {
    /// Budget for in-memory caches (0: unlimited); past it, least recently used
    /// clusters are dropped from memory (their state is already on disk).
    pub max_cache_bytes: u64,
    /// Tokens per prefill step.
    pub prefill_chunk: usize,
    /// Most bytes of freed buffers MLX keeps for reuse (None: MLX's default); the
    /// cache is also cleared whenever caches are dropped (eviction, deletion).
    pub mlx_cache_limit: Option<u64>,
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
    /// A scoring run's per-token scores.
    pub scores: Vec<TokenScore>,
    pub load: LoadReport,
    /// From submission to the first step.
    pub queue_time: Duration,
    /// From the first step to the end.
    pub model_time: Duration,
}

/// A request to run an operation on a cluster's cache.
pub struct RunRequest {
    pub cluster: ClusterId,
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
    /// The model's chat template (none: only raw text).
    pub chat: Option<ChatTemplate>,
    /// Positions the model was trained for (its longest context).
    pub max_positions: usize,
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
        cluster: ClusterId,
        reply: RpcReplyPort<u64>,
    },
    /// Forget everything about a cluster (deleted, or its actor restarted): cancel its
    /// jobs (they fail with UNAVAILABLE saying `why`) and drop its cache.
    Forget {
        cluster: ClusterId,
        why: ForgetReason,
    },
    /// A full snapshot of a cluster's cache if it is in memory and holds
    /// `expected_tokens`.
    Snapshot {
        cluster: ClusterId,
        expected_tokens: usize,
        /// A [`KvWrite::Snapshot`], or `None` when the cache is not in memory at
        /// `expected_tokens` tokens.
        reply: RpcReplyPort<Result<Option<KvWrite>, ServiceError>>,
    },
    /// Give cluster `to` a copy of `from`'s in-memory cache (fork).
    CopyCache {
        from: ClusterId,
        to: ClusterId,
    },
    Info {
        reply: RpcReplyPort<EngineInfo>,
    },
    Trace {
        limit: usize,
        reply: RpcReplyPort<TraceSnapshot>,
    },
}

/// Why the model forgets a cluster ([`ModelMsg::Forget`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForgetReason {
    /// The cluster is being deleted.
    Deleted,
    /// Its actor restarted; its in-memory state may be ahead of the store.
    Reset,
}
