//! The gRPC surface (tonic): validation, admission, status codes, conversions. The
//! work is done by the actors; reads of cluster metadata come from the store.

pub mod connections;
pub mod convert;
pub mod limits;
pub mod paging;
pub mod status;
pub mod validate;

use std::pin::Pin;
use std::sync::Arc;

use futures_util::Stream;
use ractor::ActorRef;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use tracing::Instrument;

use crate::actors::cluster::{ClusterMsg, GenerateParams, ScoreParams};
use crate::actors::model::{ForgetReason, ModelHandle, ModelMsg};
use crate::actors::registry::RegistryMsg;
use crate::actors::{ask, SharedStatus};
use crate::cluster_id::ClusterId;
use crate::error::ServiceError;
use crate::proto;
use crate::proto::sem_kv_server::SemKv;
use crate::scheduler::StepKind;
use crate::store::{ClusterMeta, Store};
use semkv_engine::generate::score::ScoreSummary;
use semkv_engine::generate::GenerateOptions;

/// Static facts the server reports.
#[derive(Debug, Clone)]
pub struct ServerFacts {
    pub model: String,
    pub fingerprint: String,
    pub device: String,
    pub backend: String,
    pub max_cache_bytes: u64,
}

/// The `semkv.v1.SemKv` service.
pub struct SemKvService {
    registry: ActorRef<RegistryMsg>,
    model: ModelHandle,
    store: Store,
    status: Arc<SharedStatus>,
    admission: Arc<Semaphore>,
    capacity: usize,
    facts: ServerFacts,
}

impl SemKvService {
    /// A service over running actors; at most `queue_depth` model requests (appends,
    /// generations) are admitted at once, more get `UNAVAILABLE`.
    pub fn new(
        registry: ActorRef<RegistryMsg>,
        model: ModelHandle,
        store: Store,
        status: Arc<SharedStatus>,
        queue_depth: usize,
        facts: ServerFacts,
    ) -> Self {
        Self {
            registry,
            model,
            store,
            status,
            admission: Arc::new(Semaphore::new(queue_depth)),
            capacity: queue_depth,
            facts,
        }
    }

    fn admit(&self) -> Result<OwnedSemaphorePermit, Status> {
        self.admission.clone().try_acquire_owned().map_err(|_| {
            Status::unavailable(format!(
                "server busy: {} requests are queued or running (queue depth {}); retry later",
                self.capacity, self.capacity
            ))
        })
    }

    async fn actor(&self, id: &ClusterId) -> Result<ActorRef<ClusterMsg>, ServiceError> {
        let id = id.clone();
        ask(&self.registry, |reply| RegistryMsg::Get { id, reply }).await?
    }

    fn describe(&self, meta: &ClusterMeta) -> proto::Cluster {
        convert::cluster(meta, self.status.resident_bytes(&meta.id))
    }

    fn meta(&self, id: &str) -> Result<ClusterMeta, ServiceError> {
        self.store
            .meta(id)?
            .ok_or_else(|| ServiceError::NotFound(id.to_owned()))
    }
}

type GenerateStream = Pin<Box<dyn Stream<Item = Result<proto::GenerateResponse, Status>> + Send>>;

#[tonic::async_trait]
impl SemKv for SemKvService {
    #[tracing::instrument(name = "rpc", skip_all, fields(method = "CreateCluster", cluster = request.get_ref().cluster_id.as_str()))]
    async fn create_cluster(
        &self,
        request: Request<proto::CreateClusterRequest>,
    ) -> Result<Response<proto::Cluster>, Status> {
        let r = request.into_inner();
        let id = validate::cluster_id("cluster_id", &r.cluster_id)?;
        let labels = validate::labels("labels", &r.labels)?;
        let meta = ClusterMeta::new(id.as_str(), labels);
        let meta = ask(&self.registry, |reply| RegistryMsg::Create { meta, reply }).await??;
        tracing::info!("cluster created");
        Ok(Response::new(self.describe(&meta)))
    }

    async fn get_cluster(
        &self,
        request: Request<proto::GetClusterRequest>,
    ) -> Result<Response<proto::Cluster>, Status> {
        let r = request.into_inner();
        let id = validate::cluster_id("cluster_id", &r.cluster_id)?;
        let meta = self.meta(id.as_str())?;
        Ok(Response::new(self.describe(&meta)))
    }

