//! `semkv-client` against a real `semkvd` started through [`LocalDaemon`], serving the
//! tiny test model from a temporary data directory.
//!
//! `semkvd` is `$SEMKVD_BIN` when set; otherwise it is built on first use with
//! `cargo build -p semkv --bin semkvd` (a no-op when it is up to date) and found next
//! to this test binary's directory.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use semkv_client::local::{build_semkvd, find_semkvd, SEMKVD_BIN_ENV};
use semkv_client::{proto, ClientError, Code, GenerateEvent, Labels, LocalDaemon};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The `semkvd` binary (built once per test process).
fn semkvd() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| match std::env::var_os(SEMKVD_BIN_ENV) {
        Some(p) if !p.is_empty() => find_semkvd().expect("$SEMKVD_BIN"),
        _ => build_semkvd(&repo(), !cfg!(debug_assertions)).expect("build semkvd"),
    })
}

fn start(data_dir: &Path) -> LocalDaemon {
    LocalDaemon::builder(data_dir)
        .bin(semkvd())
        .model(repo().join("tests/fixtures/tiny-gemma3-bf16"))
        .device("cpu")
        .env("RUST_LOG", "warn")
        .start()
        .expect("start semkvd")
}

fn greedy(id: &str, max_tokens: u32) -> proto::GenerateRequest {
    proto::GenerateRequest {
        cluster_id: id.into(),
        turns: vec![proto::Turn::user("Continue.")],
        max_tokens: Some(max_tokens),
        ignore_eos: true,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clusters_turns_and_a_streamed_generation() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = start(dir.path());
    assert!(daemon.addr().starts_with("127.0.0.1:"), "{}", daemon.addr());
    let client = daemon.client().await.expect("connect");
    assert_eq!(client.addr(), daemon.url());

    let info = client.server_info().await.unwrap();
    assert!(info.model.contains("tiny-gemma3-bf16"), "{info:?}");
    assert_eq!(info.backend, "cpu");

    let labels = Labels::from([("topic".to_owned(), "db".to_owned())]);
    let created = client
        .create_cluster("notes", labels.clone())
        .await
        .unwrap();
    assert_eq!((created.id.as_str(), created.cache_tokens), ("notes", 0));
    assert_eq!(created.labels.get("topic").map(String::as_str), Some("db"));

    let appended = client
        .append_turns(
            "notes",
            vec![
                proto::Turn::system("Be brief."),
                proto::Turn::user("Connection pools cap concurrency."),
            ],
            proto::TurnFormat::Chat,
        )
        .await
        .unwrap();
    assert!(appended.tokens_added > 0);
    let context = appended.total_tokens;

    // Token deltas stream in, then the summary, then the stream ends.
    let mut stream = client.generate(greedy("notes", 5)).await.unwrap();
    let mut ids = Vec::new();
    let mut summary = None;
    while let Some(event) = stream.next_event().await {
        match event.unwrap() {
            GenerateEvent::Token(t) => {
                assert!(summary.is_none(), "a token after the summary");
                ids.push(t.id);
            }
            GenerateEvent::Done(s) => summary = Some(s),
        }
    }
    let summary = summary.expect("a summary");
    assert_eq!(ids, summary.tokens);
    assert_eq!(summary.tokens.len(), 5);
    assert_eq!(summary.reused_tokens, context);
    assert!(!summary.committed);

    // The same greedy request again, through `finish`, gives the same tokens.
    let mut streamed = Vec::new();
    let again = client
        .generate(greedy("notes", 5))
        .await
        .unwrap()
        .finish(|t| streamed.push(t.id))
        .await
        .unwrap();
    assert_eq!(
        (again.tokens, streamed),
        (summary.tokens.clone(), summary.tokens)
    );

    // Fork, list with a selector, trace, evict, persist, delete.
    let fork = client
        .fork_cluster("notes", "notes-2", Labels::new())
        .await
        .unwrap();
    assert_eq!(fork.cache_tokens, context);
    let mut listed: Vec<String> = client
        .list_clusters(labels)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    listed.sort();
    assert_eq!(listed, ["notes", "notes-2"]);
    let trace = client.scheduler_trace(0).await.unwrap();
    assert!(!trace.steps.is_empty());
    assert!(client.scheduler_trace(1).await.unwrap().steps.len() <= 1);
    client.persist_cluster("notes-2").await.unwrap();
    client.evict_cluster("notes-2").await.unwrap();
    let cold = client.get_cluster("notes-2").await.unwrap();
    assert_eq!(cold.residency, proto::Residency::Cold as i32);
    client.delete_cluster("notes-2").await.unwrap();
    client.delete_cluster("notes").await.unwrap();
    assert!(client
        .list_clusters(Labels::new())
        .await
        .unwrap()
        .is_empty());

    // The raw tonic client works on the same daemon.
    let mut raw = daemon.raw_client().await.unwrap();
    let info = raw
        .get_server_info(proto::GetServerInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.known_clusters, 0);

    // A graceful shutdown waits for open connections: close them first.
    drop((stream, client, raw));
    assert!(
        daemon.terminate_async(Duration::from_secs(30)).await,
        "semkvd did not exit cleanly on SIGTERM"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_carry_the_status_the_daemon_sent_or_say_it_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = start(dir.path());
    let client = daemon.client().await.unwrap();

    let missing = client.get_cluster("nope").await.unwrap_err();
    assert_eq!(missing.code(), Some(Code::NotFound), "{missing:?}");
    assert!(!missing.is_unreachable());
    // The daemon may refuse the call or fail the stream it opened.
    let err = match client.generate(greedy("nope", 2)).await {
        Err(e) => e,
        Ok(stream) => stream.finish(|_| {}).await.unwrap_err(),
    };
    assert_eq!(err.code(), Some(Code::NotFound), "{err:?}");
    let err = client
        .append_turns(
            "nope",
            vec![proto::Turn::user("x")],
            proto::TurnFormat::Chat,
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(Code::NotFound), "{err:?}");

    client.create_cluster("dup", Labels::new()).await.unwrap();
    let err = client
        .create_cluster("dup", Labels::new())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(Code::AlreadyExists), "{err:?}");
    let err = client
        .create_cluster("bad id!", Labels::new())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ClientError::Status { code: Code::InvalidArgument, message } if !message.is_empty()),
        "{err:?}"
    );

    // After `kill -9`, calls fail as unreachable.
    daemon.kill9();
    let gone = client.server_info().await.unwrap_err();
    assert!(gone.is_unreachable(), "{gone:?}");
}
