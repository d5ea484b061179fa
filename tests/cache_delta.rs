//! Cache deltas (semkv_engine::cache::codec::{encode_delta, apply_delta}) on the tiny model:
//! a base snapshot plus the deltas of later appends restores the cache bit for bit,
//! past the sliding window (16) so the local layers' rings have wrapped; and a
//! delta is refused when it does not fit.

use semkv_engine::cache::codec::{apply_delta, encode_delta, CodecError};
use semkv_engine::device::DeviceChoice;
use semkv_engine::generate::GenerateOptions;
use semkv_engine::model::weights::WeightFormat;
use semkv_engine::{Engine, LoadOptions};

fn engine() -> Engine {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-gemma3-bf16");
    Engine::load_dir(
        &dir,
        &LoadOptions {
            device: DeviceChoice::Cpu,
            weights: WeightFormat::Native,
        },
    )
    .unwrap()
}

fn tokens(n: usize, salt: u32) -> Vec<u32> {
    (0..n as u32)
        .map(|i| 6 + (i * 31 + salt * 17) % 500)
        .collect()
}

#[test]
fn base_plus_deltas_restores_exactly() {
    let e = engine();
    let fp = e.fingerprint().to_owned();
    let mut live = e.new_cache();
    e.append(&mut live, &tokens(10, 1), 4).unwrap();
    let base = e.save_cache(&live).unwrap();
    let mut deltas = Vec::new();
    // Appends smaller and larger than the window, and single decode-like steps.
    for (n, chunk, salt) in [(5, 5, 2), (40, 16, 3), (1, 1, 4), (1, 1, 5), (23, 7, 6)] {
        let from = live.len();
        e.append(&mut live, &tokens(n, salt), chunk).unwrap();
        let d = encode_delta(&live, from, &fp).unwrap();
        // O(new tokens): a delta of one token is far smaller than the cache.
        if n == 1 {
            assert!(d.len() * 4 < e.save_cache(&live).unwrap().len());
        }
        deltas.push(d);
    }
    // A committed generation adds tokens too.
    let from = live.len();
    let options = GenerateOptions {
        max_tokens: 6,
        stop_at_eos: false,
        ..Default::default()
    };
    e.generate(&mut live, &tokens(3, 7), &options, |_| true)
        .unwrap();
    deltas.push(encode_delta(&live, from, &fp).unwrap());

    let mut restored = e.load_cache(&base).unwrap();
    for d in &deltas {
        apply_delta(&mut restored, d, &fp).unwrap();
    }
    assert_eq!(restored.len(), live.len());
    assert_eq!(
        e.save_cache(&restored).unwrap(),
        e.save_cache(&live).unwrap()
    );

    // Both continue identically.
    let options = GenerateOptions {
        max_tokens: 12,
        stop_at_eos: false,
        ..Default::default()
    };
    let a = e
        .generate(&mut live, &tokens(2, 8), &options, |_| true)
        .unwrap();
    let b = e
        .generate(&mut restored, &tokens(2, 8), &options, |_| true)
        .unwrap();
    assert_eq!(a.tokens, b.tokens);
}

#[test]
fn misfit_or_damaged_deltas_are_refused() {
    let e = engine();
    let fp = e.fingerprint().to_owned();
    let mut cache = e.new_cache();
    e.append(&mut cache, &tokens(20, 1), 8).unwrap();
    let d = encode_delta(&cache, 12, &fp).unwrap();
    // Applied to a cache of the wrong length.
    let mut other = e.new_cache();
    assert!(matches!(
        apply_delta(&mut other, &d, &fp),
        Err(CodecError::Corrupt(_))
    ));
    assert_eq!(other.len(), 0);
    // Another model's fingerprint.
    let mut twelve = e.new_cache();
    e.append(&mut twelve, &tokens(20, 1)[..12], 8).unwrap();
    assert!(matches!(
        apply_delta(&mut twelve, &d, "someone-else"),
        Err(CodecError::WrongModel { .. })
    ));
    // A flipped payload bit.
    let mut bad = d.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    assert!(apply_delta(&mut twelve, &bad, &fp).is_err());
    assert_eq!(
        twelve.len(),
        12,
        "a refused delta leaves the cache unchanged"
    );
    apply_delta(&mut twelve, &d, &fp).unwrap();
    assert_eq!(
        e.save_cache(&twelve).unwrap(),
        e.save_cache(&cache).unwrap()
    );
}
