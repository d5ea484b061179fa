//! What a cancelled operation leaves behind, through a real `semkvd` on the tiny model:
//! an operation is committed only if it is stored before its client goes away — an
//! append whose deadline passes, or a `commit: true` generation whose stream is
//! dropped, commits nothing — and deleting a cluster cancels the work running on it
//! instead of waiting for it.

mod common;

use std::time::Duration;

use common::*;
use semkv::proto;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_past_its_deadline_commits_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), &[]);
    let mut c = daemon.client().await;
    create(&mut c, "a").await;
    append(&mut c, "a", "a short start").await;
    let before = cache_tokens(&mut c, "a").await;

    // ~3,500 tokens of prefill take far longer than 20 ms.
    let mut request = tonic::Request::new(proto::AppendTurnsRequest {
        cluster_id: "a".into(),
        turns: vec![user(&text(780, 5))],
        format: proto::TurnFormat::Chat as i32,
    });
    request.set_timeout(Duration::from_millis(20));
    let err = c.append_turns(request).await.unwrap_err();
    // The server answers DEADLINE_EXCEEDED; tonic's client may give up first (CANCELLED).
    assert!(
        matches!(
            err.code(),
            tonic::Code::DeadlineExceeded | tonic::Code::Cancelled
        ),
        "{err:?}"
    );

    // The next append runs after the cancelled one on the same cluster: only its own
    // tokens are added.
    let r = append(&mut c, "a", "then this").await;
    assert_eq!(
        r.total_tokens,
        before + r.tokens_added,
        "the timed-out append was committed"
    );
    // And the cluster's cache is whole: a restart restores exactly that.
    let s = summary(&mut c, greedy("a", 6, false)).await;
    daemon.kill9();
    let daemon = Daemon::start(dir.path(), &[]);
    let mut c = daemon.client().await;
    assert_eq!(cache_tokens(&mut c, "a").await, r.total_tokens);
    assert_eq!(
        summary(&mut c, greedy("a", 6, false)).await.tokens,
        s.tokens
    );
    daemon.kill9();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_commit_generation_commits_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), &[]);
    let mut c = daemon.client().await;
    create(&mut c, "g").await;
    append(&mut c, "g", &text(30, 1)).await;
    let before = cache_tokens(&mut c, "g").await;
    let mut stream = c
        .generate(greedy("g", 2000, true))
        .await
        .unwrap()
        .into_inner();
    for _ in 0..5 {
        stream.message().await.unwrap().expect("a token");
    }
    drop(stream);
    let r = append(&mut c, "g", "next").await;
    assert_eq!(
        r.total_tokens,
        before + r.tokens_added,
        "tokens of the dropped generation were committed"
    );
    let listed = c
        .get_cluster(proto::GetClusterRequest {
            cluster_id: "g".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        listed.turn_count, 2,
        "the dropped answer was recorded as a turn"
    );
    daemon.kill9();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_cluster_cancels_its_running_generation() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), &[]);
    let mut c = daemon.client().await;
    create(&mut c, "d").await;
    append(&mut c, "d", &text(20, 2)).await;
    let mut stream = c
        .generate(greedy("d", 3500, true))
        .await
        .unwrap()
        .into_inner();
    for _ in 0..5 {
        stream.message().await.unwrap().expect("a token");
    }
    c.delete_cluster(proto::DeleteClusterRequest {
        cluster_id: "d".into(),
    })
    .await
    .expect("delete");
    // The stream ends early, with an error, not after its 3,500 tokens.
    let mut received = 5;
    let ended = loop {
        match stream.message().await {
            Ok(Some(m)) => {
                if matches!(m.event, Some(proto::generate_response::Event::Token(_))) {
                    received += 1;
                }
            }
            Ok(None) => break None,
            Err(status) => break Some(status),
        }
    };
    assert!(received < 3500, "the generation ran to its end");
    let status = ended.expect("the stream ends with an error");
    assert!(status.message().contains("deleted"), "{status:?}");
    let err = c
        .get_cluster(proto::GetClusterRequest {
            cluster_id: "d".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
    daemon.kill9();
}
