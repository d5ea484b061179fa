//! Property tests (proptest) of the cache codecs: the KV cache codec
//! (`cache::codec::{encode, decode}`), its deltas (`encode_delta`, `apply_delta`) and
//! the next-token logits codec (`cache::logits_codec`).
//!
//! * Any bytes — random ones, and valid encodings with flipped bits, truncations,
//!   extensions, overwritten or removed runs and spliced headers — never make a reader
//!   panic, and are refused unless they decode to exactly the encoded value.
//! * Forged frames — a JSON header field changed and the frame rebuilt with the right
//!   length and payload checksum — never make a reader panic either, and what they
//!   accept is a well-formed cache of the model's size. (The checksum covers only the
//!   payload, so a forged header that stays consistent, e.g. float16 for bfloat16, can
//!   be accepted: the store's blob checks are what catch damage there.)
//! * Real caches of the tiny model (random prompts, also past its sliding window of 16)
//!   round-trip bit for bit, a delta applied to the cache it was taken from gives the
//!   full cache, and every codec refuses data made under another fingerprint.
//!
//! Case counts follow `PROPTEST_CASES` (256 byte-level cases by default; the
//! model-backed properties run a sixteenth of it, at least 4). See docs/fuzzing.md.

use std::path::Path;

use proptest::prelude::*;
use proptest::sample::Index;
use semkv_engine::cache::codec::{apply_delta, decode, encode, encode_delta, CodecError};
use semkv_engine::cache::{logits_codec, ModelCache};
use semkv_engine::device::DeviceChoice;
use semkv_engine::model::weights::WeightFormat;
use semkv_engine::{Engine, LoadOptions};

/// Cases of the byte-level properties: `PROPTEST_CASES`, or 256.
fn byte_cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

/// Cases of the properties that run the model: a sixteenth of [`byte_cases`], >= 4.
fn model_cases() -> u32 {
    (byte_cases() / 16).max(4)
}

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

fn engine() -> Engine {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/tiny-gemma3-bf16");
    let options = LoadOptions {
        device: DeviceChoice::Cpu,
        weights: WeightFormat::Native,
    };
    Engine::load_dir(&dir, &options).expect("load tiny model")
}

/// `n` token ids in the tiny model's vocabulary (512), different per `salt`.
fn tokens(n: usize, salt: u32) -> Vec<u32> {
    (0..n as u32)
        .map(|i| 6 + (i.wrapping_mul(7919) ^ salt.wrapping_mul(104_729)) % 500)
        .collect()
}

/// Valid encodings the byte-level properties mutate, built once per test thread.
struct Fixture {
    fp: String,
    /// The cache at 25 tokens, which `delta` extends.
    at_25: ModelCache,
    /// Encodings of the cache at 40 tokens (past the window of 16).
    kv: Vec<u8>,
    delta: Vec<u8>,
    logits: Vec<u8>,
}

impl Fixture {
    fn new() -> Self {
        let e = engine();
        let fp = e.fingerprint().to_owned();
        let mut cache = e.new_cache();
        let t = tokens(40, 1);
        e.append(&mut cache, &t[..25], 8).unwrap();
        let at_25 = cache.fork();
        e.append(&mut cache, &t[25..], 8).unwrap();
        Self {
            kv: encode(&cache, &fp).unwrap(),
            delta: encode_delta(&cache, 25, &fp).unwrap(),
            logits: logits_codec::encode(&cache, &fp)
                .unwrap()
                .expect("has logits"),
            at_25,
            fp,
        }
    }

    fn get(&self, which: Target) -> &[u8] {
        match which {
            Target::Kv => &self.kv,
            Target::Delta => &self.delta,
            Target::Logits => &self.logits,
        }
    }
}

thread_local! {
    static FIXTURE: Fixture = Fixture::new();
}

#[derive(Debug, Clone, Copy)]
enum Target {
    Kv,
    Delta,
    Logits,
}

