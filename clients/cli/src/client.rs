//! The seam between the CLI and the daemon: the [`ClusterClient`] trait, and the plain
//! data types its methods take and return.
//!
//! Everything above this trait — the cluster commands, `chat`, and the experiment
//! runner — is written against it; [`GrpcClient`] implements it over
//! `proto/semkv/v1` (tonic), and [`connect`] returns one. The types mirror
//! `proto/semkv/v1/semkv.proto` field for field where the CLI needs the field:
//!
//! | here | proto |
//! |---|---|
//! | [`ClusterInfo`] | `Cluster` (`turn_count` → `turns`, `Residency` → `"hot"`/`"cold"`) |
//! | [`AppendStats`] | `AppendTurnsResponse` |
//! | [`Sampling`] | `SamplingParams` + `max_tokens` + `stop` (`None` → 0, the proto's "off") |
//! | [`GenerateRequest`] | `GenerateRequest` |
//! | [`GenerateStats`] | `GenerateSummary` (`FinishReason` → `"eos"`, `"stop_string"`, `"length"`, `"cancelled"`) |
//! | [`ServerInfo`] | `ServerInfo` |
//!
//! Status codes map to [`ClientError`]: a connection that cannot be made or is lost
//! (a status produced by the transport, not sent by the daemon) → `Unavailable`;
//! `NOT_FOUND` → `NotFound`; `ALREADY_EXISTS` → `AlreadyExists`; `INVALID_ARGUMENT` →
//! `InvalidArgument`; `UNAVAILABLE` or `RESOURCE_EXHAUSTED` from a running daemon (its
//! queue is full) → `Busy` (retried a few times with back-off before it is returned);
//! anything else → `Other`.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tonic::transport::{Channel, Endpoint};

use crate::proto;
use crate::proto::sem_kv_client::SemKvClient;

/// The default daemon address (the `--addr` flag and `SEMKV_ADDR` override it).
pub const DEFAULT_ADDR: &str = "http://127.0.0.1:50051";

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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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

    /// Generates on a cluster, calling `on_delta` with each piece of text as it is
    /// produced, and returns the statistics of the finished generation.
    fn generate(
        &self,
        request: &GenerateRequest,
        on_delta: &mut (dyn FnMut(&str) + Send),
    ) -> impl Future<Output = Result<GenerateStats, ClientError>> + Send;
}

// ---------------------------------------------------------------------------------
// The gRPC client.
// ---------------------------------------------------------------------------------

/// How long [`connect`] waits for a TCP connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How many times a call the daemon refused as busy is tried again.
const BUSY_RETRIES: u32 = 6;

/// `addr` as a URI: `host:port` gets `http://` in front.
pub fn normalize_addr(addr: &str) -> String {
    let addr = addr.trim();
    if addr.contains("://") {
        addr.to_owned()
    } else {
        format!("http://{addr}")
    }
}

/// [`ClusterClient`] over gRPC (tonic), talking to one `semkvd`.
#[derive(Debug, Clone)]
pub struct GrpcClient {
    inner: SemKvClient<Channel>,
    addr: String,
}

/// Connects to the daemon at `addr` (`http://host:port` or `host:port`).
///
/// Fails with [`ClientError::Unavailable`] when nothing answers there.
pub async fn connect(addr: &str) -> Result<GrpcClient, ClientError> {
    let uri = normalize_addr(addr);
    let unavailable = |message: String| ClientError::Unavailable {
        addr: uri.clone(),
        message,
    };
    let endpoint = Endpoint::from_shared(uri.clone())
        .map_err(|e| unavailable(format!("invalid address: {e}")))?
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true);
    let channel = endpoint
        .connect()
        .await
        .map_err(|e| unavailable(error_chain(&e)))?;
    Ok(GrpcClient {
        inner: SemKvClient::new(channel).max_decoding_message_size(64 << 20),
        addr: uri,
    })
}

/// An error and its sources as one line, leaving out repeated messages.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !message.contains(&text) {
            message = format!("{message}: {text}");
        }
        source = s.source();
    }
    message
}

