//! Teacher-forced scoring (`semkv_engine::generate::score`) against Python mlx-lm's
//! log-softmax over the same tokens (tests/fixtures/score.ref.json, made by
//! scripts/score_reference.py).
//!
//! Tolerances: bf16 tiny models 0.1 per log-probability (the logit tolerance of the
//! reference tests, for the same reasons); the real SmolLM2 and Gemma 3 270M in f32 on
//! both sides 0.02.
//! A greedy flag must match wherever mlx-lm's top-2 margin is above the tolerance.
//! The continuation is scored in two pieces (as the daemon scores in chunks).

mod common;

use std::path::Path;

use mlx_rs::Array;
use semkv_engine::device::DeviceChoice;
use semkv_engine::generate::score::{score_continuation, ScoreSummary, TokenScore};
use semkv_engine::model::loader::load_gguf;
use semkv_engine::model::weights::WeightFormat;
use semkv_engine::model::Model;
use semkv_engine::LoadOptions;
use serde::Deserialize;

#[derive(Deserialize)]
struct Reference {
    models: std::collections::HashMap<String, Vec<Case>>,
}

#[derive(Deserialize)]
struct Case {
    context_ids: Vec<u32>,
    continuation_ids: Vec<u32>,
    logprobs: Vec<f32>,
    greedy: Vec<bool>,
    margins: Vec<f32>,
}

fn reference() -> Reference {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/score.ref.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn scored(model: &Model, case: &Case) -> Vec<TokenScore> {
    let mut cache = model.new_cache();
    let ids: Vec<i32> = case.context_ids.iter().map(|&t| t as i32).collect();
    model
        .forward_last(&Array::from_slice(&ids, &[1, ids.len() as i32]), &mut cache)
        .unwrap();
    let (a, b) = case
        .continuation_ids
        .split_at(case.continuation_ids.len() / 2);
    let mut out = score_continuation(model, &mut cache, a).unwrap();
    out.extend(score_continuation(model, &mut cache, b).unwrap());
    assert_eq!(
        cache.len(),
        case.context_ids.len() + case.continuation_ids.len()
    );
    out
}

fn check(name: &str, model: &Model, case: &Case, tol: f32) {
    let got = scored(model, case);
    for (i, (s, want)) in got.iter().zip(&case.logprobs).enumerate() {
        assert_eq!(s.id, case.continuation_ids[i]);
        assert!(
            (s.logprob - want).abs() <= tol,
            "{name} token {i}: log-prob {} vs mlx-lm {want}",
            s.logprob
        );
        if case.margins[i] > tol {
            assert_eq!(s.greedy, case.greedy[i], "{name} token {i}: greedy flag");
        }
    }
    let ours = ScoreSummary::of(&got).mean_nll;
    let theirs = -case.logprobs.iter().map(|&l| f64::from(l)).sum::<f64>() / got.len() as f64;
    eprintln!("{name}: mean NLL {ours:.4} (mlx-lm {theirs:.4})");
}

#[test]
fn tiny_models_score_like_mlx_lm() {
    let reference = reference();
    for name in ["tiny-gemma3-bf16", "tiny-llama-bf16"] {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name);
        let model = Model::load_dir(&dir, WeightFormat::Native).unwrap();
        for case in &reference.models[name] {
            check(name, &model, case, 0.1);
        }
    }
}

/// A real model from the cache (f32 on the CPU), or `None` when it is absent and not
/// required.
fn real_model(model: &semkv_models::pull::PackagedModel) -> Option<semkv_engine::Engine> {
    let cache_dir = semkv_models::pull::default_cache_dir().unwrap();
    let path = semkv_models::pull::model_path(&cache_dir, model);
    if !path.exists() {
        assert!(
            std::env::var("SEMKV_REQUIRE_MODELS").as_deref() != Ok("1"),
            "{} is not at {} (make model)",
            model.name,
            path.display()
        );
        return None;
    }
    let options = LoadOptions {
        device: DeviceChoice::Cpu,
        weights: WeightFormat::F32,
    };
    Some(load_gguf(&path, &options).unwrap())
}

/// Both cases of a real model: its own greedy text, then an off-topic one, which must
/// be far less likely.
fn check_real(name: &str, engine: &semkv_engine::Engine) {
    let reference = reference();
    let cases = &reference.models[name];
    for case in cases {
        check(name, engine.model(), case, 0.02);
    }
    let own = ScoreSummary::of(&scored(engine.model(), &cases[0]));
    let off = ScoreSummary::of(&scored(engine.model(), &cases[1]));
    assert!(own.mean_nll + 3.0 < off.mean_nll, "{own:?} vs {off:?}");
    assert_eq!(own.greedy_agreement, 1.0);
}

#[test]
fn smollm2_scores_like_mlx_lm_and_tells_on_topic_from_off_topic() {
    if let Some(engine) = real_model(&semkv_models::SMOLLM2_135M_INSTRUCT) {
        check_real("smollm2-135m-instruct", &engine);
    }
}

#[test]
fn gemma3_270m_scores_like_mlx_lm_and_tells_on_topic_from_off_topic() {
    if let Some(engine) = real_model(&semkv_models::DEFAULT_MODEL) {
        check_real("gemma-3-270m", &engine);
    }
}
