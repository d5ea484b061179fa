//! Reading the real Gemma 3 270M GGUF. Reference values come from the Python
//! `gguf` package's dequantizer (see scripts/gguf_reference.py).

mod common;

use semkv_models::{GgufFile, NamedTensor};

#[test]
fn metadata_describes_gemma3_270m() {
    let Some(gguf) = common::gemma3_270m_gguf() else {
        return;
    };
    let meta = semkv_models::read_metadata(&gguf).unwrap();
    let config = serde_json::to_value(&meta.config).unwrap();
    let expected = serde_json::json!({
        "model_type": "gemma3_text",
        "hidden_size": 640,
        "num_hidden_layers": 18,
        "intermediate_size": 2048,
        "num_attention_heads": 4,
        "num_key_value_heads": 1,
        "head_dim": 256,
        "query_pre_attn_scalar": 256.0,
        "rms_norm_eps": 1e-6,
        "vocab_size": 262144,
        "sliding_window": 512,
        "sliding_window_pattern": 6,
        "rope_theta": 1_000_000.0,
        "rope_local_base_freq": 10_000.0,
        "rope_scaling": null,
        "max_position_embeddings": 32768,
        "tie_word_embeddings": true,
        "bos_token_id": 2,
        "eos_token_id": 1,
        "pad_token_id": 0,
    });
    assert_eq!(config, expected);

    assert_eq!(meta.tensors.len(), 2 + 18 * 13);
    assert_eq!(meta.tensors[0].name, "model.embed_tokens.weight");
    assert_eq!(meta.tensors[0].shape, [262_144, 640]);
    assert_eq!(meta.tensors.last().unwrap().name, "model.norm.weight");
    let shape_of = |name: &str| {
        meta.tensors
            .iter()
            .find(|t| t.name == name)
            .unwrap_or_else(|| panic!("no {name}"))
            .shape
            .clone()
    };
    for layer in [0, 17] {
        let p = format!("model.layers.{layer}");
        assert_eq!(
            shape_of(&format!("{p}.self_attn.q_proj.weight")),
            [1024, 640]
        );
        assert_eq!(
            shape_of(&format!("{p}.self_attn.k_proj.weight")),
            [256, 640]
        );
        assert_eq!(
            shape_of(&format!("{p}.self_attn.v_proj.weight")),
            [256, 640]
        );
        assert_eq!(
            shape_of(&format!("{p}.self_attn.o_proj.weight")),
            [640, 1024]
        );
        assert_eq!(shape_of(&format!("{p}.self_attn.q_norm.weight")), [256]);
        assert_eq!(shape_of(&format!("{p}.mlp.gate_proj.weight")), [2048, 640]);
        assert_eq!(shape_of(&format!("{p}.mlp.up_proj.weight")), [2048, 640]);
        assert_eq!(shape_of(&format!("{p}.mlp.down_proj.weight")), [640, 2048]);
        assert_eq!(shape_of(&format!("{p}.input_layernorm.weight")), [640]);
    }
}

/// Element `[row, col]` of a row-major matrix (or `[col]` of a vector).
fn at(tensor: &NamedTensor, row: usize, col: usize) -> f32 {
    let cols = *tensor.shape.last().unwrap();
    tensor.data[row * cols + col]
}

#[test]
fn dequantizes_like_the_reference() {
    let Some(gguf) = common::gemma3_270m_gguf() else {
        return;
    };
    let mut file = GgufFile::open(&gguf).unwrap();
    // (HF name, ggml type, row, first column, four reference values)
    #[rustfmt::skip]
    let cases: [(&str, &str, usize, usize, [f32; 4]); 8] = [
        ("model.embed_tokens.weight", "Q8_0", 2, 0,
         [-0.014242411, 0.01056695, 0.013323545, 0.01240468]),
        ("model.layers.0.self_attn.q_proj.weight", "Q5_0", 0, 0,
         [-0.0037841797, 0.0075683594, -0.015136719, -0.0056762695]),
        ("model.layers.0.self_attn.k_proj.weight", "Q5_0", 255, 636,
         [-0.048095703, -0.072143555, -0.012023926, 0.024047852]),
        ("model.layers.0.self_attn.v_proj.weight", "Q8_0", 0, 0,
         [0.006088257, -0.03957367, -0.031455994, -0.05682373]),
        ("model.layers.0.self_attn.o_proj.weight", "Q4K", 0, 0,
         [-0.015705109, 0.049669266, -0.037496567, 0.060564995]),
        ("model.layers.0.mlp.down_proj.weight", "Q6K", 639, 2044,
         [0.011506021, 0.01673603, 0.010460019, -0.009414017]),
        // Norms: the GGUF values minus 1 (HF convention).
        ("model.norm.weight", "F32", 0, 0, [6.125, 8.5625, 46.0, 144.0]),
        ("model.layers.0.self_attn.q_norm.weight", "F32", 0, 0,
         [0.8828125, 0.6875, 1.1953125, 1.375]),
    ];
    for (name, ggml_type, row, col, values) in cases {
        let summary = file
            .tensor_summaries()
            .iter()
            .find(|t| t.name == name)
            .unwrap()
            .clone();
        assert_eq!(summary.ggml_type, ggml_type, "{name}");
        let tensor = file.read_tensor(&summary).unwrap();
        assert_eq!(tensor.data.len(), tensor.shape.iter().product::<usize>());
        for (i, expected) in values.into_iter().enumerate() {
            let got = at(&tensor, row, col + i);
            assert!(
                (got - expected).abs() <= 1e-6,
                "{name}[{row}, {}] = {got}, reference {expected}",
                col + i
            );
        }
    }
}

#[test]
fn dequantizes_every_tensor() {
    let Some(gguf) = common::gemma3_270m_gguf() else {
        return;
    };
    let checkpoint = semkv_models::load_checkpoint(&gguf).unwrap();
    assert_eq!(checkpoint.tensors.len(), 236);
    let mut params = 0;
    for tensor in &checkpoint.tensors {
        assert_eq!(
            tensor.data.len(),
            tensor.shape.iter().product::<usize>(),
            "{}",
            tensor.name
        );
        assert!(
            tensor.data.iter().all(|v| v.is_finite()),
            "{} has non-finite values",
            tensor.name
        );
        params += tensor.data.len();
    }
    assert_eq!(params, 268_098_176);
}