    async fn list_clusters(
        &self,
        request: Request<proto::ListClustersRequest>,
    ) -> Result<Response<proto::ListClustersResponse>, Status> {
        let r = request.into_inner();
        let selector = validate::labels("label_selector", &r.label_selector)?;
        let size = validate::page_size("page_size", r.page_size)?;
        let after = validate::page_token("page_token", &r.page_token)?;
        let after = after.as_ref().map(ClusterId::as_str);
        let past = |id: &str| after.is_none_or(|a| id > a);
        let (good, damaged) = self.store.list().map_err(ServiceError::from)?;
        let mut clusters: Vec<proto::Cluster> = good
            .iter()
            .filter(|m| past(&m.id))
            .filter(|m| selector.iter().all(|(k, v)| m.labels.get(k) == Some(v)))
            .map(|m| self.describe(m))
            .collect();
        if selector.is_empty() {
            clusters.extend(
                damaged
                    .into_iter()
                    .filter(|(id, _)| past(id))
                    .map(|(id, reason)| convert::damaged(id, reason)),
            );
        }
        Ok(Response::new(paging::page(clusters, after, size)))
    }

    #[tracing::instrument(name = "rpc", skip_all, fields(method = "DeleteCluster", cluster = request.get_ref().cluster_id.as_str()))]
    async fn delete_cluster(
        &self,
        request: Request<proto::DeleteClusterRequest>,
    ) -> Result<Response<proto::DeleteClusterResponse>, Status> {
        let r = request.into_inner();
        let id = validate::cluster_id("cluster_id", &r.cluster_id)?;
        match self.actor(&id).await {
            Ok(actor) => {
                // Running work on the cluster is cancelled rather than waited for.
                let _ = self.model.get().cast(ModelMsg::Forget {
                    cluster: id.clone(),
                    why: ForgetReason::Deleted,
                });
                ask(&actor, |reply| ClusterMsg::Delete { reply }).await??
            }
            // Its records cannot be read, so no actor can run it: remove them as they are.
            Err(ServiceError::DataLoss(reason)) => {
                tracing::warn!(reason, "deleting a cluster with damaged records");
                self.store
                    .delete(id.as_str())
                    .await
                    .map_err(ServiceError::from)?;
                let _ = self.model.get().cast(ModelMsg::Forget {
                    cluster: id,
                    why: ForgetReason::Deleted,
                });
            }
            Err(e) => return Err(e.into()),
        }
        tracing::info!("cluster deleted");
        Ok(Response::new(proto::DeleteClusterResponse {}))
    }

    #[tracing::instrument(name = "rpc", skip_all, fields(method = "AppendTurns", cluster = request.get_ref().cluster_id.as_str()))]
    async fn append_turns(
        &self,
        request: Request<proto::AppendTurnsRequest>,
    ) -> Result<Response<proto::AppendTurnsResponse>, Status> {
        let r = request.into_inner();
        let id = validate::cluster_id("cluster_id", &r.cluster_id)?;
        let turns = validate::turns("turns", &r.turns, false)?;
        let format = validate::format("format", r.format)?;
        let _permit = self.admit()?;
        let actor = self.actor(&id).await?;
        // Held until the reply: if the client goes away (or its deadline passes) first,
        // tonic drops this future, the channel closes and the append is not committed.
        let (client, _client_present) = mpsc::unbounded_channel();
        let report = ask(&actor, |reply| ClusterMsg::Append {
            turns,
            format,
            client,
            reply,
        })
        .await??;
        tracing::info!(
            tokens_added = report.tokens_added,
            total_tokens = report.total_tokens,
            "turns appended"
        );
        Ok(Response::new(proto::AppendTurnsResponse {
            tokens_added: report.tokens_added as u64,
            total_tokens: report.total_tokens as u64,
            prefill_ms: convert::millis(report.prefill_time),
            queue_ms: convert::millis(report.queue_time),
            persist_ms: convert::millis(report.persist_time),
            cache_load: Some(convert::cache_load(&report.load)),
        }))
    }

