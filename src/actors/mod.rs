//! The daemon's actors (ractor).
//!
//! - [`model::ModelActor`]: the only place MLX runs. It owns the engine and every
//!   in-memory cache, and runs all prefill and decode steps, one at a time, in the
//!   order the fair [`crate::scheduler`] picks. It lives on a dedicated OS thread.
//! - [`cluster::ClusterActor`]: one per cluster. It owns the cluster's metadata, turn
//!   log and token log, serializes the operations on its cluster, turns requests into
//!   model work and makes the results durable in the [`crate::store`] before it
//!   acknowledges them.
//! - [`registry::Registry`]: creates cluster actors on first use (lazily, also after a
//!   restart), finds them, and supervises them: a cluster actor that crashes is
//!   restarted from its persisted state while the others keep serving.

pub mod cluster;
pub mod model;
pub mod prompt;
pub mod registry;
pub mod work;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use ractor::rpc::CallResult;
use ractor::{ActorRef, Message, RpcReplyPort};

use crate::error::ServiceError;
use semkv_engine::generate::FinishReason;

/// How turns become tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TurnFormat {
    /// The model's chat template (see [`semkv_engine::generate::chat`]).
    #[default]
    Chat,
    /// Texts tokenized as they are.
    Raw,
}

/// How a cluster's cache was brought into memory for a request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadReport {
    /// It was cold and came from the store.
    pub loaded_from_disk: bool,
    /// Tokens re-prefilled because the stored cache failed a check (0: none).
    pub rebuilt_tokens: usize,
    /// Why the rebuild was needed.
    pub rebuild_reason: Option<String>,
    /// Reading the stored records and turning them into the in-memory cache (not a
    /// rebuild's prefill).
    pub load_time: Duration,
}

/// The summary of a finished generation.
#[derive(Debug, Clone)]
pub struct GenerationSummary {
    pub text: String,
    pub tokens: Vec<u32>,
    pub finish_reason: FinishReason,
    pub prompt_tokens: usize,
    /// Tokens already in the cache that were reused.
    pub reused_tokens: usize,
    pub time_to_first_token: Duration,
    pub tokens_per_second: f64,
    pub queue_time: Duration,
    /// Tokens in the cluster's cache afterwards.
    pub total_tokens: usize,
    pub committed: bool,
    pub load: LoadReport,
}

/// What a generation stream carries.
#[derive(Debug, Clone)]
pub enum GenEvent {
    /// A generated token and the text it completes.
    Token { id: u32, text: String },
    /// The generation is over (always the last event).
    Done(Box<GenerationSummary>),
}

/// State shared with the API for read-only queries that must not wait behind a busy
/// actor: which caches are in memory and how big they are.
#[derive(Debug, Default)]
pub struct SharedStatus {
    resident: Mutex<HashMap<String, u64>>,
    queue_len: AtomicUsize,
}

impl SharedStatus {
    /// Bytes of a cluster's in-memory cache (None when cold).
    pub fn resident_bytes(&self, cluster: &str) -> Option<u64> {
        self.resident
            .lock()
            .ok()
            .and_then(|m| m.get(cluster).copied())
    }

    /// (number of hot clusters, their bytes).
    pub fn resident_totals(&self) -> (usize, u64) {
        self.resident
            .lock()
            .map(|m| (m.len(), m.values().sum()))
            .unwrap_or((0, 0))
    }

    /// Jobs in the model's scheduler.
    pub fn queue_len(&self) -> usize {
        self.queue_len.load(Ordering::Relaxed)
    }

    pub(crate) fn set_resident(&self, cluster: &str, bytes: Option<u64>) {
        if let Ok(mut m) = self.resident.lock() {
            match bytes {
                Some(b) => {
                    m.insert(cluster.to_owned(), b);
                }
                None => {
                    m.remove(cluster);
                }
            }
        }
    }

    pub(crate) fn set_queue_len(&self, n: usize) {
        self.queue_len.store(n, Ordering::Relaxed);
    }
}

/// Sends `msg` to `actor` and waits for its reply; an actor that is gone (or drops
/// the reply) gives [`ServiceError::Unavailable`].
pub async fn ask<M: Message, T: Send + 'static>(
    actor: &ActorRef<M>,
    msg: impl FnOnce(RpcReplyPort<T>) -> M,
) -> Result<T, ServiceError> {
    match actor.call(msg, None).await {
        Ok(CallResult::Success(v)) => Ok(v),
        Ok(_) | Err(_) => Err(ServiceError::Unavailable(format!(
            "{} is not running (restarting or shutting down); retry",
            actor.get_name().unwrap_or_else(|| "an actor".into())
        ))),
    }
}
