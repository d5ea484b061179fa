//! What a cluster actor is given ([`ClusterArgs`], [`ClusterContext`]), asked
//! ([`ClusterMsg`]) and answers ([`AppendReport`], [`PersistReport`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use ractor::{ActorRef, RpcReplyPort};
use tokio::sync::mpsc::UnboundedSender;

use semkv_engine::generate::chat::{ChatTemplate, Turn};
use semkv_engine::generate::score::TokenScore;
use semkv_engine::generate::tokenizer::TextTokenizer;
use semkv_engine::generate::GenerateOptions;

use crate::actors::model::ModelHandle;
use crate::actors::registry::RegistryMsg;
use crate::actors::{GenEvent, LoadReport, TurnFormat};
use crate::cluster_id::ClusterId;
use crate::error::ServiceError;
use crate::store::{ClusterMeta, Store};

/// What every cluster actor needs.
pub struct ClusterContext {
    pub store: Store,
    pub model: ModelHandle,
    pub tokenizer: TextTokenizer,
    /// The model's chat template (none: only raw text).
    pub chat: Option<ChatTemplate>,
    /// Most tokens a cluster's cache may hold (the model's positions, or less with
    /// `--max-context-tokens`); past it requests get OUT_OF_RANGE before any work.
    pub max_context: usize,
    pub registry: ActorRef<RegistryMsg>,
}

/// Arguments of a cluster actor.
pub struct ClusterArgs {
    pub id: ClusterId,
    pub ctx: Arc<ClusterContext>,
    /// Started again after a crash: the model's copy of the cache may be ahead of the
    /// store, so it is dropped.
    pub restarted: bool,
}

/// A generation request, validated.
#[derive(Debug, Clone)]
pub struct GenerateParams {
    pub turns: Vec<Turn>,
    pub format: TurnFormat,
    pub options: GenerateOptions,
    pub commit: bool,
}

/// A scoring request: `continuation` after the cluster and `turns`.
#[derive(Debug, Clone)]
pub struct ScoreParams {
    pub turns: Vec<Turn>,
    pub format: TurnFormat,
    pub continuation: String,
}

/// The result of a scoring run.
#[derive(Debug, Clone)]
pub struct ScoreReport {
    pub scores: Vec<TokenScore>,
    pub prompt_tokens: usize,
    /// Tokens of the cluster's cache reused without prefill.
    pub reused_tokens: usize,
    pub queue_time: Duration,
    pub model_time: Duration,
    pub load: LoadReport,
}

/// The result of an append.
#[derive(Debug, Clone)]
pub struct AppendReport {
    pub tokens_added: usize,
    pub total_tokens: usize,
    pub prefill_time: Duration,
    pub queue_time: Duration,
    pub persist_time: Duration,
    pub load: LoadReport,
}

/// The result of a persist.
#[derive(Debug, Clone)]
pub struct PersistReport {
    pub snapshot_bytes: u64,
    pub persist_time: Duration,
}

type Reply<T> = RpcReplyPort<Result<T, ServiceError>>;

/// Messages of a cluster actor.
pub enum ClusterMsg {
    /// `client` closes when the requester is gone: the append is then cancelled and
    /// not committed.
    Append {
        turns: Vec<Turn>,
        format: TurnFormat,
        client: UnboundedSender<GenEvent>,
        reply: Reply<AppendReport>,
    },
    /// Scores a text on a copy of the cluster's cache; `client` closes when the
    /// requester is gone (the run then stops).
    Score {
        params: ScoreParams,
        client: UnboundedSender<GenEvent>,
        reply: Reply<ScoreReport>,
    },
    /// Streams [`GenEvent`]s to `events`, ending with [`GenEvent::Done`].
    Generate {
        params: GenerateParams,
        events: UnboundedSender<GenEvent>,
        reply: Reply<()>,
    },
    Fork {
        new_id: ClusterId,
        labels: Option<BTreeMap<String, String>>,
        reply: Reply<ClusterMeta>,
    },
    Evict {
        reply: Reply<u64>,
    },
    Persist {
        reply: Reply<PersistReport>,
    },
    Delete {
        reply: Reply<()>,
    },
}