/// Whether a status was produced on this side (the connection failed or broke)
/// rather than sent by the daemon: tonic attaches the transport error as its source.
fn is_transport_status(status: &tonic::Status) -> bool {
    std::error::Error::source(status).is_some()
}

impl GrpcClient {
    /// The address this client talks to.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    fn client(&self) -> SemKvClient<Channel> {
        self.inner.clone()
    }

    /// Maps a status to a [`ClientError`]; `subject` is the cluster id the call was
    /// about (for `NOT_FOUND` and `ALREADY_EXISTS`).
    fn error(&self, status: tonic::Status, subject: &str) -> ClientError {
        use tonic::Code;
        if is_transport_status(&status) && status.code() != Code::Cancelled {
            return ClientError::Unavailable {
                addr: self.addr.clone(),
                message: format!("connection failed or lost: {}", error_chain(&status)),
            };
        }
        match status.code() {
            Code::NotFound => ClientError::NotFound(subject.to_owned()),
            Code::AlreadyExists => ClientError::AlreadyExists(subject.to_owned()),
            Code::InvalidArgument => ClientError::InvalidArgument(status.message().to_owned()),
            Code::Unavailable | Code::ResourceExhausted => {
                ClientError::Busy(status.message().to_owned())
            }
            code => ClientError::Other {
                code: format!("{code:?}"),
                message: status.message().to_owned(),
            },
        }
    }

    /// Runs `call` until it succeeds or fails with anything but a busy daemon
    /// (a busy daemon did not admit the request, so it is safe to try again).
    async fn with_retry<T, F, Fut>(&self, subject: &str, mut call: F) -> Result<T, ClientError>
    where
        F: FnMut(SemKvClient<Channel>) -> Fut + Send,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>> + Send,
        T: Send,
    {
        let mut delay = Duration::from_millis(100);
        let mut attempt = 0;
        loop {
            match call(self.client()).await {
                Ok(r) => return Ok(r.into_inner()),
                Err(status) => {
                    let err = self.error(status, subject);
                    if matches!(err, ClientError::Busy(_)) && attempt < BUSY_RETRIES {
                        attempt += 1;
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_secs(5));
                        continue;
                    }
                    return Err(err);
                }
            }
        }
    }
}

fn role(r: Role) -> i32 {
    match r {
        Role::System => proto::Role::System as i32,
        Role::User => proto::Role::User as i32,
        Role::Assistant => proto::Role::Assistant as i32,
    }
}

fn turn_format(f: TextFormat) -> i32 {
    match f {
        TextFormat::Chat => proto::TurnFormat::Chat as i32,
        TextFormat::Raw => proto::TurnFormat::Raw as i32,
    }
}

fn turns(t: &[TurnInput]) -> Vec<proto::Turn> {
    t.iter()
        .map(|t| proto::Turn {
            role: role(t.role),
            text: t.text.clone(),
        })
        .collect()
}

fn labels_map(labels: &BTreeMap<String, String>) -> std::collections::HashMap<String, String> {
    labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// A random seed, for generations that gave none (the proto has no "unseeded").
fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}

/// The proto's `Cluster` as [`ClusterInfo`].
pub fn cluster_info(c: proto::Cluster) -> ClusterInfo {
    let residency = match proto::Residency::try_from(c.residency) {
        Ok(proto::Residency::Hot) => "hot",
        Ok(proto::Residency::Cold) => "cold",
        _ => "unknown",
    };
    ClusterInfo {
        id: c.id,
        labels: c.labels.into_iter().collect(),
        created_unix_ms: c.created_unix_ms,
        turns: c.turn_count,
        cache_tokens: c.cache_tokens,
        cache_bytes: c.cache_bytes,
        residency: residency.to_owned(),
    }
}

/// The proto's `FinishReason` as the CLI's name for it.
pub fn finish_reason(r: i32) -> &'static str {
    match proto::FinishReason::try_from(r) {
        Ok(proto::FinishReason::Eos) => "eos",
        Ok(proto::FinishReason::StopString) => "stop_string",
        Ok(proto::FinishReason::Length) => "length",
        Ok(proto::FinishReason::Cancelled) => "cancelled",
        _ => "unspecified",
    }
}

