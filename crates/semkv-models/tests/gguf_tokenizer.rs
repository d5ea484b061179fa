//! The GGUF-built tokenizers against reference ids: the official Gemma 3
//! tokenizer.json's (tests/fixtures/tokenizer/expected_ids.json, made by
//! scripts/tokenizer_expected_ids.py) and SmolLM2's byte-level BPE, as built by
//! scripts/smollm2_reference.py and checked there against transformers' own GGUF
//! tokenizer (tests/fixtures/tokenizer/expected_ids_smollm2.json).

mod common;

use serde::Deserialize;

#[derive(Deserialize)]
struct Expected {
    text: String,
    ids: Vec<u32>,
    decoded: String,
}

#[test]
fn gguf_tokenizer_matches_the_official_tokenizer() {
    let Some(gguf) = common::gemma3_270m_gguf() else {
        return;
    };
    check_corpus(&gguf, "tokenizer/expected_ids.json");
}

#[test]
fn smollm2_byte_level_tokenizer_matches_the_reference() {
    let Some(gguf) = common::smollm2_gguf() else {
        return;
    };
    check_corpus(&gguf, "tokenizer/expected_ids_smollm2.json");
    let tokenizer = semkv_models::load_gguf_tokenizer(&gguf).unwrap();
    assert_eq!(tokenizer.get_vocab_size(true), 49_152);
    for (token, id) in [("<|endoftext|>", 0), ("<|im_start|>", 1), ("<|im_end|>", 2)] {
        assert_eq!(tokenizer.token_to_id(token), Some(id), "{token}");
    }
    // ChatML markup is matched as single special tokens; nothing is added.
    let ids = tokenizer
        .encode("<|im_start|>user\nHi<|im_end|>", false)
        .unwrap();
    assert_eq!(ids.get_ids().first(), Some(&1));
    assert_eq!(ids.get_ids().last(), Some(&2));
}

fn check_corpus(gguf: &std::path::Path, fixture: &str) {
    let tokenizer = semkv_models::load_gguf_tokenizer(gguf).unwrap();
    let fixture = common::fixtures_dir().join(fixture);
    let expected: Vec<Expected> =
        serde_json::from_slice(&std::fs::read(&fixture).unwrap()).unwrap();
    assert!(
        expected.len() >= 40,
        "the corpus has {} strings",
        expected.len()
    );

    let mut failures = Vec::new();
    for case in &expected {
        let encoding = tokenizer.encode(case.text.as_str(), false).unwrap();
        if encoding.get_ids() != case.ids.as_slice() {
            failures.push(format!(
                "{:?}: ids {:?}, expected {:?}",
                case.text,
                encoding.get_ids(),
                case.ids
            ));
        }
        let decoded = tokenizer.decode(&case.ids, false).unwrap();
        if decoded != case.decoded {
            failures.push(format!(
                "{:?}: decodes to {decoded:?}, expected {:?}",
                case.text, case.decoded
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn gguf_tokenizer_adds_bos_and_knows_gemma_specials() {
    let Some(gguf) = common::gemma3_270m_gguf() else {
        return;
    };
    let tokenizer = semkv_models::load_gguf_tokenizer(&gguf).unwrap();
    assert_eq!(tokenizer.get_vocab_size(true), 262_144);
    for (token, id) in [
        ("<pad>", 0),
        ("<eos>", 1),
        ("<bos>", 2),
        ("<unk>", 3),
        ("<start_of_turn>", 105),
        ("<end_of_turn>", 106),
    ] {
        assert_eq!(tokenizer.token_to_id(token), Some(id), "{token}");
    }
    let ids = tokenizer.encode("Hello", true).unwrap().get_ids().to_vec();
    assert_eq!(ids[0], 2, "a <bos> comes first: {ids:?}");
    let turn = "<start_of_turn>user\nhi<end_of_turn>\n";
    let ids = tokenizer.encode(turn, true).unwrap().get_ids().to_vec();
    assert_eq!(tokenizer.decode(&ids, true).unwrap(), "user\nhi\n");
}
