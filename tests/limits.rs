//! Request bounds through a real `semkvd` on the tiny model: a cluster cannot grow past
//! its context limit (the model's positions, or `--max-context-tokens`); such a
//! request gets OUT_OF_RANGE naming the field and the limit, before any work, and
//! nothing of it is committed.

mod common;

use common::*;
use semkv::proto;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_cannot_grow_past_its_context_limit() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), &["--max-context-tokens", "200"]);
    let mut c = daemon.client().await;
    create(&mut c, "small").await;
    append(&mut c, "small", &text(20, 1)).await;
    let held = cache_tokens(&mut c, "small").await;
    assert!(held > 0 && held < 200);

    // An append that would cross the limit.
    let err = c
        .append_turns(proto::AppendTurnsRequest {
            cluster_id: "small".into(),
            turns: vec![user(&text(200, 2))],
            format: proto::TurnFormat::Chat as i32,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::OutOfRange, "{err:?}");
    assert!(err.message().starts_with("turns:"), "{}", err.message());
    assert!(err.message().contains("limit of 200"), "{}", err.message());
    assert_eq!(
        cache_tokens(&mut c, "small").await,
        held,
        "nothing committed"
    );

    // A generation whose max_tokens would cross it (committed or not).
    for commit in [true, false] {
        let mut request = greedy("small", 500, commit);
        request.turns = vec![user("and then?")];
        let err = match c.generate(request).await {
            Err(status) => status,
            Ok(stream) => {
                let mut stream = stream.into_inner();
                stream
                    .message()
                    .await
                    .expect_err("refused before any token")
            }
        };
        assert_eq!(err.code(), tonic::Code::OutOfRange, "{err:?}");
        assert!(
            err.message().starts_with("max_tokens:"),
            "{}",
            err.message()
        );
    }
    assert_eq!(cache_tokens(&mut c, "small").await, held);

    // Within the limit everything works as before.
    let s = summary(&mut c, greedy("small", 8, true)).await;
    assert_eq!(s.tokens.len(), 8);
    daemon.kill9();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_model_positions_bound_the_limit() {
    // The tiny model has 4,096 positions: a larger flag does not raise the limit.
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), &["--max-context-tokens", "1000000"]);
    let mut c = daemon.client().await;
    create(&mut c, "big").await;
    let err = c
        .append_turns(proto::AppendTurnsRequest {
            cluster_id: "big".into(),
            turns: vec![user(&text(5000, 3))],
            format: proto::TurnFormat::Chat as i32,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::OutOfRange, "{err:?}");
    assert!(err.message().contains("limit of 4096"), "{}", err.message());
    assert_eq!(cache_tokens(&mut c, "big").await, 0);
    daemon.kill9();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_cap_wait_and_sigterm_is_not_held_by_idle_clients() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(
        dir.path(),
        &["--max-connections", "2", "--drain-timeout", "2s"],
    );
    let mut c = daemon.client().await;
    create(&mut c, "x").await;
    // A second connection that never says anything takes the last slot.
    let idle = std::net::TcpStream::connect(&daemon.addr).unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{}", daemon.addr))
        .unwrap()
        .connect_timeout(std::time::Duration::from_secs(1))
        .timeout(std::time::Duration::from_secs(1));
    let third = async {
        let channel = endpoint.connect().await?;
        semkv::proto::sem_kv_client::SemKvClient::new(channel)
            .get_cluster(proto::GetClusterRequest {
                cluster_id: "x".into(),
            })
            .await
            .map_err(|s| Box::new(s) as Box<dyn std::error::Error + Send + Sync>)
            .map(|_| ())
    };
    let result: Result<(), Box<dyn std::error::Error + Send + Sync>> =
        tokio::time::timeout(std::time::Duration::from_secs(3), third)
            .await
            .unwrap_or_else(|_| Err("timed out".into()));
    assert!(
        result.is_err(),
        "a third connection was served past the cap of 2"
    );
    // The first connection still works, and once the idle one closes a new one does.
    create(&mut c, "y").await;
    drop(idle);
    let mut served = false;
    for _ in 0..50 {
        if let Ok(channel) = endpoint.connect().await {
            let mut fresh = semkv::proto::sem_kv_client::SemKvClient::new(channel);
            if fresh
                .get_cluster(proto::GetClusterRequest {
                    cluster_id: "y".into(),
                })
                .await
                .is_ok()
            {
                served = true;
                break;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(served, "a connection was not served after a slot was freed");
    // SIGTERM with an idle client still connected: a clean exit within the drain time.
    let _still_open = std::net::TcpStream::connect(&daemon.addr).unwrap();
    assert!(
        daemon.terminate(),
        "SIGTERM did not stop the daemon cleanly"
    );
}
