//! Request bounds through a real `semkvd` on the tiny model: a cluster cannot grow past
//! its context limit (the model's positions, or `--max-context-tokens`); such a
//! request gets OUT_OF_RANGE naming the field and the limit, before any work, and
//! nothing of it is committed.

mod common;

use common::*;
use semkv::proto;

async fn tokens_of(c: &mut Client, id: &str) -> u64 {
    c.get_cluster(proto::GetClusterRequest {
        cluster_id: id.into(),
    })
    .await
    .unwrap()
    .into_inner()
    .cache_tokens
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_cannot_grow_past_its_context_limit() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), &["--max-context-tokens", "200"]);
    let mut c = daemon.client().await;
    create(&mut c, "small").await;
    append(&mut c, "small", &text(20, 1)).await;
    let held = tokens_of(&mut c, "small").await;
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
    assert_eq!(tokens_of(&mut c, "small").await, held, "nothing committed");

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
    assert_eq!(tokens_of(&mut c, "small").await, held);

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
    assert_eq!(tokens_of(&mut c, "big").await, 0);
    daemon.kill9();
}
