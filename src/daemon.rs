//! Wiring of `semkvd`: open the store, start the model actor (which loads the model)
//! and the registry, serve gRPC (semkv.v1, health, reflection) until shutdown, then
//! drain running requests, stop the actors and flush the store.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use ractor::Actor;
use tower::util::MapResponseLayer;

use crate::actors::model::{self, ModelArgs, ModelMsg, ModelSettings};
use crate::actors::registry::{Registry, RegistryArgs};
use crate::actors::{ask, SharedStatus};
use crate::api::{connections, limits, SemKvService, ServerFacts};
use crate::daemon_config::DaemonConfig;
use crate::error::ServiceError;
use crate::proto::sem_kv_server::SemKvServer;
use crate::scheduler::SchedulerConfig;
use crate::store::Store;
use semkv_engine::model::loader::load_engine;
use semkv_engine::LoadOptions;

/// Concurrent requests (HTTP/2 streams) one connection may carry.
const MAX_STREAMS_PER_CONNECTION: u32 = 256;

/// How often orphaned cache blobs are looked for while serving (they only appear when
/// a write fails between its blob and its record; the store also collects at start).
const ORPHAN_COLLECTION_INTERVAL: std::time::Duration = std::time::Duration::from_secs(600);

/// Why the daemon could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("store: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("{0}")]
    Start(#[from] ServiceError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("gRPC server: {0}")]
    Serve(#[from] tonic::transport::Error),
    #[error("reflection service: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
}

impl DaemonError {
    /// The process exit code for this error: 3 when the store cannot be used as it is
    /// (unreadable, older than acknowledged: `semkvd repair`), 4 when it belongs to
    /// another model, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        use crate::store::StoreError;
        match self {
            DaemonError::Store(StoreError::ModelMismatch { .. }) => 4,
            DaemonError::Store(
                StoreError::Unreadable { .. }
                | StoreError::RolledBack { .. }
                | StoreError::Corrupt { .. },
            ) => 3,
            _ => 1,
        }
    }
}

/// Runs the daemon until `shutdown` completes, then drains (at most
/// `config.drain_timeout`) and flushes. `on_ready` receives the bound address once
/// the server accepts connections.
pub async fn serve(
    config: DaemonConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
    on_ready: impl FnOnce(SocketAddr),
) -> Result<(), DaemonError> {
    let store = Store::open_with(&config.data_dir, config.store.clone())?;
    let status = Arc::new(SharedStatus::default());
    let model_args = {
        let (model_ref, device) = (config.model.clone(), config.device);
        let settings = ModelSettings {
            max_cache_bytes: config.max_cache_bytes,
            prefill_chunk: config.prefill_chunk,
            mlx_cache_limit: Some(config.mlx_cache_bytes),
            scheduler: SchedulerConfig {
                // A backstop: the API admits at most queue_depth requests.
                capacity: config.queue_depth,
                quantum: config.decode_weight,
                decode_cost: config.decode_weight,
                max_batch: config.max_batch,
                charge: config.step_charge,
                ..Default::default()
            },
        };
        let status = status.clone();
        move || {
            let model_ref = model_ref.clone();
            ModelArgs {
                loader: Box::new(move || {
                    load_engine(
                        &model_ref,
                        &LoadOptions {
                            device,
                            ..Default::default()
                        },
                    )
                }),
                settings: settings.clone(),
                status: status.clone(),
            }
        }
    };
    let supervised = model::supervise(model_args).await?;
    let model = supervised.handle.clone();
    let info = ask(&model.get(), |reply| ModelMsg::Info { reply }).await?;
    if let Err(e) = store.bind_model(&info.fingerprint) {
        supervised.shutdown().await;
        return Err(e.into());
    }
    let _collector = store.collect_garbage(ORPHAN_COLLECTION_INTERVAL);
    let (registry, registry_task) = Actor::spawn(
        Some("registry".into()),
        Registry,
        RegistryArgs {
            store: store.clone(),
            model: model.clone(),
            tokenizer: info.tokenizer.clone(),
            chat: info.chat.clone(),
            max_context: match config.max_context_tokens {
                0 => info.max_positions,
                n => n.min(info.max_positions),
            },
        },
    )
    .await
    .map_err(|e| ServiceError::Internal(format!("registry failed to start: {e}")))?;

    let service = SemKvService::new(
        registry.clone(),
        model.clone(),
        store.clone(),
        status,
        config.queue_depth,
        ServerFacts {
            model: config.model.clone(),
            fingerprint: info.fingerprint.clone(),
            device: info.device.device.clone(),
            backend: info.device.backend.to_owned(),
            max_cache_bytes: config.max_cache_bytes,
        },
    );
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<SemKvServer<SemKvService>>().await;
    // Health follows the model: NOT_SERVING while a stopped model actor is restarted.
    let mut serving = supervised.serving.clone();
    let model_health = {
        let health = health.clone();
        tokio::spawn(async move {
            while serving.changed().await.is_ok() {
                if *serving.borrow_and_update() {
                    health.set_serving::<SemKvServer<SemKvService>>().await;
                } else {
                    health.set_not_serving::<SemKvServer<SemKvService>>().await;
                }
            }
        })
    };
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        // Each reflection service also lists the other version, so any client's
        // `list` shows both.
        .register_encoded_file_descriptor_set(tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| DaemonError::Bind {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| DaemonError::Bind {
        addr: config.listen,
        source,
    })?;
    tracing::info!(
        %addr,
        model = config.model,
        fingerprint = info.fingerprint,
        device = info.device.device,
        data_dir = %config.data_dir.display(),
        clusters = store.count(),
        "semkvd serving"
    );
    on_ready(addr);

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let mut server_stop = stop_rx.clone();
    let server = tonic::transport::Server::builder()
        // Dead peers are noticed (and their connection slots freed) by keep-alive pings.
        .http2_keepalive_interval(Some(std::time::Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(std::time::Duration::from_secs(10)))
        .max_concurrent_streams(Some(MAX_STREAMS_PER_CONNECTION))
        // An oversized or malformed request: RESOURCE_EXHAUSTED / INVALID_ARGUMENT,
        // not tonic's OUT_OF_RANGE / INTERNAL (api/limits.rs).
        .layer(MapResponseLayer::new(limits::rewrite_decode_status))
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(
            SemKvServer::new(service)
                .max_decoding_message_size(limits::MAX_REQUEST_BYTES)
                .max_encoding_message_size(limits::MAX_REPLY_BYTES),
        )
        // Streamed tokens go out at once: without TCP_NODELAY a small message can wait
        // for the peer's delayed ACK (~40 ms measured on the first token).
        .serve_with_incoming_shutdown(
            connections::incoming(listener, config.max_connections),
            async move {
                let _ = server_stop.wait_for(|stop| *stop).await;
                tracing::info!("shutting down: no new requests; draining running ones");
            },
        );
    tokio::pin!(server);
    let mut drain_stop = stop_rx;
    let drain = config.drain_timeout;
    let result = tokio::select! {
        result = &mut server => result.map_err(DaemonError::from),
        _ = async move {
            let _ = drain_stop.wait_for(|stop| *stop).await;
            tokio::time::sleep(drain).await;
        } => {
            tracing::warn!(timeout = ?drain, "drain timeout: stopping with requests still running");
            Ok(())
        }
    };

    health.set_not_serving::<SemKvServer<SemKvService>>().await;
    registry.stop(Some(crate::actors::registry::SHUTDOWN.into()));
    let _ = registry_task.await;
    model_health.abort();
    supervised.shutdown().await;
    store.flush().await?;
    tracing::info!("store flushed; bye");
    result
}
