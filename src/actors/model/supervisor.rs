//! Keeps a model actor running.
//!
//! [`ModelHandle`] is the model's address for everyone else (the API, the registry,
//! cluster actors): it always names the current model actor. [`supervise`] starts the
//! actor and, whenever it ends without being asked to (a panic in a handler, a kill),
//! starts a new one — the weights are loaded again, the caches come back lazily from
//! the store on their next use — and points the handle at it. Requests that were
//! running get `UNAVAILABLE` ("retry"), and [`Supervised::serving`] reports `false`
//! meanwhile (the daemon's health check follows it).

use std::sync::{Arc, RwLock};
use std::time::Duration;

use ractor::ActorRef;
use tokio::sync::watch;

use crate::error::ServiceError;

use super::{spawn, ModelArgs, ModelMsg};

/// The current model actor (see the module documentation). Cheap to clone.
#[derive(Clone)]
pub struct ModelHandle(Arc<RwLock<ActorRef<ModelMsg>>>);

impl ModelHandle {
    /// A handle on `actor` (not supervised: for tests that run the actor directly).
    pub fn new(actor: ActorRef<ModelMsg>) -> Self {
        Self(Arc::new(RwLock::new(actor)))
    }

    /// The model actor now.
    pub fn get(&self) -> ActorRef<ModelMsg> {
        self.0.read().expect("model handle lock").clone()
    }

    fn set(&self, actor: ActorRef<ModelMsg>) {
        *self.0.write().expect("model handle lock") = actor;
    }
}

/// A supervised model actor.
pub struct Supervised {
    /// Its address.
    pub handle: ModelHandle,
    /// `true` while a model actor is running, `false` while one is being restarted.
    pub serving: watch::Receiver<bool>,
    /// Restarts so far.
    pub restarts: watch::Receiver<u64>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Supervised {
    /// Stops the model actor for good and waits for its thread to end.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        self.handle.get().stop(None);
        let _ = self.task.await;
    }
}

/// How long to wait before trying again when a restart fails (e.g. the weights cannot
/// be read at the moment).
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Starts a model actor with `args()` and keeps one running (see the module
/// documentation). Fails if the first start fails.
pub async fn supervise(
    args: impl Fn() -> ModelArgs + Send + Sync + 'static,
) -> Result<Supervised, ServiceError> {
    let (actor, mut thread) = spawn(args()).await?;
    let handle = ModelHandle::new(actor);
    let (serving_tx, serving) = watch::channel(true);
    let (restarts_tx, restarts) = watch::channel(0u64);
    let (stop, stop_rx) = watch::channel(false);
    let task = {
        let handle = handle.clone();
        tokio::spawn(async move {
            loop {
                let _ = tokio::task::spawn_blocking(move || thread.join()).await;
                if *stop_rx.borrow() {
                    return;
                }
                tracing::error!("the model actor stopped; starting a new one");
                let _ = serving_tx.send(false);
                loop {
                    match spawn(args()).await {
                        Ok((actor, t)) => {
                            handle.set(actor);
                            thread = t;
                            break;
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "restarting the model failed; retrying");
                            tokio::time::sleep(RETRY_AFTER).await;
                        }
                    }
                    if *stop_rx.borrow() {
                        return;
                    }
                }
                restarts_tx.send_modify(|n| *n += 1);
                let _ = serving_tx.send(true);
                tracing::info!("the model actor is running again");
            }
        })
    };
    Ok(Supervised {
        handle,
        serving,
        restarts,
        stop,
        task,
    })
}
