//! `results.csv`: one row per output, every number and the generated text.

use std::path::Path;

use super::ReportError;
use crate::experiment::results::OutputRecord;

/// Writes one CSV row per record (the generated text last).
pub fn write_csv(records: &[OutputRecord], path: &Path) -> Result<(), ReportError> {
    let err = |source| ReportError::Csv {
        path: path.to_path_buf(),
        source,
    };
    let mut w = csv::Writer::from_path(path).map_err(err)?;
    w.write_record([
        "example_id",
        "domain",
        "condition",
        "output",
        "format",
        "batch_seed",
        "seed",
        "model",
        "prompt_tokens",
        "cache_tokens",
        "tokens_reused",
        "generated_tokens",
        "ttft_ms",
        "tok_s",
        "finish_reason",
        "interference",
        "own_coverage",
        "key_phrase_coverage",
        "synthesis_coverage",
        "leaked_terms",
        "text",
    ])
    .map_err(err)?;
    let opt = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
    for r in records {
        w.write_record([
            r.example_id.clone(),
            r.domain.clone(),
            r.condition.to_string(),
            r.output.to_string(),
            r.format.as_str().to_owned(),
            r.batch_seed.to_string(),
            r.seed.to_string(),
            r.model.clone(),
            r.prompt_tokens.to_string(),
            r.cache_tokens.to_string(),
            r.tokens_reused.to_string(),
            r.generated_tokens.to_string(),
            r.ttft_ms.to_string(),
            r.tok_s.to_string(),
            r.finish_reason.clone(),
            opt(r.metrics.interference),
            opt(r.metrics.own_coverage),
            opt(r.metrics.key_phrase_coverage),
            opt(r.metrics.synthesis_coverage),
            r.metrics.leaked_terms.join("; "),
            r.text.clone(),
        ])
        .map_err(err)?;
    }
    w.flush().map_err(|source| ReportError::Io {
        path: path.to_path_buf(),
        source,
    })
}
