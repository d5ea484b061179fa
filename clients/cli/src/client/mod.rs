//! The seam between the CLI and the daemon: the [`ClusterClient`] trait, and the plain
//! data types its methods take and return.
//!
//! Everything above this trait — the cluster commands, `chat`, and the experiment
//! runner — is written against it; [`GrpcClient`] implements it over
//! [`semkv_client::Client`], and [`connect`] returns one. The types mirror
//! `proto/semkv/v1/semkv.proto` field for field where the CLI needs the field (see
//! [`grpc`] for the mapping), in the shape the CLI prints them (`--json`).
//!
//! Failures are [`ClientError`]s, worded for a user of the CLI: a daemon that cannot
//! be reached → `Unavailable` (exit code 3); `NOT_FOUND` → `NotFound`;
//! `ALREADY_EXISTS` → `AlreadyExists`; `INVALID_ARGUMENT` → `InvalidArgument`;
//! `UNAVAILABLE` or `RESOURCE_EXHAUSTED` from a running daemon (its queue is full) →
//! `Busy` (retried a few times with back-off before it is returned); anything else →
//! `Other`.

use std::collections::BTreeMap;
use std::future::Future;

use serde::{Deserialize, Serialize};

pub mod grpc;

pub use grpc::{connect, GrpcClient};

/// The default daemon address (the `--addr` flag and `SEMKV_ADDR` override it).
pub const DEFAULT_ADDR: &str = semkv_client::DEFAULT_ADDR;

/// How text is turned into tokens.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "snake_case")]
pub enum TextFormat {
    /// Each turn is a message of the model's chat template.
    #[default]
    Chat,
    /// Text is tokenized as is, with no template.
    Raw,
}

impl TextFormat {
    /// `chat` or `raw`.
    pub fn as_str(self) -> &'static str {
        match self {
            TextFormat::Chat => "chat",
            TextFormat::Raw => "raw",
        }
    }
}

/// Who says a turn.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A system instruction (Gemma folds it into the next user turn).
    System,
    /// The user.
    #[default]
    User,
    /// The model.
    Assistant,
}

/// One turn to append to a cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TurnInput {
    /// Who says it (ignored in raw mode).
    pub role: Role,
    /// The text.
    pub text: String,
}

impl TurnInput {
    /// A user turn.
    pub fn user(text: impl Into<String>) -> Self {
        TurnInput {
            role: Role::User,
            text: text.into(),
        }
    }
}

/// A cluster as the daemon describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterInfo {
    /// The cluster id (1-64 characters of `[A-Za-z0-9._-]`, starting with a letter or
    /// digit).
    pub id: String,
    /// Free-form labels given at creation.
    pub labels: BTreeMap<String, String>,
    /// Creation time, milliseconds since the Unix epoch.
    pub created_unix_ms: i64,
    /// Number of turns appended so far (including committed generations).
    pub turns: u64,
    /// Tokens held in the cluster's KV cache.
    pub cache_tokens: u64,
    /// Bytes of the cache in memory (0 when cold).
    pub cache_bytes: u64,
    /// Where the cache lives now: `hot` (in memory) or `cold` (on disk only).
    pub residency: String,
}

/// What an append did.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AppendStats {
    /// Tokens prefilled by this append.
    pub tokens_added: u64,
    /// Tokens in the cluster's cache afterwards.
    pub total_tokens: u64,
    /// Time in the model (prefill), in milliseconds.
    pub prefill_ms: f64,
    /// Time waiting for the model, in milliseconds.
    pub queue_ms: f64,
}

/// How likely the model found a text (see the `Score` RPC).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoreStats {
    /// The text's tokens, their texts, log-probabilities and greedy flags.
    pub tokens: Vec<ScoredToken>,
    /// Negative log-likelihood per token (nats).
    pub mean_nll: f64,
    /// exp(mean_nll).
    pub perplexity: f64,
    /// Share of tokens that were the model's most likely choice.
    pub greedy_agreement: f64,
    /// Tokens prefilled before the text (turns, opening of the answer).
    pub prompt_tokens: u64,
    /// Tokens of the cluster's cache reused.
    pub reused_tokens: u64,
    /// Time in the model, in milliseconds.
    pub model_ms: f64,
}

/// One scored token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoredToken {
    pub id: u32,
    pub logprob: f32,
    pub greedy: bool,
}

/// Sampling parameters of a generation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sampling {
    /// Temperature; 0 is greedy.
    pub temperature: f32,
    /// Nucleus sampling threshold, if any.
    pub top_p: Option<f32>,
    /// Top-k cut-off, if any.
    pub top_k: Option<u32>,
    /// Seed of the sampler, for reproducible outputs (same seed, parameters and
    /// cache give the same tokens).
    pub seed: Option<u64>,
    /// Most tokens to generate (the daemon allows at most 8192).
    pub max_tokens: u32,
    /// Strings that end the generation.
    pub stop: Vec<String>,
}

impl Default for Sampling {
    fn default() -> Self {
        Sampling {
            temperature: 0.7,
            top_p: None,
            top_k: None,
            seed: None,
            max_tokens: 300,
            stop: Vec::new(),
        }
    }
}

