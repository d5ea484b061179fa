//! Property tests (proptest) of request validation (`semkv::api::validate`) and cluster
//! ids: any strings, maps and numbers are accepted or refused without a panic, what is
//! accepted keeps its value and follows the documented rule, and every refusal names
//! the field it was given.
//!
//! Case counts follow `PROPTEST_CASES` (256 by default). See docs/fuzzing.md.

use proptest::prelude::*;
use semkv::api::validate;
use semkv::cluster_id::{ClusterId, MAX_ID_LEN};
use semkv::error::ServiceError;
use semkv::proto;

/// The rule documented on `semkv::cluster_id`, written out independently: 1-64
/// characters of `[A-Za-z0-9._-]` starting with a letter or digit.
fn follows_rule(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_ID_LEN
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
}

/// Asserts `e` is an invalid-argument error whose field is `field` or below it.
fn names_field(e: &ServiceError, field: &str) -> Result<(), TestCaseError> {
    match e {
        ServiceError::InvalidArgument { field: f, message } => {
            prop_assert!(
                f == field
                    || f.starts_with(&format!("{field}["))
                    || f.starts_with(&format!("{field}.")),
                "error names {f:?}, not {field:?}"
            );
            prop_assert!(!message.is_empty());
            let prefix = format!("{f}: ");
            prop_assert!(e.to_string().starts_with(&prefix), "{}", e);
        }
        other => prop_assert!(false, "not an invalid-argument error: {other:?}"),
    }
    Ok(())
}

/// Strings near the id rule (so that both sides are hit) and arbitrary ones.
fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Za-z0-9._-]{0,70}",
        "[A-Za-z0-9][A-Za-z0-9._-]{0,66}",
        any::<String>(),
        "[a-z/ .\u{e9}\u{0}-]{0,8}",
    ]
}

fn turn() -> impl Strategy<Value = proto::Turn> {
    (
        prop_oneof![0i32..5, any::<i32>()],
        prop_oneof!["[ \t\n]{0,3}", ".{0,24}", any::<String>()],
    )
        .prop_map(|(role, text)| proto::Turn { role, text })
}

fn float() -> impl Strategy<Value = f32> {
    prop_oneof![
        Just(0.0f32),
        -2.0f32..3.0,
        prop::sample::select(vec![
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            -0.0,
            1.0,
            f32::MIN_POSITIVE
        ]),
        any::<f32>(),
    ]
}

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn cluster_ids_follow_the_rule(s in name()) {
        let parsed = ClusterId::parse(&s);
        prop_assert_eq!(parsed.is_ok(), follows_rule(&s), "{:?}", s);
        match validate::cluster_id("cluster_id", &s) {
            Ok(id) => {
                prop_assert_eq!(id.as_str(), s.as_str());
                prop_assert_eq!(id.to_string(), s.clone());
                prop_assert_eq!(ClusterId::parse(id.as_str()), Ok(id));
            }
            Err(e) => names_field(&e, "cluster_id")?,
        }
    }

    #[test]
    fn labels_are_kept_or_refused_by_field(
        map in prop::collection::hash_map(name(), prop_oneof![".{0,8}", "x{250,260}"], 0..36)
    ) {
        match validate::labels("labels", &map) {
            Ok(out) => {
                prop_assert!(map.len() <= validate::MAX_LABELS);
                prop_assert_eq!(out.len(), map.len());
                for (k, v) in &map {
                    prop_assert!(follows_rule(k));
                    prop_assert!(v.len() <= validate::MAX_LABEL_VALUE);
                    prop_assert_eq!(out.get(k), Some(v));
                }
            }
            Err(e) => {
                prop_assert!(
                    map.len() > validate::MAX_LABELS
                        || map.iter().any(|(k, v)| !follows_rule(k) || v.len() > validate::MAX_LABEL_VALUE)
                );
                names_field(&e, "labels")?;
            }
        }
    }

    #[test]
    fn turns_are_kept_or_refused_by_field(
        turns in prop::collection::vec(turn(), 0..6),
        allow_empty in any::<bool>(),
    ) {
        match validate::turns("turns", &turns, allow_empty) {
            Ok(out) => {
                prop_assert_eq!(out.len(), turns.len());
                prop_assert!(allow_empty || !turns.is_empty());
                for (t, o) in turns.iter().zip(&out) {
                    prop_assert!((1..=3).contains(&t.role));
                    prop_assert!(!t.text.trim().is_empty());
                    prop_assert_eq!(&o.text, &t.text);
                }
            }
            Err(e) => names_field(&e, "turns")?,
        }
    }

    #[test]
    fn numbers_are_checked_without_panics(
        format in prop_oneof![-2i32..4, any::<i32>()],
        max_tokens in prop::option::of(prop_oneof![0u32..10, 8190u32..8200, any::<u32>()]),
        temperature in float(),
        top_p in float(),
        repetition_penalty in float(),
        top_k in any::<u32>(),
        repetition_window in any::<u32>(),
        seed in any::<u64>(),
    ) {
        match validate::format("format", format) {
            Ok(_) => prop_assert!(format == 0 || format == 1),
            Err(e) => names_field(&e, "format")?,
        }
        match validate::max_tokens("max_tokens", max_tokens) {
            Ok(n) => prop_assert!(
                (1..=validate::MAX_MAX_TOKENS as usize).contains(&n)
                    && max_tokens.is_none_or(|m| m as usize == n)
            ),
            Err(e) => names_field(&e, "max_tokens")?,
        }
        let p = proto::SamplingParams {
            temperature,
            top_k,
            top_p,
            repetition_penalty,
            repetition_window,
            seed,
        };
        match validate::sampling("sampling", Some(&p)) {
            Ok(s) => {
                prop_assert!(s.temperature.is_finite() && s.temperature >= 0.0);
                prop_assert!(s.top_p > 0.0 && s.top_p <= 1.0);
                prop_assert!(s.repetition_penalty.is_finite() && s.repetition_penalty > 0.0);
                prop_assert_eq!(s.top_k, top_k as usize);
                prop_assert_eq!(s.seed, seed);
            }
            Err(e) => names_field(&e, "sampling")?,
        }
    }

    #[test]
    fn stop_strings_are_kept_or_refused_by_field(
        stop in prop::collection::vec(prop_oneof![".{0,4}", "y{250,260}"], 0..20)
    ) {
        match validate::stop("stop", &stop) {
            Ok(out) => {
                prop_assert!(stop.len() <= validate::MAX_STOP_STRINGS);
                prop_assert!(stop.iter().all(|s| !s.is_empty() && s.len() <= validate::MAX_STOP_LEN));
                prop_assert_eq!(out, stop);
            }
            Err(e) => names_field(&e, "stop")?,
        }
    }
}
