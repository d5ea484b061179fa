//! The cluster actor: one per cluster. It owns the cluster's metadata and logs,
//! serializes the operations on its cluster, has the model actor do the model work,
//! and makes every change durable in the store before acknowledging it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef};
use tokio::sync::mpsc::UnboundedSender;

use crate::cluster_id::ClusterId;
use crate::error::ServiceError;
use crate::store::{ClusterMeta, KvWrite};
use semkv_engine::generate::chat::{Role, Turn};

use super::model::{ForgetReason, ModelMsg, OpOutcome, Restore, RunError, RunRequest};
use super::registry::RegistryMsg;
use super::work::{GenerateSpec, Op};
use super::{ask, prompt, GenEvent, GenerationSummary, LoadReport, TurnFormat};

mod messages;

pub use messages::{
    AppendReport, ClusterArgs, ClusterContext, ClusterMsg, GenerateParams, PersistReport,
    ScoreParams, ScoreReport,
};

/// The cluster actor (see the module documentation).
pub struct ClusterActor;

/// A cluster actor's state.
pub struct ClusterState {
    id: ClusterId,
    meta: ClusterMeta,
    ctx: Arc<ClusterContext>,
    deleted: bool,
}

impl Actor for ClusterActor {
    type Msg = ClusterMsg;
    type State = ClusterState;
    type Arguments = ClusterArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<ClusterMsg>,
        args: ClusterArgs,
    ) -> Result<ClusterState, ActorProcessingErr> {
        let meta = args
            .ctx
            .store
            .meta(args.id.as_str())?
            .ok_or_else(|| ServiceError::NotFound(args.id.to_string()))?;
        if args.restarted {
            args.ctx.model.get().cast(ModelMsg::Forget {
                cluster: args.id.clone(),
                why: ForgetReason::Reset,
            })?;
        }
        Ok(ClusterState {
            id: args.id,
            meta,
            ctx: args.ctx,
            deleted: false,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<ClusterMsg>,
        message: ClusterMsg,
        state: &mut ClusterState,
    ) -> Result<(), ActorProcessingErr> {
        if state.deleted {
            let gone = ServiceError::NotFound(state.id.to_string());
            match message {
                ClusterMsg::Append { reply, .. } => drop(reply.send(Err(gone))),
                ClusterMsg::Generate { reply, .. } => drop(reply.send(Err(gone))),
                ClusterMsg::Score { reply, .. } => drop(reply.send(Err(gone))),
                ClusterMsg::Fork { reply, .. } => drop(reply.send(Err(gone))),
                ClusterMsg::Evict { reply } => drop(reply.send(Err(gone))),
                ClusterMsg::Persist { reply } => drop(reply.send(Err(gone))),
                ClusterMsg::Delete { reply } => drop(reply.send(Err(gone))),
            }
            return Ok(());
        }
        match message {
            ClusterMsg::Append {
                turns,
                format,
                client,
                reply,
            } => {
                let _ = reply.send(state.append(turns, format, client).await);
            }
            ClusterMsg::Generate {
                params,
                events,
                reply,
            } => {
                let _ = reply.send(state.generate(params, events).await);
            }
            ClusterMsg::Fork {
                new_id,
                labels,
                reply,
            } => {
                let _ = reply.send(state.fork(new_id, labels).await);
            }
            ClusterMsg::Score {
                params,
                client,
                reply,
            } => {
                let _ = reply.send(state.score(params, client).await);
            }
            ClusterMsg::Evict { reply } => {
                let _ = reply.send(state.evict().await);
            }
            ClusterMsg::Persist { reply } => {
                let _ = reply.send(state.persist().await);
            }
            ClusterMsg::Delete { reply } => {
                let result = state.delete(myself.get_id()).await;
                let ok = result.is_ok();
                let _ = reply.send(result);
                if ok {
                    myself.stop(Some(DELETED.into()));
                }
            }
        }
        Ok(())
    }
}

/// The stop reason of a deleted cluster's actor (it is not restarted).
pub const DELETED: &str = "deleted";

/// The error of an operation whose client left before it was stored: nothing of it
/// is committed (the model's copy of the cache, now ahead of the store, is reloaded on
/// the next use).
fn gone_before_commit() -> ServiceError {
    ServiceError::Unavailable(
        "the client went away before the operation was stored; nothing was committed".into(),
    )
}

/// Updates the cache bookkeeping of `meta` for a cache write.
fn account(meta: &mut ClusterMeta, kv: &KvWrite, load: &LoadReport) {
    match kv {
        KvWrite::None => {}
        KvWrite::Delta { kv, .. } => {
            meta.next_delta += 1;
            meta.deltas_since_base += 1;
            meta.delta_bytes_since_base += kv.len() as u64;
        }
        KvWrite::Snapshot { kv, .. } => {
            meta.deltas_since_base = 0;
            meta.delta_bytes_since_base = 0;
            meta.base_bytes = kv.len() as u64;
        }
    }
    if load.rebuild_reason.is_some() {
        meta.rebuilds += 1;
    }
}

impl ClusterState {
    fn id(&self) -> &str {
        self.id.as_str()
    }

    /// OUT_OF_RANGE naming `field` when the cluster would hold `tokens` tokens, more
    /// than its context limit, after `what`.
    fn fits(&self, field: &str, tokens: usize, what: &str) -> Result<(), ServiceError> {
        let limit = self.ctx.max_context;
        if tokens <= limit {
            return Ok(());
        }
        Err(ServiceError::OutOfRange {
            field: field.to_owned(),
            message: format!(
                "with {what} the cluster would hold {tokens} tokens, over its context limit of {limit} (the model's positions or --max-context-tokens); it holds {}",
                self.meta.tokens
            ),
        })
    }

    fn encode(&self, text: &str) -> Result<Vec<u32>, ServiceError> {
        if text.is_empty() {
            return Ok(Vec::new());
        }
        self.ctx
            .tokenizer
            .encode(text)
            .map_err(|e| ServiceError::Internal(e.to_string()))
    }

    /// Runs `op` on the model, restoring the cache from the store if it is cold.
    async fn run(
        &self,
        op: Op,
        events: Option<UnboundedSender<GenEvent>>,
        snapshot: bool,
    ) -> Result<OpOutcome, ServiceError> {
        let mut restore: Option<Restore> = None;
        for _ in 0..3 {
            let (cluster, op, events) = (self.id.clone(), op.clone(), events.clone());
            let (expected_tokens, restore_now) = (self.meta.tokens as usize, restore.take());
            let result = ask(&self.ctx.model.get(), move |reply| {
                ModelMsg::Run(Box::new(RunRequest {
                    cluster,
                    op,
                    expected_tokens,
                    restore: restore_now,
                    snapshot,
                    events,
                    reply,
                }))
            })
            .await?;
            match result {
                Ok(outcome) => return Ok(outcome),
                Err(RunError::Service(e)) => return Err(e),
                Err(RunError::NeedsRestore) => {
                    let started = Instant::now();
                    let cache = self.ctx.store.cache(self.id())?;
                    let segments = self.ctx.store.segments(self.id()).unwrap_or_else(|e| {
                        tracing::error!(cluster = self.id(), error = %e, "token log damaged");
                        Vec::new()
                    });
                    restore = Some(Restore {
                        cache,
                        segments,
                        read_time: started.elapsed(),
                    });
                }
            }
        }
        Err(ServiceError::Internal(
            "the cluster's cache could not be brought into memory".into(),
        ))
    }

    async fn append(
        &mut self,
        turns: Vec<Turn>,
        format: TurnFormat,
        client: UnboundedSender<GenEvent>,
    ) -> Result<AppendReport, ServiceError> {
        let before = self.meta.clone();
        let mut after = before.clone();
        let text = prompt::append_text(
            self.ctx.chat.as_ref(),
            &turns,
            format,
            before.tokens == 0,
            &mut after.pending_system,
        )?;
        let tokens = self.encode(&text)?;
        self.fits(
            "turns",
            before.tokens as usize + tokens.len(),
            "appending these turns",
        )?;
        let tokens_added = tokens.len();
        let outcome = if tokens.is_empty() {
            None
        } else {
            Some(
                self.run(
                    Op::Prefill { tokens },
                    Some(client.clone()),
                    before.wants_compaction(),
                )
                .await?,
            )
        };
        let (segments, kv, load, prefill_time, queue_time) = match outcome {
            Some(o) => {
                after.tokens = o.total_tokens as u64;
                (o.segments, o.kv, o.load, o.model_time, o.queue_time)
            }
            None => (
                Vec::new(),
                KvWrite::None,
                LoadReport::default(),
                Duration::ZERO,
                Duration::ZERO,
            ),
        };
        if client.is_closed() {
            return Err(gone_before_commit());
        }
        after.turns += turns.len() as u64;
        after.segments += segments.len() as u64;
        account(&mut after, &kv, &load);
        let started = Instant::now();
        self.ctx
            .store
            .commit(&before, &after, &segments, &turns, kv)
            .await?;
        self.meta = after;
        Ok(AppendReport {
            tokens_added,
            total_tokens: self.meta.tokens as usize,
            prefill_time,
            queue_time,
            persist_time: started.elapsed(),
            load,
        })
    }

    /// The tokens of a generation's (or a score's) prompt: `turns` and, in chat
    /// format, the opening of the model's answer. An empty cluster needs some; `hint`
    /// says what to give.
    fn prompt_tokens(
        &self,
        turns: &[Turn],
        format: TurnFormat,
        pending: &mut Option<String>,
        hint: &str,
    ) -> Result<Vec<u32>, ServiceError> {
        let empty = self.meta.tokens == 0;
        let text = prompt::generation_text(self.ctx.chat.as_ref(), turns, format, empty, pending)?;
        let tokens = self.encode(&text)?;
        if tokens.is_empty() && empty {
            return Err(ServiceError::invalid(
                "turns",
                format!("the cluster is empty: {hint}"),
            ));
        }
        Ok(tokens)
    }

    async fn generate(
        &mut self,
        params: GenerateParams,
        events: UnboundedSender<GenEvent>,
    ) -> Result<(), ServiceError> {
        let before = self.meta.clone();
        let mut pending = before.pending_system.clone();
        let prompt = self.prompt_tokens(
            &params.turns,
            params.format,
            &mut pending,
            "give some text to generate from",
        )?;
        let with_prompt = before.tokens as usize + prompt.len();
        self.fits("turns", with_prompt, "this prompt")?;
        self.fits(
            "max_tokens",
            with_prompt + params.options.max_tokens,
            "this prompt and max_tokens",
        )?;
        let spec = GenerateSpec {
            prompt,
            options: params.options.clone(),
            commit: params.commit,
            close_chat_turn: params.commit && params.format == TurnFormat::Chat,
        };
        let outcome = self
            .run(
                Op::Generate(spec),
                Some(events.clone()),
                params.commit && before.wants_compaction(),
            )
            .await?;
        let output = outcome
            .output
            .ok_or_else(|| ServiceError::Internal("generation produced no result".into()))?;
        if params.commit && events.is_closed() {
            return Err(gone_before_commit());
        }
        if params.commit || !matches!(outcome.kv, KvWrite::None) {
            let mut after = before.clone();
            let mut turns = Vec::new();
            if params.commit {
                after.pending_system = pending;
                after.tokens = outcome.total_tokens as u64;
                after.segments += outcome.segments.len() as u64;
                turns = params.turns.clone();
                turns.push(Turn {
                    role: Role::Assistant,
                    text: output.text.clone(),
                });
                after.turns += turns.len() as u64;
            }
            account(&mut after, &outcome.kv, &outcome.load);
            self.ctx
                .store
                .commit(&before, &after, &outcome.segments, &turns, outcome.kv)
                .await?;
            self.meta = after;
        }
        let summary = GenerationSummary {
            tokens_per_second: output.decode_tokens_per_second(),
            text: output.text,
            tokens: output.tokens,
            finish_reason: output.finish_reason,
            prompt_tokens: output.prompt_tokens,
            // Tokens a rebuild re-prefilled were not reused (they are in `load`).
            reused_tokens: output
                .cached_tokens
                .saturating_sub(outcome.load.rebuilt_tokens),
            time_to_first_token: output.time_to_first_token,
            queue_time: outcome.queue_time,
            total_tokens: self.meta.tokens as usize,
            committed: params.commit,
            load: outcome.load,
        };
        let _ = events.send(GenEvent::Done(Box::new(summary)));
        Ok(())
    }

    async fn score(
        &mut self,
        params: ScoreParams,
        client: UnboundedSender<GenEvent>,
    ) -> Result<ScoreReport, ServiceError> {
        let before = self.meta.clone();
        let mut pending = before.pending_system.clone();
        let prompt = self.prompt_tokens(
            &params.turns,
            params.format,
            &mut pending,
            "give some turns to score the continuation after",
        )?;
        let continuation = self.encode(&params.continuation)?;
        if continuation.is_empty() {
            return Err(ServiceError::invalid(
                "continuation",
                "has no tokens to score",
            ));
        }
        self.fits(
            "continuation",
            before.tokens as usize + prompt.len() + continuation.len(),
            "these turns and this continuation",
        )?;
        let prompt_tokens = prompt.len();
        let outcome = self
            .run(
                Op::Score {
                    prompt,
                    continuation,
                },
                Some(client.clone()),
                false,
            )
            .await?;
        if client.is_closed() {
            return Err(ServiceError::Unavailable("the client went away".into()));
        }
        // A cache rebuilt on the way is worth keeping (the cluster itself is unchanged).
        if !matches!(outcome.kv, KvWrite::None) {
            let mut after = before.clone();
            account(&mut after, &outcome.kv, &outcome.load);
            self.ctx
                .store
                .commit(&before, &after, &[], &[], outcome.kv)
                .await?;
            self.meta = after;
        }
        Ok(ScoreReport {
            scores: outcome.scores,
            prompt_tokens,
            reused_tokens: (before.tokens as usize).saturating_sub(outcome.load.rebuilt_tokens),
            queue_time: outcome.queue_time,
            model_time: outcome.model_time,
            load: outcome.load,
        })
    }

    async fn fork(
        &mut self,
        new_id: ClusterId,
        labels: Option<BTreeMap<String, String>>,
    ) -> Result<ClusterMeta, ServiceError> {
        let fresh = ClusterMeta::new(new_id.as_str(), BTreeMap::new());
        let mut to = self.meta.clone();
        to.id = new_id.to_string();
        to.labels = labels.unwrap_or_else(|| self.meta.labels.clone());
        to.created_unix_ms = fresh.created_unix_ms;
        to.rebuilds = 0;
        self.ctx.store.copy(self.id(), &to).await?;
        let _ = self.ctx.model.get().cast(ModelMsg::CopyCache {
            from: self.id.clone(),
            to: new_id,
        });
        Ok(to)
    }

    async fn evict(&mut self) -> Result<u64, ServiceError> {
        let cluster = self.id.clone();
        ask(&self.ctx.model.get(), |reply| ModelMsg::Evict {
            cluster,
            reply,
        })
        .await
    }

    async fn persist(&mut self) -> Result<PersistReport, ServiceError> {
        let started = Instant::now();
        let cluster = self.id.clone();
        let expected_tokens = self.meta.tokens as usize;
        let snapshot = ask(&self.ctx.model.get(), |reply| ModelMsg::Snapshot {
            cluster,
            expected_tokens,
            reply,
        })
        .await??;
        let Some(kv) = snapshot else {
            self.ctx.store.flush().await?;
            return Ok(PersistReport {
                snapshot_bytes: 0,
                persist_time: started.elapsed(),
            });
        };
        let before = self.meta.clone();
        let mut after = before.clone();
        account(&mut after, &kv, &LoadReport::default());
        self.ctx.store.commit(&before, &after, &[], &[], kv).await?;
        self.meta = after;
        Ok(PersistReport {
            snapshot_bytes: self.meta.base_bytes,
            persist_time: started.elapsed(),
        })
    }

    async fn delete(&mut self, me: ActorId) -> Result<(), ServiceError> {
        self.ctx.store.delete(self.id()).await?;
        let _ = self.ctx.model.get().cast(ModelMsg::Forget {
            cluster: self.id.clone(),
            why: ForgetReason::Deleted,
        });
        let _ = self.ctx.registry.cast(RegistryMsg::Deleted {
            id: self.id.clone(),
            actor: me,
        });
        self.deleted = true;
        Ok(())
    }
}