/// The proto's `GenerateRequest` for `r` (a missing seed becomes a random one).
pub fn generate_request(r: &GenerateRequest) -> proto::GenerateRequest {
    let s = &r.sampling;
    proto::GenerateRequest {
        cluster_id: r.cluster.clone(),
        turns: turns(&r.prompt),
        format: turn_format(r.format),
        sampling: Some(proto::SamplingParams {
            temperature: s.temperature,
            top_k: s.top_k.unwrap_or(0),
            top_p: s.top_p.unwrap_or(0.0),
            repetition_penalty: 0.0,
            repetition_window: 0,
            seed: s.seed.unwrap_or_else(random_seed),
        }),
        max_tokens: Some(s.max_tokens),
        stop: s.stop.clone(),
        commit: r.commit,
        ignore_eos: false,
    }
}

impl ClusterClient for GrpcClient {
    async fn server_info(&self) -> Result<ServerInfo, ClientError> {
        let s = self
            .with_retry("", |mut c| async move {
                c.get_server_info(proto::GetServerInfoRequest {}).await
            })
            .await?;
        Ok(ServerInfo {
            version: s.version,
            model: s.model,
            fingerprint: s.model_fingerprint,
            device: s.device,
            backend: s.backend,
            cache_bytes: s.cache_bytes,
            max_cache_bytes: s.max_cache_bytes,
            known_clusters: s.known_clusters,
            queue_depth: u64::from(s.queue_depth),
            queue_capacity: u64::from(s.queue_capacity),
        })
    }

