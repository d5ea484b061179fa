//! [`GrpcClient`]: [`ClusterClient`] over [`semkv_client::Client`], and the mapping
//! between the CLI's types and `proto/semkv/v1`:
//!
//! | CLI | proto |
//! |---|---|
//! | [`ClusterInfo`] | `Cluster` (`turn_count` → `turns`, `Residency` → `"hot"`/`"cold"`) |
//! | [`AppendStats`] | `AppendTurnsResponse` |
//! | [`Sampling`](super::Sampling) | `SamplingParams` + `max_tokens` + `stop` (`None` → 0, the proto's "off") |
//! | [`GenerateRequest`] | `GenerateRequest` |
//! | [`GenerateStats`] | `GenerateSummary` (`FinishReason` → `"eos"`, `"stop_string"`, `"length"`, `"cancelled"`) |
//! | [`ServerInfo`] | `ServerInfo` |

use std::collections::BTreeMap;

use semkv_client::{proto, Code, ConnectOptions};

use super::{
    AppendStats, ClientError, ClusterClient, ClusterInfo, GenerateRequest, GenerateStats, Role,
    ScoreStats, ScoredToken, ServerInfo, TextFormat, TurnInput,
};

/// How many times a call the daemon refused as busy is tried again.
const BUSY_RETRIES: u32 = 6;

/// [`ClusterClient`] over gRPC, talking to one `semkvd`.
#[derive(Debug, Clone)]
pub struct GrpcClient {
    inner: semkv_client::Client,
}

/// Connects to the daemon at `addr` (`http://host:port` or `host:port`).
///
/// Fails with [`ClientError::Unavailable`] when nothing answers there.
pub async fn connect(addr: &str) -> Result<GrpcClient, ClientError> {
    let options = ConnectOptions::default().with_busy_retries(BUSY_RETRIES);
    semkv_client::Client::connect_with(addr, options)
        .await
        .map(|inner| GrpcClient { inner })
        .map_err(|e| client_error(e, ""))
}

/// Maps an error of [`semkv_client`] to the CLI's; `subject` is the cluster id the
/// call was about (for `NOT_FOUND` and `ALREADY_EXISTS`).
pub fn client_error(e: semkv_client::ClientError, subject: &str) -> ClientError {
    use semkv_client::ClientError as E;
    let unavailable = |addr: String, message: String| ClientError::Unavailable { addr, message };
    match e {
        E::InvalidAddress { addr, message } => {
            unavailable(addr, format!("invalid address: {message}"))
        }
        E::Connect { addr, message } => unavailable(addr, message),
        E::Disconnected { addr, message } => {
            unavailable(addr, format!("connection failed or lost: {message}"))
        }
        E::IncompleteStream { addr } => {
            unavailable(addr, "the generation stream ended without a summary".into())
        }
        E::Status { code, message } => match code {
            Code::NotFound => ClientError::NotFound(subject.to_owned()),
            Code::AlreadyExists => ClientError::AlreadyExists(subject.to_owned()),
            Code::InvalidArgument => ClientError::InvalidArgument(message),
            Code::Unavailable | Code::ResourceExhausted => ClientError::Busy(message),
            code => ClientError::Other {
                code: format!("{code:?}"),
                message,
            },
        },
        // A call cancelled on this side (its connection closed mid-call) is reported
        // with the status code tonic gives it.
        E::Cancelled { message, .. } => ClientError::Other {
            code: format!("{:?}", Code::Cancelled),
            message,
        },
        // No request timeout is set; should one fire, it reads as tonic's status did.
        E::Timeout { .. } => ClientError::Other {
            code: format!("{:?}", Code::Cancelled),
            message: "Timeout expired".into(),
        },
        other => ClientError::Other {
            code: format!("{:?}", Code::Unknown),
            message: other.to_string(),
        },
    }
}

impl GrpcClient {
    /// The address this client talks to.
    pub fn addr(&self) -> &str {
        self.inner.addr()
    }
}

fn role(r: Role) -> proto::Role {
    match r {
        Role::System => proto::Role::System,
        Role::User => proto::Role::User,
        Role::Assistant => proto::Role::Assistant,
    }
}

fn turn_format(f: TextFormat) -> proto::TurnFormat {
    match f {
        TextFormat::Chat => proto::TurnFormat::Chat,
        TextFormat::Raw => proto::TurnFormat::Raw,
    }
}