    #[tracing::instrument(name = "rpc", skip_all, fields(method = "Score", cluster = request.get_ref().cluster_id.as_str()))]
    async fn score(
        &self,
        request: Request<proto::ScoreRequest>,
    ) -> Result<Response<proto::ScoreResponse>, Status> {
        let r = request.into_inner();
        let id = validate::cluster_id("cluster_id", &r.cluster_id)?;
        let params = ScoreParams {
            turns: validate::turns("turns", &r.turns, true)?,
            format: validate::format("format", r.format)?,
            continuation: validate::continuation("continuation", &r.continuation)?,
        };
        let _permit = self.admit()?;
        let actor = self.actor(&id).await?;
        // Held until the reply: a client that goes away stops the run.
        let (client, _client_present) = mpsc::unbounded_channel();
        let report = ask(&actor, |reply| ClusterMsg::Score {
            params,
            client,
            reply,
        })
        .await??;
        let summary = ScoreSummary::of(&report.scores);
        tracing::info!(
            tokens = report.scores.len(),
            mean_nll = summary.mean_nll,
            "continuation scored"
        );
        Ok(Response::new(proto::ScoreResponse {
            tokens: report.scores.iter().map(|s| s.id).collect(),
            logprobs: report.scores.iter().map(|s| s.logprob).collect(),
            greedy: report.scores.iter().map(|s| s.greedy).collect(),
            total_nll: summary.total_nll,
            mean_nll: summary.mean_nll,
            perplexity: summary.perplexity,
            greedy_agreement: summary.greedy_agreement,
            prompt_tokens: report.prompt_tokens as u64,
            reused_tokens: report.reused_tokens as u64,
            queue_ms: convert::millis(report.queue_time),
            model_ms: convert::millis(report.model_time),
            cache_load: Some(convert::cache_load(&report.load)),
        }))
    }

    type GenerateStream = GenerateStream;

    #[tracing::instrument(name = "rpc", skip_all, fields(method = "Generate", cluster = request.get_ref().cluster_id.as_str()))]
    async fn generate(
        &self,
        request: Request<proto::GenerateRequest>,
    ) -> Result<Response<GenerateStream>, Status> {
        let r = request.into_inner();
        let id = validate::cluster_id("cluster_id", &r.cluster_id)?;
        let params = GenerateParams {
            turns: validate::turns("turns", &r.turns, true)?,
            format: validate::format("format", r.format)?,
            options: GenerateOptions {
                sampling: validate::sampling("sampling", r.sampling.as_ref())?,
                max_tokens: validate::max_tokens("max_tokens", r.max_tokens)?,
                stop_strings: validate::stop("stop", &r.stop)?,
                stop_at_eos: !r.ignore_eos,
            },
            commit: r.commit,
        };
        let permit = self.admit()?;
        let actor = self.actor(&id).await?;
        let (events_tx, mut events) = mpsc::unbounded_channel();
        let (out, out_rx) = mpsc::channel(64);
        tokio::spawn(
            async move {
                // Holding the permit for the whole stream; dropping it (client gone,
                // stream over) frees the slot at once.
                let _permit = permit;
                let call = ask(&actor, |reply| ClusterMsg::Generate {
                    params,
                    events: events_tx,
                    reply,
                });
                tokio::pin!(call);
                let mut call_done = false;
                loop {
                    tokio::select! {
                        event = events.recv() => match event {
                            Some(event) => {
                                if let crate::actors::GenEvent::Done(s) = &event {
                                    tracing::info!(
                                        tokens = s.tokens.len(),
                                        reused = s.reused_tokens,
                                        finish = ?s.finish_reason,
                                        "generation done"
                                    );
                                }
                                if out.send(Ok(convert::gen_event(&event))).await.is_err() {
                                    break;
                                }
                            }
                            None => {
                                // The events channel closed; if that was because the
                                // operation failed, its error must still reach the client.
                                if !call_done {
                                    if let Ok(Err(e)) | Err(e) = (&mut call).await {
                                        let _ = out.send(Err(status::to_status(e))).await;
                                    }
                                }
                                break;
                            }
                        },
                        result = &mut call, if !call_done => {
                            call_done = true;
                            let error = match result {
                                Ok(Ok(())) => None,
                                Ok(Err(e)) | Err(e) => Some(e),
                            };
                            if let Some(e) = error {
                                // Tokens already queued go first.
                                while let Ok(event) = events.try_recv() {
                                    let _ = out.send(Ok(convert::gen_event(&event))).await;
                                }
                                let _ = out.send(Err(status::to_status(e))).await;
                                break;
                            }
                        }
                        _ = out.closed() => {
                            tracing::info!("client went away; cancelling");
                            break;
                        }
                    }
                }
                // Dropping `events` tells the model actor the client is gone.
            }
            .in_current_span(),
        );
        Ok(Response::new(Box::pin(ReceiverStream::new(out_rx))))
    }