    async fn create_cluster(
        &self,
        id: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<ClusterInfo, ClientError> {
        let req = proto::CreateClusterRequest {
            cluster_id: id.to_owned(),
            labels: labels_map(labels),
        };
        let c = self
            .with_retry(id, |mut c| {
                let req = req.clone();
                async move { c.create_cluster(req).await }
            })
            .await?;
        Ok(cluster_info(c))
    }

    async fn get_cluster(&self, id: &str) -> Result<ClusterInfo, ClientError> {
        let req = proto::GetClusterRequest {
            cluster_id: id.to_owned(),
        };
        let c = self
            .with_retry(id, |mut c| {
                let req = req.clone();
                async move { c.get_cluster(req).await }
            })
            .await?;
        Ok(cluster_info(c))
    }

    async fn list_clusters(
        &self,
        selector: &BTreeMap<String, String>,
    ) -> Result<Vec<ClusterInfo>, ClientError> {
        let req = proto::ListClustersRequest {
            label_selector: labels_map(selector),
        };
        let r = self
            .with_retry("", |mut c| {
                let req = req.clone();
                async move { c.list_clusters(req).await }
            })
            .await?;
        Ok(r.clusters.into_iter().map(cluster_info).collect())
    }

    async fn fork_cluster(
        &self,
        source: &str,
        target: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<ClusterInfo, ClientError> {
        let req = proto::ForkClusterRequest {
            source_cluster_id: source.to_owned(),
            new_cluster_id: target.to_owned(),
            labels: labels_map(labels),
        };
        // NOT_FOUND is about the source, ALREADY_EXISTS about the target.
        let result = self
            .with_retry(source, |mut c| {
                let req = req.clone();
                async move { c.fork_cluster(req).await }
            })
            .await;
        match result {
            Ok(c) => Ok(cluster_info(c)),
            Err(ClientError::AlreadyExists(_)) => Err(ClientError::AlreadyExists(target.into())),
            Err(e) => Err(e),
        }
    }

    async fn delete_cluster(&self, id: &str) -> Result<(), ClientError> {
        let req = proto::DeleteClusterRequest {
            cluster_id: id.to_owned(),
        };
        self.with_retry(id, |mut c| {
            let req = req.clone();
            async move { c.delete_cluster(req).await }
        })
        .await?;
        Ok(())
    }

    async fn append_turns(
        &self,
        id: &str,
        t: &[TurnInput],
        format: TextFormat,
    ) -> Result<AppendStats, ClientError> {
        let req = proto::AppendTurnsRequest {
            cluster_id: id.to_owned(),
            turns: turns(t),
            format: turn_format(format),
        };
        let r = self
            .with_retry(id, |mut c| {
                let req = req.clone();
                async move { c.append_turns(req).await }
            })
            .await?;
        Ok(AppendStats {
            tokens_added: r.tokens_added,
            total_tokens: r.total_tokens,
            prefill_ms: r.prefill_ms,
            queue_ms: r.queue_ms,
        })
    }

    async fn generate(
        &self,
        request: &GenerateRequest,
        on_delta: &mut (dyn FnMut(&str) + Send),
    ) -> Result<GenerateStats, ClientError> {
        use proto::generate_response::Event;
        let req = generate_request(request);
        let id = request.cluster.as_str();
        let mut stream = self
            .with_retry(id, |mut c| {
                let req = req.clone();
                async move { c.generate(req).await }
            })
            .await?;
        loop {
            let msg = stream.message().await.map_err(|s| self.error(s, id))?;
            let Some(msg) = msg else {
                return Err(ClientError::Unavailable {
                    addr: self.addr.clone(),
                    message: "the generation stream ended without a summary".into(),
                });
            };
            match msg.event {
                Some(Event::Token(t)) if !t.text.is_empty() => on_delta(&t.text),
                Some(Event::Done(s)) => {
                    return Ok(GenerateStats {
                        prompt_tokens: s.prompt_tokens,
                        tokens_reused: s.reused_tokens,
                        total_tokens: s.total_tokens,
                        generated_tokens: s.tokens.len() as u64,
                        ttft_ms: s.time_to_first_token_ms,
                        tokens_per_s: s.tokens_per_second,
                        finish_reason: finish_reason(s.finish_reason).to_owned(),
                    })
                }
                Some(Event::Token(_)) | None => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_get_a_scheme() {
        assert_eq!(normalize_addr("127.0.0.1:50051"), "http://127.0.0.1:50051");
        assert_eq!(normalize_addr(" http://h:1 "), "http://h:1");
        assert_eq!(normalize_addr("https://h:1"), "https://h:1");
    }

    #[test]
    fn requests_map_to_the_proto() {
        let r = GenerateRequest {
            cluster: "c".into(),
            prompt: vec![TurnInput::user("hi")],
            format: TextFormat::Raw,
            sampling: Sampling {
                temperature: 0.5,
                top_p: Some(0.9),
                top_k: None,
                seed: Some(7),
                max_tokens: 12,
                stop: vec!["\n".into()],
            },
            commit: true,
        };
        let p = generate_request(&r);
        assert_eq!(p.cluster_id, "c");
        assert_eq!(p.format, proto::TurnFormat::Raw as i32);
        assert_eq!(p.turns[0].role, proto::Role::User as i32);
        let s = p.sampling.unwrap();
        assert_eq!((s.temperature, s.top_p, s.top_k, s.seed), (0.5, 0.9, 0, 7));
        assert_eq!(p.max_tokens, Some(12));
        assert!(p.commit && !p.ignore_eos);
        assert_eq!(finish_reason(proto::FinishReason::Length as i32), "length");
        let info = cluster_info(proto::Cluster {
            id: "x".into(),
            turn_count: 2,
            residency: proto::Residency::Cold as i32,
            ..Default::default()
        });
        assert_eq!((info.turns, info.residency.as_str()), (2, "cold"));
    }

    #[tokio::test]
    async fn connecting_to_nothing_is_unavailable() {
        let err = connect("127.0.0.1:1").await.unwrap_err();
        match &err {
            ClientError::Unavailable { addr, .. } => assert_eq!(addr, "http://127.0.0.1:1"),
            other => panic!("{other:?}"),
        }
        let text = err.to_string();
        assert!(
            text.contains("cannot reach semkvd at http://127.0.0.1:1"),
            "{text}"
        );
        assert!(text.contains("semkvd --model gemma-3-270m"), "{text}");
    }
}