/// A generation request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerateRequest {
    /// The cluster to generate on.
    pub cluster: String,
    /// Turns appended just before generating (the prompt).
    pub prompt: Vec<TurnInput>,
    /// How `prompt` is tokenized.
    pub format: TextFormat,
    /// Sampling parameters.
    pub sampling: Sampling,
    /// Whether prompt and output extend the cluster's cache (`true`) or are generated
    /// on a throwaway copy (`false`).
    pub commit: bool,
}

/// The statistics a finished generation reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerateStats {
    /// Tokens of the new prompt (the prompt turns and the opening of the model's
    /// turn) that were prefilled.
    pub prompt_tokens: u64,
    /// Tokens already in the cluster's cache, reused without prefill.
    pub tokens_reused: u64,
    /// Tokens in the cluster's cache afterwards.
    pub total_tokens: u64,
    /// Tokens generated.
    pub generated_tokens: u64,
    /// Time to first token, in milliseconds.
    pub ttft_ms: f64,
    /// Decode speed after the first token, in tokens per second.
    pub tokens_per_s: f64,
    /// Why generation ended: `eos`, `stop_string`, `length` or `cancelled`.
    pub finish_reason: String,
}

/// What the daemon says about itself.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ServerInfo {
    /// Daemon version.
    pub version: String,
    /// The model it serves.
    pub model: String,
    /// The model's fingerprint (caches are bound to it).
    pub fingerprint: String,
    /// The device it runs on, e.g. `Device(cpu, 0)`.
    pub device: String,
    /// `cpu`, `cuda` or `metal`.
    pub backend: String,
    /// Bytes of KV cache held in memory.
    pub cache_bytes: u64,
    /// The memory budget for caches (0: none).
    pub max_cache_bytes: u64,
    /// Clusters known to the daemon.
    pub known_clusters: u64,
    /// Requests waiting for or running on the model.
    pub queue_depth: u64,
    /// The queue's limit.
    pub queue_capacity: u64,
}

/// Why a daemon call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// The daemon could not be reached (not running, wrong address, restarting), or
    /// the connection was lost during the call.
    #[error(
        "cannot reach semkvd at {addr} — start it with `semkvd --model gemma-3-270m` \
         (it listens on 127.0.0.1:50051 by default; the first start downloads the model), \
         point --addr / SEMKV_ADDR at a running daemon, or run `semkv demo`, which starts \
         one for you\n  (cause: {message})"
    )]
    Unavailable { addr: String, message: String },
    /// No such cluster.
    #[error("cluster {0:?} not found")]
    NotFound(String),
    /// A cluster with that id exists already.
    #[error("cluster {0:?} already exists")]
    AlreadyExists(String),
    /// The daemon rejected an argument.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The daemon is overloaded (its queue is full).
    #[error("daemon busy: {0}")]
    Busy(String),
    /// Any other failure the daemon reported.
    #[error("daemon error ({code}): {message}")]
    Other { code: String, message: String },
}

impl ClientError {
    /// True when retrying later may help (the daemon was down or busy).
    pub fn is_transient(&self) -> bool {
        matches!(self, ClientError::Unavailable { .. } | ClientError::Busy(_))
    }
}

/// A connection to `semkvd`: every operation the CLI and the experiment runner need.
///
/// Methods take `&self` so one client can be shared; the gRPC implementation clones its
/// channel per call. Futures are `Send` so callers may spawn them.
pub trait ClusterClient {
    /// The daemon's model, device and load.
    fn server_info(&self) -> impl Future<Output = Result<ServerInfo, ClientError>> + Send;

    /// Creates an empty cluster.
    fn create_cluster(
        &self,
        id: &str,
        labels: &BTreeMap<String, String>,
    ) -> impl Future<Output = Result<ClusterInfo, ClientError>> + Send;

    /// Describes one cluster.
    fn get_cluster(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<ClusterInfo, ClientError>> + Send;

    /// Lists the clusters carrying every label of `selector` (all when it is empty).
    fn list_clusters(
        &self,
        selector: &BTreeMap<String, String>,
    ) -> impl Future<Output = Result<Vec<ClusterInfo>, ClientError>> + Send;

    /// Copies `source` (cache and turns) into a new cluster `target`, with `labels`
    /// (the source's labels when empty).
    fn fork_cluster(
        &self,
        source: &str,
        target: &str,
        labels: &BTreeMap<String, String>,
    ) -> impl Future<Output = Result<ClusterInfo, ClientError>> + Send;

    /// Deletes a cluster and its stored state.
    fn delete_cluster(&self, id: &str) -> impl Future<Output = Result<(), ClientError>> + Send;

    /// Appends turns to a cluster, prefilling them into its cache.
    fn append_turns(
        &self,
        id: &str,
        turns: &[TurnInput],
        format: TextFormat,
    ) -> impl Future<Output = Result<AppendStats, ClientError>> + Send;

    /// Scores `continuation` after the cluster and `turns` (nothing changes).
    fn score(
        &self,
        id: &str,
        turns: &[TurnInput],
        format: TextFormat,
        continuation: &str,
    ) -> impl Future<Output = Result<ScoreStats, ClientError>> + Send;

    /// Generates on a cluster, calling `on_delta` with each piece of text as it is
    /// produced, and returns the statistics of the finished generation.
    fn generate(
        &self,
        request: &GenerateRequest,
        on_delta: &mut (dyn FnMut(&str) + Send),
    ) -> impl Future<Output = Result<GenerateStats, ClientError>> + Send;
}