    #[tracing::instrument(name = "rpc", skip_all, fields(method = "ForkCluster", cluster = request.get_ref().source_cluster_id.as_str()))]
    async fn fork_cluster(
        &self,
        request: Request<proto::ForkClusterRequest>,
    ) -> Result<Response<proto::Cluster>, Status> {
        let r = request.into_inner();
        let from = validate::cluster_id("source_cluster_id", &r.source_cluster_id)?;
        let to = validate::cluster_id("new_cluster_id", &r.new_cluster_id)?;
        let labels = validate::labels("labels", &r.labels)?;
        let labels = (!labels.is_empty()).then_some(labels);
        let actor = self.actor(&from).await?;
        let meta = ask(&actor, |reply| ClusterMsg::Fork {
            new_id: to,
            labels,
            reply,
        })
        .await??;
        tracing::info!(new_cluster = meta.id, "cluster forked");
        Ok(Response::new(self.describe(&meta)))
    }

    #[tracing::instrument(name = "rpc", skip_all, fields(method = "EvictCluster", cluster = request.get_ref().cluster_id.as_str()))]
    async fn evict_cluster(
        &self,
        request: Request<proto::EvictClusterRequest>,
    ) -> Result<Response<proto::EvictClusterResponse>, Status> {
        let r = request.into_inner();
        let id = validate::cluster_id("cluster_id", &r.cluster_id)?;
        let actor = self.actor(&id).await?;
        let freed = ask(&actor, |reply| ClusterMsg::Evict { reply }).await??;
        Ok(Response::new(proto::EvictClusterResponse {
            freed_bytes: freed,
        }))
    }

    #[tracing::instrument(name = "rpc", skip_all, fields(method = "PersistCluster", cluster = request.get_ref().cluster_id.as_str()))]
    async fn persist_cluster(
        &self,
        request: Request<proto::PersistClusterRequest>,
    ) -> Result<Response<proto::PersistClusterResponse>, Status> {
        let r = request.into_inner();
        let id = validate::cluster_id("cluster_id", &r.cluster_id)?;
        let actor = self.actor(&id).await?;
        let report = ask(&actor, |reply| ClusterMsg::Persist { reply }).await??;
        Ok(Response::new(proto::PersistClusterResponse {
            snapshot_bytes: report.snapshot_bytes,
            persist_ms: convert::millis(report.persist_time),
        }))
    }

    async fn get_server_info(
        &self,
        _request: Request<proto::GetServerInfoRequest>,
    ) -> Result<Response<proto::ServerInfo>, Status> {
        let (hot, bytes) = self.status.resident_totals();
        let f = &self.facts;
        Ok(Response::new(proto::ServerInfo {
            version: env!("CARGO_PKG_VERSION").into(),
            model: f.model.clone(),
            model_fingerprint: f.fingerprint.clone(),
            device: f.device.clone(),
            backend: f.backend.clone(),
            cache_bytes: bytes,
            max_cache_bytes: f.max_cache_bytes,
            hot_clusters: hot as u32,
            known_clusters: self.store.count() as u64,
            queue_depth: (self.capacity - self.admission.available_permits()) as u32,
            queue_capacity: self.capacity as u32,
            store_bytes: self.store.size_on_disk(),
            process_rss_bytes: process_rss_bytes(),
        }))
    }

    async fn get_scheduler_trace(
        &self,
        request: Request<proto::GetSchedulerTraceRequest>,
    ) -> Result<Response<proto::GetSchedulerTraceResponse>, Status> {
        let limit = request.into_inner().limit as usize;
        let trace = ask(&self.model.get(), |reply| ModelMsg::Trace { limit, reply }).await?;
        Ok(Response::new(proto::GetSchedulerTraceResponse {
            steps: trace
                .steps
                .into_iter()
                .map(|s| proto::SchedulerStep {
                    seq: s.seq,
                    cluster_id: s.cluster,
                    kind: match s.kind {
                        StepKind::Prefill => proto::StepKind::Prefill,
                        StepKind::Decode => proto::StepKind::Decode,
                    } as i32,
                    tokens: s.tokens,
                    pass: s.pass,
                })
                .collect(),
            decode_steps: trace.decode_steps.into_iter().collect(),
        }))
    }
}

/// Resident memory of this process (Linux; 0 elsewhere).
fn process_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}