fn turns(t: &[TurnInput]) -> Vec<proto::Turn> {
    t.iter()
        .map(|t| proto::Turn::new(role(t.role), t.text.clone()))
        .collect()
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
        format: turn_format(r.format) as i32,
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

/// The proto's `GenerateSummary` as [`GenerateStats`].
fn generate_stats(s: proto::GenerateSummary) -> GenerateStats {
    GenerateStats {
        prompt_tokens: s.prompt_tokens,
        tokens_reused: s.reused_tokens,
        total_tokens: s.total_tokens,
        generated_tokens: s.tokens.len() as u64,
        ttft_ms: s.time_to_first_token_ms,
        tokens_per_s: s.tokens_per_second,
        finish_reason: finish_reason(s.finish_reason).to_owned(),
    }
}

impl ClusterClient for GrpcClient {
    async fn server_info(&self) -> Result<ServerInfo, ClientError> {
        let s = self
            .inner
            .server_info()
            .await
            .map_err(|e| client_error(e, ""))?;
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
        self.inner
            .create_cluster(id, labels.clone())
            .await
            .map(cluster_info)
            .map_err(|e| client_error(e, id))
    }

    async fn get_cluster(&self, id: &str) -> Result<ClusterInfo, ClientError> {
        self.inner
            .get_cluster(id)
            .await
            .map(cluster_info)
            .map_err(|e| client_error(e, id))
    }

    async fn list_clusters(
        &self,
        selector: &BTreeMap<String, String>,
    ) -> Result<Vec<ClusterInfo>, ClientError> {
        // Every page (the daemon lists at most 1000 clusters per call).
        let clusters = self
            .inner
            .list_clusters(selector.clone())
            .await
            .map_err(|e| client_error(e, ""))?;
        Ok(clusters.into_iter().map(cluster_info).collect())
    }

    async fn fork_cluster(
        &self,
        source: &str,
        target: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<ClusterInfo, ClientError> {
        // NOT_FOUND is about the source, ALREADY_EXISTS about the target.
        match self
            .inner
            .fork_cluster(source, target, labels.clone())
            .await
        {
            Ok(c) => Ok(cluster_info(c)),
            Err(e) if e.code() == Some(Code::AlreadyExists) => {
                Err(ClientError::AlreadyExists(target.into()))
            }
            Err(e) => Err(client_error(e, source)),
        }
    }

    async fn delete_cluster(&self, id: &str) -> Result<(), ClientError> {
        self.inner
            .delete_cluster(id)
            .await
            .map_err(|e| client_error(e, id))
    }

    async fn append_turns(
        &self,
        id: &str,
        t: &[TurnInput],
        format: TextFormat,
    ) -> Result<AppendStats, ClientError> {
        let r = self
            .inner
            .append_turns(id, turns(t), turn_format(format))
            .await
            .map_err(|e| client_error(e, id))?;
        Ok(AppendStats {
            tokens_added: r.tokens_added,
            total_tokens: r.total_tokens,
            prefill_ms: r.prefill_ms,
            queue_ms: r.queue_ms,
        })
    }

    async fn score(
        &self,
        id: &str,
        t: &[TurnInput],
        format: TextFormat,
        continuation: &str,
    ) -> Result<ScoreStats, ClientError> {
        let r = self
            .inner
            .score(proto::ScoreRequest {
                cluster_id: id.to_owned(),
                turns: turns(t),
                format: turn_format(format) as i32,
                continuation: continuation.to_owned(),
            })
            .await
            .map_err(|e| client_error(e, id))?;
        let tokens = r
            .tokens
            .iter()
            .zip(&r.logprobs)
            .zip(&r.greedy)
            .map(|((&id, &logprob), &greedy)| ScoredToken {
                id,
                logprob,
                greedy,
            })
            .collect();
        Ok(ScoreStats {
            tokens,
            mean_nll: r.mean_nll,
            perplexity: r.perplexity,
            greedy_agreement: r.greedy_agreement,
            prompt_tokens: r.prompt_tokens,
            reused_tokens: r.reused_tokens,
            model_ms: r.model_ms,
        })
    }

    async fn generate(
        &self,
        request: &GenerateRequest,
        on_delta: &mut (dyn FnMut(&str) + Send),
    ) -> Result<GenerateStats, ClientError> {
        let id = request.cluster.as_str();
        let summary = self
            .inner
            .generate(generate_request(request))
            .await
            .map_err(|e| client_error(e, id))?
            .finish(|t| {
                if !t.text.is_empty() {
                    on_delta(&t.text);
                }
            })
            .await
            .map_err(|e| client_error(e, id))?;
        Ok(generate_stats(summary))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::{Sampling, TurnInput};

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

    #[test]
    fn errors_map_to_what_the_cli_says() {
        use semkv_client::ClientError as E;
        let status = |code, message: &str| E::Status {
            code,
            message: message.into(),
        };
        assert_eq!(
            client_error(status(Code::NotFound, "x"), "c"),
            ClientError::NotFound("c".into())
        );
        assert_eq!(
            client_error(status(Code::ResourceExhausted, "full"), "c"),
            ClientError::Busy("full".into())
        );
        assert_eq!(
            client_error(status(Code::Internal, "boom"), "c"),
            ClientError::Other {
                code: "Internal".into(),
                message: "boom".into()
            }
        );
        let cancelled = E::Cancelled {
            addr: "http://h:1".into(),
            message: "operation was canceled".into(),
        };
        assert_eq!(
            client_error(cancelled, "c"),
            ClientError::Other {
                code: "Cancelled".into(),
                message: "operation was canceled".into()
            }
        );
        let lost = E::Disconnected {
            addr: "http://h:1".into(),
            message: "reset".into(),
        };
        assert_eq!(
            client_error(lost, "c"),
            ClientError::Unavailable {
                addr: "http://h:1".into(),
                message: "connection failed or lost: reset".into()
            }
        );
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
