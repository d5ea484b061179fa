//! The model actor is supervised: the daemon (run in-process here, so the test can
//! reach the actor) survives its death. A new one is started, the caches come back
//! from the store without re-prefill, and health reports SERVING again.

mod common;

use std::time::{Duration, Instant};

use common::*;
use semkv::daemon::serve;
use semkv::daemon_config::DaemonConfig;
use semkv::proto;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

fn model_actor() -> Option<ractor::ActorCell> {
    ractor::registry::where_is("model")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_model_actor_is_restarted_and_service_returns() {
    let dir = tempfile::tempdir().unwrap();
    let config = DaemonConfig::from_args([
        "semkvd",
        "--model",
        model_dir().to_str().unwrap(),
        "--device",
        "cpu",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        dir.path().to_str().unwrap(),
    ])
    .unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
    let daemon = tokio::spawn(serve(
        config,
        async move {
            let _ = stop_rx.await;
        },
        move |addr| {
            let _ = addr_tx.send(addr);
        },
    ));
    let addr = addr_rx.await.expect("the daemon listens");
    let url = format!("http://{addr}");
    let mut c = semkv::proto::sem_kv_client::SemKvClient::connect(url.clone())
        .await
        .unwrap();
    create(&mut c, "a").await;
    append(&mut c, "a", &text(40, 1)).await;
    let before = summary(&mut c, greedy("a", 8, false)).await;

    // The model actor dies (as after a panic in a handler, or a kill).
    let first = model_actor().expect("the model actor is registered");
    first.kill();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match model_actor() {
            Some(now) if now.get_id() != first.get_id() => break,
            _ => {
                assert!(Instant::now() < deadline, "no new model actor");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }

    // Service returns: the cache comes back from the store, nothing re-prefilled.
    let mut after = None;
    while Instant::now() < deadline {
        match generate(&mut c, greedy("a", 8, false)).await {
            Ok((_, s)) => {
                after = Some(s);
                break;
            }
            Err(e) if e.code() == tonic::Code::Unavailable => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(e) => panic!("{e}"),
        }
    }
    let after = after.expect("service returned");
    assert_eq!(after.tokens, before.tokens);
    let load = after.cache_load.unwrap();
    assert!(load.loaded_from_disk, "{load:?}");
    assert_eq!(load.rebuilt_tokens, 0);
    append(&mut c, "a", "and it goes on").await;

    let channel = tonic::transport::Endpoint::from_shared(url)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let status = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: "semkv.v1.SemKv".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .status;
    assert_eq!(status, ServingStatus::Serving as i32);
    let _ = c
        .list_clusters(proto::ListClustersRequest::default())
        .await
        .unwrap();

    let _ = stop_tx.send(());
    daemon.await.unwrap().expect("clean shutdown");
}
