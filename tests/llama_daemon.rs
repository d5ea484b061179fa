//! The daemon on a Llama-family model (the tiny random Llama fixture): chat turns
//! written by the model's own (ChatML) template, committed answers closed by it,
//! batched decode equal to solo runs, and caches that survive `kill -9`.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use semkv::proto;
use semkv_engine::generate::chat::{Role, Turn};
use semkv_engine::model::weights::WeightFormat;
use semkv_engine::{device::DeviceChoice, Engine, LoadOptions};

fn llama_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-llama-bf16")
}

fn chat(role: proto::Role, text: &str) -> proto::Turn {
    proto::Turn {
        role: role as i32,
        text: text.into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn llama_chat_batches_and_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start_with_model(dir.path(), &llama_dir(), &[]);
    let mut c = daemon.client().await;
    let info = c
        .get_server_info(proto::GetServerInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(info.model.ends_with("tiny-llama-bf16"), "{}", info.model);

    // The text the cache holds is the template's rendering of the conversation.
    let engine = Engine::load_dir(
        &llama_dir(),
        &LoadOptions {
            device: DeviceChoice::Cpu,
            weights: WeightFormat::Native,
        },
    )
    .unwrap();
    let template = engine.chat().expect("the fixture ships a ChatML template");
    create(&mut c, "a").await;
    c.append_turns(proto::AppendTurnsRequest {
        cluster_id: "a".into(),
        turns: vec![
            chat(proto::Role::System, "Be brief."),
            chat(proto::Role::User, "hello there"),
        ],
        format: proto::TurnFormat::Chat as i32,
    })
    .await
    .unwrap();
    let turns = [
        Turn {
            role: Role::System,
            text: "Be brief.".into(),
        },
        Turn {
            role: Role::User,
            text: "hello there".into(),
        },
    ];
    let opened = engine
        .encode(&template.render(&turns, false).unwrap())
        .unwrap();
    assert_eq!(cache_tokens(&mut c, "a").await, opened.len() as u64);
    // A committed answer: the generation prompt, the answer, and the template's close.
    let s = summary(&mut c, greedy("a", 6, true)).await;
    let prompt = engine.encode("<|im_start|>assistant\n").unwrap();
    let close = engine.encode("<|im_end|>\n").unwrap();
    assert_eq!(s.prompt_tokens, prompt.len() as u64);
    assert_eq!(
        cache_tokens(&mut c, "a").await,
        (opened.len() + prompt.len() + 6 + close.len()) as u64
    );

    // Two more clusters decode in one batch; each equals its solo run.
    for (id, salt) in [("b", 1), ("c", 2)] {
        create(&mut c, id).await;
        append(&mut c, id, &text(30, salt)).await;
    }
    let mut solo = Vec::new();
    for id in ["b", "c"] {
        solo.push(summary(&mut c, greedy(id, 24, false)).await.tokens);
    }
    let runs: Vec<_> = ["b", "c"]
        .into_iter()
        .map(|id| {
            let mut c = c.clone();
            tokio::spawn(async move { summary(&mut c, greedy(id, 24, false)).await.tokens })
        })
        .collect();
    for (run, want) in runs.into_iter().zip(&solo) {
        assert_eq!(&run.await.unwrap(), want);
    }

    // kill -9, restart: the stored caches come back without prefill.
    let continued = summary(&mut c, continue_greedy("a", 8)).await.tokens;
    let total = cache_tokens(&mut c, "a").await;
    daemon.kill9();
    let daemon = Daemon::start_with_model(dir.path(), &llama_dir(), &[]);
    let mut c = daemon.client().await;
    let s = summary(&mut c, continue_greedy("a", 8)).await;
    let load = s.cache_load.clone().unwrap();
    assert!(
        load.loaded_from_disk && load.rebuilt_tokens == 0,
        "{load:?}"
    );
    assert_eq!(s.reused_tokens, total);
    assert_eq!(s.tokens, continued);
}
