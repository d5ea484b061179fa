//! Request validation: every check names the field it rejects.

use std::collections::{BTreeMap, HashMap};

use crate::actors::TurnFormat;
use crate::cluster_id::{validate_name, ClusterId};
use crate::error::ServiceError;
use crate::proto;
use semkv_engine::generate::chat::{Role, Turn};
use semkv_engine::generate::sampling::SamplingParams;

/// Longest text of one turn, in bytes.
pub const MAX_TURN_BYTES: usize = 1 << 20;
/// Most turns in one request.
pub const MAX_TURNS: usize = 256;
/// Most labels on a cluster, and the longest label value.
pub const MAX_LABELS: usize = 32;
pub const MAX_LABEL_VALUE: usize = 256;
/// Default and largest `max_tokens`.
pub const DEFAULT_MAX_TOKENS: u32 = 128;
pub const MAX_MAX_TOKENS: u32 = 8192;
/// Most stop strings and the longest one.
pub const MAX_STOP_STRINGS: usize = 16;
pub const MAX_STOP_LEN: usize = 256;
/// `ListClusters` page size when the request gives none, and the largest allowed.
pub const DEFAULT_PAGE_SIZE: u32 = 100;
pub const MAX_PAGE_SIZE: u32 = 1000;

/// A valid cluster id in `field`.
pub fn cluster_id(field: &str, value: &str) -> Result<ClusterId, ServiceError> {
    ClusterId::parse(value).map_err(|m| ServiceError::invalid(field, m))
}

/// Valid labels in `field`.
pub fn labels(
    field: &str,
    labels: &HashMap<String, String>,
) -> Result<BTreeMap<String, String>, ServiceError> {
    if labels.len() > MAX_LABELS {
        return Err(ServiceError::invalid(
            field,
            format!("at most {MAX_LABELS} labels"),
        ));
    }
    let mut out = BTreeMap::new();
    for (k, v) in labels {
        validate_name(k)
            .map_err(|m| ServiceError::invalid(format!("{field}[{k:?}]"), format!("key {m}")))?;
        if v.len() > MAX_LABEL_VALUE {
            return Err(ServiceError::invalid(
                format!("{field}[{k:?}]"),
                format!("value must be at most {MAX_LABEL_VALUE} bytes"),
            ));
        }
        out.insert(k.clone(), v.clone());
    }
    Ok(out)
}

/// The turn format in `field`.
pub fn format(field: &str, value: i32) -> Result<TurnFormat, ServiceError> {
    match proto::TurnFormat::try_from(value) {
        Ok(proto::TurnFormat::Chat) => Ok(TurnFormat::Chat),
        Ok(proto::TurnFormat::Raw) => Ok(TurnFormat::Raw),
        Err(_) => Err(ServiceError::invalid(
            field,
            format!("unknown format {value}"),
        )),
    }
}

/// Valid turns; `allow_empty` for generation (which may add no turn).
pub fn turns(
    field: &str,
    turns: &[proto::Turn],
    allow_empty: bool,
) -> Result<Vec<Turn>, ServiceError> {
    if turns.is_empty() && !allow_empty {
        return Err(ServiceError::invalid(
            field,
            "at least one turn is required",
        ));
    }
    if turns.len() > MAX_TURNS {
        return Err(ServiceError::invalid(
            field,
            format!("at most {MAX_TURNS} turns per request"),
        ));
    }
    turns
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let role = match proto::Role::try_from(t.role) {
                Ok(proto::Role::System) => Role::System,
                Ok(proto::Role::User) => Role::User,
                Ok(proto::Role::Assistant) => Role::Assistant,
                _ => {
                    return Err(ServiceError::invalid(
                        format!("{field}[{i}].role"),
                        "must be ROLE_SYSTEM, ROLE_USER or ROLE_ASSISTANT",
                    ))
                }
            };
            if t.text.trim().is_empty() {
                return Err(ServiceError::invalid(
                    format!("{field}[{i}].text"),
                    "must not be empty",
                ));
            }
            if t.text.len() > MAX_TURN_BYTES {
                return Err(ServiceError::invalid(
                    format!("{field}[{i}].text"),
                    format!(
                        "must be at most {MAX_TURN_BYTES} bytes (got {})",
                        t.text.len()
                    ),
                ));
            }
            Ok(Turn {
                role,
                text: t.text.clone(),
            })
        })
        .collect()
}

