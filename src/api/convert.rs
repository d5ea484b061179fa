//! Conversions between the daemon's types and the API's messages.

use std::time::Duration;

use crate::actors::{GenEvent, GenerationSummary, LoadReport};
use crate::proto;
use crate::store::ClusterMeta;
use semkv_engine::generate::FinishReason;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A cluster's description; `resident_bytes` is None when its cache is cold.
pub fn cluster(meta: &ClusterMeta, resident_bytes: Option<u64>) -> proto::Cluster {
    proto::Cluster {
        id: meta.id.clone(),
        labels: meta
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        created_unix_ms: meta.created_unix_ms,
        cache_tokens: meta.tokens,
        turn_count: meta.turns,
        residency: if resident_bytes.is_some() {
            proto::Residency::Hot
        } else {
            proto::Residency::Cold
        } as i32,
        cache_bytes: resident_bytes.unwrap_or(0),
        rebuilds: meta.rebuilds,
        damage: String::new(),
    }
}

/// How a cache was loaded.
pub fn cache_load(load: &LoadReport) -> proto::CacheLoad {
    proto::CacheLoad {
        loaded_from_disk: load.loaded_from_disk,
        rebuilt_tokens: load.rebuilt_tokens as u64,
        rebuild_reason: load.rebuild_reason.clone().unwrap_or_default(),
        load_ms: ms(load.load_time),
    }
}

fn finish_reason(r: FinishReason) -> proto::FinishReason {
    match r {
        FinishReason::Eos => proto::FinishReason::Eos,
        FinishReason::StopString => proto::FinishReason::StopString,
        FinishReason::Length => proto::FinishReason::Length,
        FinishReason::Cancelled => proto::FinishReason::Cancelled,
    }
}

fn summary(s: &GenerationSummary) -> proto::GenerateSummary {
    proto::GenerateSummary {
        text: s.text.clone(),
        tokens: s.tokens.clone(),
        finish_reason: finish_reason(s.finish_reason) as i32,
        prompt_tokens: s.prompt_tokens as u64,
        reused_tokens: s.reused_tokens as u64,
        time_to_first_token_ms: ms(s.time_to_first_token),
        tokens_per_second: s.tokens_per_second,
        queue_ms: ms(s.queue_time),
        total_tokens: s.total_tokens as u64,
        committed: s.committed,
        cache_load: Some(cache_load(&s.load)),
    }
}

/// One message of a generation stream.
pub fn gen_event(event: &GenEvent) -> proto::GenerateResponse {
    let event = match event {
        GenEvent::Token { id, text } => proto::generate_response::Event::Token(proto::TokenDelta {
            id: *id,
            text: text.clone(),
        }),
        GenEvent::Done(s) => proto::generate_response::Event::Done(summary(s)),
    };
    proto::GenerateResponse { event: Some(event) }
}

/// `ms` as the API reports durations.
pub fn millis(d: Duration) -> f64 {
    ms(d)
}

/// A cluster whose stored metadata cannot be read: its id and why.
pub fn damaged(id: String, reason: String) -> proto::Cluster {
    proto::Cluster {
        id,
        residency: proto::Residency::Damaged as i32,
        damage: reason,
        ..Default::default()
    }
}