/// One change to a valid encoding.
#[derive(Debug, Clone)]
enum Mutation {
    /// Flips one bit anywhere.
    Flip(Index, u8),
    /// Flips one bit of the 16-byte frame head or the JSON header (where a change is
    /// not caught by the payload checksum).
    FlipHeader(Index, u8),
    Truncate(Index),
    Extend(Vec<u8>),
    Overwrite(Index, Vec<u8>),
    Remove(Index, usize),
    /// The first bytes of another valid encoding over ours.
    Splice(Index),
    /// One JSON header value replaced (or removed), then framed again with the right
    /// header length and payload checksum.
    Reframe(Index, JsonEdit),
}

#[derive(Debug, Clone)]
enum JsonEdit {
    Number(i64),
    Huge(u64),
    Text(String),
    Remove,
}

fn json_edit() -> impl Strategy<Value = JsonEdit> {
    prop_oneof![
        (-3i64..70).prop_map(JsonEdit::Number),
        prop::sample::select(vec![
            i64::from(i32::MIN),
            -1,
            i64::from(i32::MAX),
            1 << 31,
            1 << 40
        ])
        .prop_map(JsonEdit::Number),
        prop::sample::select(vec![u64::MAX, usize::MAX as u64 - 3]).prop_map(JsonEdit::Huge),
        prop::sample::select(vec!["full", "rotating", "float32", "float16", "int8", ""])
            .prop_map(|s| JsonEdit::Text(s.to_owned())),
        Just(JsonEdit::Remove),
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<Index>(), 0u8..8).prop_map(|(i, b)| Mutation::Flip(i, b)),
        (any::<Index>(), 0u8..8).prop_map(|(i, b)| Mutation::FlipHeader(i, b)),
        any::<Index>().prop_map(Mutation::Truncate),
        prop::collection::vec(any::<u8>(), 1..32).prop_map(Mutation::Extend),
        (any::<Index>(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(i, b)| Mutation::Overwrite(i, b)),
        (any::<Index>(), 1usize..64).prop_map(|(i, n)| Mutation::Remove(i, n)),
        any::<Index>().prop_map(Mutation::Splice),
        (any::<Index>(), json_edit()).prop_map(|(i, e)| Mutation::Reframe(i, e)),
        (any::<Index>(), json_edit()).prop_map(|(i, e)| Mutation::Reframe(i, e)),
    ]
}

/// The JSON header's length, if the frame head is intact enough to say.
fn header_len(bytes: &[u8]) -> Option<usize> {
    let b = bytes.get(12..16)?;
    Some(u32::from_le_bytes(b.try_into().unwrap()) as usize)
}

/// Pointers to every scalar of a JSON value.
fn leaves(v: &serde_json::Value, at: String, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                leaves(v, format!("{at}/{k}"), out);
            }
        }
        serde_json::Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                leaves(v, format!("{at}/{i}"), out);
            }
        }
        _ => out.push(at),
    }
}