/// Sampling parameters (zeros read as defaults), checked.
pub fn sampling(
    field: &str,
    p: Option<&proto::SamplingParams>,
) -> Result<SamplingParams, ServiceError> {
    let d = SamplingParams::default();
    let Some(p) = p else {
        return Ok(d);
    };
    let params = SamplingParams {
        temperature: p.temperature,
        top_k: p.top_k as usize,
        top_p: if p.top_p == 0.0 { d.top_p } else { p.top_p },
        repetition_penalty: if p.repetition_penalty == 0.0 {
            d.repetition_penalty
        } else {
            p.repetition_penalty
        },
        repetition_window: if p.repetition_window == 0 {
            d.repetition_window
        } else {
            p.repetition_window as usize
        },
        seed: p.seed,
    };
    params.validate().map_err(|m| {
        let name = m.split_whitespace().next().unwrap_or("").to_owned();
        ServiceError::invalid(format!("{field}.{name}"), m)
    })?;
    Ok(params)
}

/// `max_tokens` with its default.
pub fn max_tokens(field: &str, value: Option<u32>) -> Result<usize, ServiceError> {
    match value {
        None => Ok(DEFAULT_MAX_TOKENS as usize),
        Some(0) => Err(ServiceError::invalid(field, "must be at least 1")),
        Some(n) if n > MAX_MAX_TOKENS => Err(ServiceError::invalid(
            field,
            format!("must be at most {MAX_MAX_TOKENS}"),
        )),
        Some(n) => Ok(n as usize),
    }
}

/// Stop strings.
/// A text to score: not empty (or only spaces), at most [`MAX_TURN_BYTES`].
pub fn continuation(field: &str, text: &str) -> Result<String, ServiceError> {
    if text.trim().is_empty() {
        return Err(ServiceError::invalid(field, "must not be empty"));
    }
    if text.len() > MAX_TURN_BYTES {
        return Err(ServiceError::invalid(
            field,
            format!(
                "must be at most {MAX_TURN_BYTES} bytes (got {})",
                text.len()
            ),
        ));
    }
    Ok(text.to_owned())
}

pub fn stop(field: &str, stop: &[String]) -> Result<Vec<String>, ServiceError> {
    if stop.len() > MAX_STOP_STRINGS {
        return Err(ServiceError::invalid(
            field,
            format!("at most {MAX_STOP_STRINGS} stop strings"),
        ));
    }
    for (i, s) in stop.iter().enumerate() {
        if s.is_empty() || s.len() > MAX_STOP_LEN {
            return Err(ServiceError::invalid(
                format!("{field}[{i}]"),
                format!("must be 1 to {MAX_STOP_LEN} bytes"),
            ));
        }
    }
    Ok(stop.to_vec())
}

/// A page size (`0` is the default).
pub fn page_size(field: &str, value: u32) -> Result<usize, ServiceError> {
    match value {
        0 => Ok(DEFAULT_PAGE_SIZE as usize),
        n if n > MAX_PAGE_SIZE => Err(ServiceError::invalid(
            field,
            format!("must be at most {MAX_PAGE_SIZE} (got {n})"),
        )),
        n => Ok(n as usize),
    }
}

/// A page token: empty (the first page) or the last cluster id of the previous page,
/// after which the next page starts.
pub fn page_token(field: &str, value: &str) -> Result<Option<ClusterId>, ServiceError> {
    if value.is_empty() {
        return Ok(None);
    }
    ClusterId::parse(value)
        .map(Some)
        .map_err(|_| ServiceError::invalid(field, "not a page token this server gave out"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_field() {
        let e = cluster_id("cluster_id", "a/b").unwrap_err();
        assert!(e.to_string().starts_with("cluster_id:"));
        let t = [proto::Turn {
            role: proto::Role::User as i32,
            text: " ".into(),
        }];
        assert!(turns("turns", &t, false)
            .unwrap_err()
            .to_string()
            .starts_with("turns[0].text:"));
        let p = proto::SamplingParams {
            top_p: 2.0,
            ..Default::default()
        };
        assert!(sampling("sampling", Some(&p))
            .unwrap_err()
            .to_string()
            .starts_with("sampling.top_p:"));
        assert!(max_tokens("max_tokens", Some(0)).is_err());
        assert!(page_size("page_size", 1001)
            .unwrap_err()
            .to_string()
            .starts_with("page_size:"));
        assert!(page_token("page_token", "a/b")
            .unwrap_err()
            .to_string()
            .starts_with("page_token:"));
    }

    #[test]
    fn page_size_defaults_and_bounds() {
        assert_eq!(page_size("p", 0).unwrap(), 100);
        assert_eq!(page_size("p", 1).unwrap(), 1);
        assert_eq!(page_size("p", 1000).unwrap(), 1000);
        assert_eq!(page_token("t", "").unwrap(), None);
        assert_eq!(page_token("t", "c-7").unwrap().unwrap().as_str(), "c-7");
    }
}
