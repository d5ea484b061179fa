//! The Score RPC on a real daemon (tiny Gemma 3): the same log-probabilities as the
//! engine scoring the same tokens directly, the cluster never changes (also in chat
//! format and while it is cold after `kill -9`), and bad requests name their field.

mod common;

use common::*;
use semkv::proto;
use semkv_engine::generate::score::score_continuation;
use semkv_engine::model::weights::WeightFormat;
use semkv_engine::{device::DeviceChoice, Engine, LoadOptions};
use tonic::Code;

fn raw_score(id: &str, text: &str) -> proto::ScoreRequest {
    proto::ScoreRequest {
        cluster_id: id.into(),
        continuation: text.into(),
        format: proto::TurnFormat::Raw as i32,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn score_matches_the_engine_and_never_changes_the_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), &[]);
    let mut c = daemon.client().await;
    let context = text(60, 3);
    let continuation = text(40, 4);
    create(&mut c, "s").await;
    c.append_turns(proto::AppendTurnsRequest {
        cluster_id: "s".into(),
        turns: vec![user(&context)],
        format: proto::TurnFormat::Raw as i32,
    })
    .await
    .unwrap();
    let before = summary(&mut c, greedy("s", 12, false)).await.tokens;
    let tokens_before = cache_tokens(&mut c, "s").await;

    let got = c
        .score(raw_score("s", &continuation))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.prompt_tokens, 0);
    assert_eq!(got.reused_tokens, tokens_before);
    assert_eq!(got.tokens.len(), got.logprobs.len());

    // The engine, directly, on the same tokens (the daemon prefills in chunks of 128).
    let engine = Engine::load_dir(
        &model_dir(),
        &LoadOptions {
            device: DeviceChoice::Cpu,
            weights: WeightFormat::Auto,
        },
    )
    .unwrap();
    let mut cache = engine.new_cache();
    engine
        .append(&mut cache, &engine.encode(&context).unwrap(), 128)
        .unwrap();
    let ids = engine.encode(&continuation).unwrap();
    assert_eq!(got.tokens, ids);
    let want = score_continuation(engine.model(), &mut cache, &ids).unwrap();
    for (i, (g, w)) in got.logprobs.iter().zip(&want).enumerate() {
        assert!(
            (g - w.logprob).abs() < 1e-3,
            "token {i}: {g} vs {}",
            w.logprob
        );
    }
    let mean = -got.logprobs.iter().map(|&l| f64::from(l)).sum::<f64>() / ids.len() as f64;
    assert!((got.mean_nll - mean).abs() < 1e-6);
    assert!((got.perplexity - mean.exp()).abs() < 1e-6 * got.perplexity);

    // Chat format: the text is scored as the model's answer to a new user turn.
    let chat = c
        .score(proto::ScoreRequest {
            cluster_id: "s".into(),
            turns: vec![user("Say something.")],
            format: proto::TurnFormat::Chat as i32,
            continuation: continuation.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(chat.prompt_tokens > 0);
    assert_ne!(chat.logprobs, got.logprobs);

    // Nothing changed: same tokens, same output.
    assert_eq!(cache_tokens(&mut c, "s").await, tokens_before);
    assert_eq!(summary(&mut c, greedy("s", 12, false)).await.tokens, before);

    // Bad requests.
    let e = c.score(raw_score("s", "  ")).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("continuation"), "{}", e.message());
    let e = c.score(raw_score("nope", "x")).await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    create(&mut c, "empty").await;
    let e = c.score(raw_score("empty", "x")).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("empty"), "{}", e.message());

    // Cold after kill -9: loaded from disk, no prefill, the same scores.
    daemon.kill9();
    let daemon = Daemon::start(dir.path(), &[]);
    let mut c = daemon.client().await;
    let cold = c
        .score(raw_score("s", &continuation))
        .await
        .unwrap()
        .into_inner();
    let load = cold.cache_load.unwrap();
    assert!(
        load.loaded_from_disk && load.rebuilt_tokens == 0,
        "{load:?}"
    );
    assert_eq!(cold.logprobs, got.logprobs);
    assert_eq!(cache_tokens(&mut c, "s").await, tokens_before);
}
