//! The registry: finds cluster actors, starts them lazily (on first use, also after
//! a daemon restart) and supervises them. A cluster actor that fails is restarted
//! from its persisted state; the other clusters are not affected.

use std::collections::HashMap;
use std::sync::Arc;

use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};

use crate::cluster_id::ClusterId;
use crate::error::ServiceError;
use crate::store::{ClusterMeta, Store};
use semkv_engine::generate::chat::ChatTemplate;
use semkv_engine::generate::tokenizer::TextTokenizer;

use super::cluster::{ClusterActor, ClusterArgs, ClusterContext, ClusterMsg, DELETED};
use super::model::ModelHandle;

/// The reason the registry gives its cluster actors when the daemon stops.
pub const SHUTDOWN: &str = "shutdown";

/// Messages of the registry.
pub enum RegistryMsg {
    /// Stores a new cluster.
    Create {
        meta: ClusterMeta,
        reply: RpcReplyPort<Result<ClusterMeta, ServiceError>>,
    },
    /// The actor of a cluster, started if needed; `NotFound` if there is no such cluster.
    Get {
        id: ClusterId,
        reply: RpcReplyPort<Result<ActorRef<ClusterMsg>, ServiceError>>,
    },
    /// A cluster actor deleted its cluster.
    Deleted { id: ClusterId, actor: ActorId },
    /// Counters.
    Stats { reply: RpcReplyPort<RegistryStats> },
}

/// Registry counters.
#[derive(Debug, Clone, Copy, Default)]
pub struct RegistryStats {
    /// Cluster actors alive.
    pub live: usize,
    /// Cluster actors restarted after a failure.
    pub restarts: u64,
}

/// What the registry starts from.
pub struct RegistryArgs {
    pub store: Store,
    pub model: ModelHandle,
    pub tokenizer: TextTokenizer,
    /// The model's chat template (none: only raw text).
    pub chat: Option<ChatTemplate>,
    /// Most tokens a cluster may hold.
    pub max_context: usize,
}

/// The registry actor.
pub struct Registry;

/// The registry's state.
pub struct RegistryState {
    ctx: Arc<ClusterContext>,
    actors: HashMap<ClusterId, ActorRef<ClusterMsg>>,
    restarts: u64,
}

impl RegistryState {
    async fn start(
        &mut self,
        myself: &ActorRef<RegistryMsg>,
        id: &ClusterId,
        restarted: bool,
    ) -> Result<ActorRef<ClusterMsg>, ServiceError> {
        let args = ClusterArgs {
            id: id.clone(),
            ctx: self.ctx.clone(),
            restarted,
        };
        let (actor, _) = Actor::spawn_linked(None, ClusterActor, args, myself.get_cell())
            .await
            .map_err(|e| ServiceError::Internal(format!("cannot start cluster actor: {e}")))?;
        self.actors.insert(id.clone(), actor.clone());
        Ok(actor)
    }

    fn id_of(&self, actor: ActorId) -> Option<ClusterId> {
        self.actors
            .iter()
            .find(|(_, a)| a.get_id() == actor)
            .map(|(id, _)| id.clone())
    }
}

impl Actor for Registry {
    type Msg = RegistryMsg;
    type State = RegistryState;
    type Arguments = RegistryArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<RegistryMsg>,
        args: RegistryArgs,
    ) -> Result<RegistryState, ActorProcessingErr> {
        Ok(RegistryState {
            ctx: Arc::new(ClusterContext {
                store: args.store,
                model: args.model,
                tokenizer: args.tokenizer,
                chat: args.chat,
                max_context: args.max_context,
                registry: myself,
            }),
            actors: HashMap::new(),
            restarts: 0,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<RegistryMsg>,
        message: RegistryMsg,
        state: &mut RegistryState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            RegistryMsg::Create { meta, reply } => {
                let result = state.ctx.store.create(&meta).await.map(|_| meta);
                let _ = reply.send(result.map_err(ServiceError::from));
            }
            RegistryMsg::Get { id, reply } => {
                let result = match state.actors.get(&id) {
                    Some(actor) => Ok(actor.clone()),
                    None => match state.ctx.store.meta(id.as_str()) {
                        Ok(Some(_)) => state.start(&myself, &id, false).await,
                        Ok(None) => Err(ServiceError::NotFound(id.to_string())),
                        Err(e) => Err(e.into()),
                    },
                };
                let _ = reply.send(result);
            }
            RegistryMsg::Deleted { id, actor } => {
                if state.actors.get(&id).is_some_and(|a| a.get_id() == actor) {
                    state.actors.remove(&id);
                }
            }
            RegistryMsg::Stats { reply } => {
                let _ = reply.send(RegistryStats {
                    live: state.actors.len(),
                    restarts: state.restarts,
                });
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<RegistryMsg>,
        event: SupervisionEvent,
        state: &mut RegistryState,
    ) -> Result<(), ActorProcessingErr> {
        let (cell, why) = match event {
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                if matches!(reason.as_deref(), Some(DELETED) | Some(SHUTDOWN)) {
                    if let Some(id) = state.id_of(cell.get_id()) {
                        state.actors.remove(&id);
                    }
                    return Ok(());
                }
                (cell, reason.unwrap_or_else(|| "stopped".into()))
            }
            SupervisionEvent::ActorFailed(cell, error) => (cell, error.to_string()),
            _ => return Ok(()),
        };
        let Some(id) = state.id_of(cell.get_id()) else {
            return Ok(());
        };
        state.actors.remove(&id);
        tracing::error!(
            cluster = %id,
            reason = why,
            "cluster actor ended unexpectedly; restarting it"
        );
        match state.ctx.store.meta(id.as_str()) {
            Ok(Some(_)) => match state.start(&myself, &id, true).await {
                Ok(_) => state.restarts += 1,
                Err(e) => {
                    tracing::error!(cluster = %id, error = %e, "restart failed; will retry on next use")
                }
            },
            Ok(None) => {}
            Err(e) => tracing::error!(cluster = %id, error = %e, "cannot read cluster metadata"),
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<RegistryMsg>,
        state: &mut RegistryState,
    ) -> Result<(), ActorProcessingErr> {
        for actor in state.actors.values() {
            actor.stop(Some(SHUTDOWN.into()));
        }
        Ok(())
    }
}