/// `bytes` with one header value edited and framed again (checksum and length right).
fn reframe(bytes: &[u8], at: Index, edit: &JsonEdit) -> Vec<u8> {
    let Some(h) = header_len(bytes).filter(|&h| bytes.len() >= 20 + h) else {
        return bytes.to_vec();
    };
    let Ok(mut header) = serde_json::from_slice::<serde_json::Value>(&bytes[16..16 + h]) else {
        return bytes.to_vec();
    };
    let mut paths = Vec::new();
    leaves(&header, String::new(), &mut paths);
    if paths.is_empty() {
        return bytes.to_vec();
    }
    let path = at.get(&paths);
    let (parent, key) = path.rsplit_once('/').expect("pointer");
    let value = match edit {
        JsonEdit::Number(n) => serde_json::json!(n),
        JsonEdit::Huge(n) => serde_json::json!(n),
        JsonEdit::Text(s) => serde_json::json!(s),
        JsonEdit::Remove => serde_json::Value::Null,
    };
    match (header.pointer_mut(parent), edit) {
        (Some(serde_json::Value::Object(m)), JsonEdit::Remove) => {
            m.remove(key);
        }
        (Some(serde_json::Value::Array(a)), JsonEdit::Remove) => {
            a.remove(key.parse::<usize>().unwrap());
        }
        _ => *header.pointer_mut(path).unwrap() = value,
    }
    let header = serde_json::to_vec(&header).unwrap();
    let payload = &bytes[20 + h..];
    let mut out = bytes[..12].to_vec();
    out.extend_from_slice(&(header.len() as u32).to_le_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

fn mutate(bytes: &mut Vec<u8>, m: &Mutation, other: &[u8]) {
    match m {
        Mutation::Flip(i, b) if !bytes.is_empty() => {
            let at = i.index(bytes.len());
            bytes[at] ^= 1 << b;
        }
        Mutation::FlipHeader(i, b) if !bytes.is_empty() => {
            let end = header_len(bytes).map_or(16, |h| 16 + h).min(bytes.len());
            let at = i.index(end);
            bytes[at] ^= 1 << b;
        }
        Mutation::Truncate(i) => bytes.truncate(i.index(bytes.len() + 1)),
        Mutation::Extend(tail) => bytes.extend_from_slice(tail),
        Mutation::Overwrite(i, run) if !bytes.is_empty() => {
            let at = i.index(bytes.len());
            for (dst, src) in bytes[at..].iter_mut().zip(run) {
                *dst = *src;
            }
        }
        Mutation::Remove(i, n) if !bytes.is_empty() => {
            let at = i.index(bytes.len());
            let end = (at + n).min(bytes.len());
            bytes.drain(at..end);
        }
        Mutation::Splice(n) => {
            let n = n.index(other.len() + 1).min(bytes.len());
            bytes[..n].copy_from_slice(&other[..n]);
        }
        Mutation::Reframe(i, edit) => *bytes = reframe(bytes, *i, edit),
        _ => {}
    }
}

fn target() -> impl Strategy<Value = Target> {
    prop_oneof![Just(Target::Kv), Just(Target::Delta), Just(Target::Logits)]
}

/// A valid encoding of `target`, changed by `mutations` (splices from `donor`).
fn mutated(f: &Fixture, target: Target, donor: Target, mutations: &[Mutation]) -> Vec<u8> {
    let mut bytes = f.get(target).to_vec();
    for m in mutations {
        mutate(&mut bytes, m, f.get(donor));
    }
    bytes
}

/// Feeds `bytes` to every reader; each must refuse it unless it reads back exactly the
/// value the fixture encoded.
fn check_readers(f: &Fixture, bytes: &[u8], forged: bool) -> Result<(), TestCaseError> {
    if let Ok(cache) = decode(bytes, &f.fp) {
        if forged {
            prop_assert_eq!(cache.len(), 40);
            prop_assert_eq!(cache.layers().len(), 6);
        } else {
            prop_assert_eq!(
                &encode(&cache, &f.fp).unwrap(),
                &f.kv,
                "decode accepted damage"
            );
        }
    }
    let mut cache = f.at_25.fork();
    match apply_delta(&mut cache, bytes, &f.fp) {
        Ok(()) if forged => prop_assert_eq!(cache.len(), 40),
        Ok(()) => {
            let full = decode(&f.kv, &f.fp).unwrap();
            prop_assert_eq!(
                encode(&cache, &f.fp).unwrap(),
                encode(&full, &f.fp).unwrap(),
                "apply_delta accepted damage"
            );
        }
        Err(_) => prop_assert_eq!(
            encode(&cache, &f.fp).unwrap(),
            encode(&f.at_25, &f.fp).unwrap(),
            "a refused delta changed the cache"
        ),
    }
    // Logits follow 40 tokens: attach them to the full cache.
    let mut full = decode(&f.kv, &f.fp).unwrap();
    if logits_codec::attach(&mut full, bytes, &f.fp).is_ok() && !forged {
        prop_assert_eq!(
            &logits_codec::encode(&full, &f.fp).unwrap().unwrap(),
            &f.logits,
            "attach accepted damage"
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(byte_cases()))]

    #[test]
    fn mutated_encodings_are_refused_or_exact(
        target in target(),
        donor in target(),
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        let forged = mutations.iter().any(|m| matches!(m, Mutation::Reframe(..)));
        FIXTURE.with(|f| check_readers(f, &mutated(f, target, donor, &mutations), forged))?;
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        head in prop::sample::select(vec![
            &b""[..], b"SEMKVKV\0", b"SEMKVDL\0", b"SEMKVLG\0",
            b"SEMKVKV\0\x01\0\0\0", b"SEMKVDL\0\x01\0\0\0", b"SEMKVLG\0\x01\0\0\0",
        ]),
        tail in prop::collection::vec(any::<u8>(), 0..96),
    ) {
        let mut bytes = head.to_vec();
        bytes.extend_from_slice(&tail);
        FIXTURE.with(|f| {
            prop_assert!(decode(&bytes, &f.fp).is_err());
            let mut cache = f.at_25.fork();
            prop_assert!(apply_delta(&mut cache, &bytes, &f.fp).is_err());
            let mut cache = f.at_25.fork();
            prop_assert!(logits_codec::attach(&mut cache, &bytes, &f.fp).is_err());
            Ok(())
        })?;
    }
}

thread_local! {
    static ENGINE: Engine = engine();
}

proptest! {
    #![proptest_config(config(model_cases()))]

    /// Random prompts (up to 3x the window) cut at a random point: the cache and its
    /// logits round-trip, the delta since the cut rebuilds the cache, and other models'
    /// fingerprints are refused.
    #[test]
    fn real_caches_round_trip(
        n in 1usize..=48,
        cut in any::<Index>(),
        salt in any::<u32>(),
        chunk in 1usize..=20,
        other_fp in "[0-9a-f]{0,16}",
    ) {
        ENGINE.with(|e| {
            let fp = e.fingerprint();
            let t = tokens(n, salt);
            let from = cut.index(n + 1);
            let mut cache = e.new_cache();
            if from > 0 {
                e.append(&mut cache, &t[..from], chunk).unwrap();
            }
            let at_from = cache.fork();
            if from < n {
                e.append(&mut cache, &t[from..], chunk).unwrap();
            }

            let kv = encode(&cache, fp).unwrap();
            let restored = decode(&kv, fp).unwrap();
            prop_assert_eq!(restored.len(), n);
            prop_assert_eq!(&encode(&restored, fp).unwrap(), &kv);

            let delta = encode_delta(&cache, from, fp).unwrap();
            let mut rebuilt = at_from.fork();
            apply_delta(&mut rebuilt, &delta, fp).unwrap();
            prop_assert_eq!(&encode(&rebuilt, fp).unwrap(), &kv);

            let logits = logits_codec::encode(&cache, fp).unwrap().expect("has logits");
            let mut with_logits = decode(&kv, fp).unwrap();
            logits_codec::attach(&mut with_logits, &logits, fp).unwrap();
            prop_assert_eq!(&logits_codec::encode(&with_logits, fp).unwrap().unwrap(), &logits);

            // Under another fingerprint every codec refuses, and changes nothing.
            let other = format!("other-{other_fp}");
            prop_assert!(matches!(decode(&kv, &other), Err(CodecError::WrongModel { .. })), "decode");
            let mut c = at_from.fork();
            prop_assert!(matches!(
                apply_delta(&mut c, &delta, &other),
                Err(CodecError::WrongModel { .. })
            ), "wrong model");
            prop_assert_eq!(c.len(), from);
            let mut c = decode(&kv, fp).unwrap();
            prop_assert!(matches!(
                logits_codec::attach(&mut c, &logits, &other),
                Err(CodecError::WrongModel { .. })
            ), "wrong model");
            prop_assert!(c.next_logits().is_none());
            Ok(())
        })?;
    }
}
