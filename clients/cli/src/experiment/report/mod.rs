//! `semkv experiment report`: turns a results file into `summary.md` (tables per
//! condition, paired comparisons, per example), `results.csv` (one row per output) and
//! `metrics.svg` (metric means by condition with 95% intervals).
//!
//! * [`summary`] — every number, from [`summarize`], a pure function of the records,
//!   so what the tables say and what the chart draws cannot disagree;
//! * [`markdown`] — `summary.md`;
//! * [`table`] — `results.csv`;
//! * [`chart`] — `metrics.svg`.

use std::path::{Path, PathBuf};

use crate::experiment::results::{OutputRecord, ResultsError, ResultsIndex};

pub mod chart;
pub mod markdown;
pub mod summary;
pub mod table;

pub use chart::render_svg;
pub use markdown::render_markdown;
pub use summary::{summarize, ConditionSummary, ExampleRow, PairSummary, Summary};
pub use table::write_csv;

/// Report failures.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The results could not be read.
    #[error(transparent)]
    Results(#[from] ResultsError),
    /// The results file holds no records.
    #[error("{0}: no result records")]
    Empty(PathBuf),
    /// An output file could not be written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The CSV file could not be written.
    #[error("{path}: {source}")]
    Csv {
        path: PathBuf,
        #[source]
        source: csv::Error,
    },
    /// The chart could not be drawn.
    #[error("chart {path}: {message}")]
    Chart { path: PathBuf, message: String },
}

/// The files a report consists of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportFiles {
    /// `summary.md`.
    pub summary: PathBuf,
    /// `results.csv`.
    pub csv: PathBuf,
    /// `metrics.svg`.
    pub chart: PathBuf,
}

/// Reads `results` and writes the report into `out_dir` (created if needed).
pub fn write_report(results: &Path, out_dir: &Path) -> Result<ReportFiles, ReportError> {
    let index = ResultsIndex::read(results)?;
    let records: Vec<OutputRecord> = index.records().cloned().collect();
    if records.is_empty() {
        return Err(ReportError::Empty(results.to_path_buf()));
    }
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ReportError::Io { path, source }
    };
    std::fs::create_dir_all(out_dir).map_err(io(out_dir))?;
    let summary = summarize(&records);
    let files = ReportFiles {
        summary: out_dir.join("summary.md"),
        csv: out_dir.join("results.csv"),
        chart: out_dir.join("metrics.svg"),
    };
    std::fs::write(&files.summary, render_markdown(&summary, results))
        .map_err(io(&files.summary))?;
    write_csv(&records, &files.csv)?;
    render_svg(&summary, &files.chart)?;
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::summary::test_support::records;
    use super::*;

    #[test]
    fn writes_summary_csv_and_chart_from_jsonl() {
        let dir = tempfile::tempdir().unwrap();
        let results = dir.path().join("results.jsonl");
        let lines: Vec<String> = records()
            .iter()
            .map(|r| serde_json::to_string(r).unwrap())
            .collect();
        std::fs::write(&results, lines.join("\n") + "\n").unwrap();
        let out = dir.path().join("report");
        let files = write_report(&results, &out).unwrap();

        let md = std::fs::read_to_string(&files.summary).unwrap();
        assert!(md.contains("12 outputs of 2 examples"), "{md}");
        assert!(md.contains("| sequential | 6 | – | 0.350 ["), "{md}");
        assert!(
            md.contains("| interference | sequential | semantic | 4 | -0.250 ["),
            "{md}"
        );
        assert!(md.contains("| e2 | semantic | 0.200 | 0.100 | 0.400 | 0.200 | 0.400 | 0.600 |"));

        let mut csv = csv::Reader::from_path(&files.csv).unwrap();
        let headers = csv.headers().unwrap().clone();
        assert_eq!(headers.get(0), Some("example_id"));
        assert_eq!(headers.iter().next_back(), Some("text"));
        let rows: Vec<csv::StringRecord> = csv.records().map(Result::unwrap).collect();
        assert_eq!(rows.len(), 12);
        let col = |name: &str| headers.iter().position(|h| h == name).unwrap();
        let c_row = rows
            .iter()
            .find(|r| {
                &r[col("example_id")] == "e2"
                    && &r[col("output")] == "C"
                    && &r[col("condition")] == "semantic"
            })
            .unwrap();
        assert_eq!(&c_row[col("synthesis_coverage")], "0.6");
        assert_eq!(&c_row[col("interference")], "");

        let svg = std::fs::read_to_string(&files.chart).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..100]);
        for label in [
            // Each bar is labelled with its mean and n (sequential interference).
            "0.350 (n=4)",
            "sequential",
            "semantic",
            "Interference (lower is better)",
            "Synthesis coverage (C)",
        ] {
            assert!(svg.contains(label), "chart lacks {label:?}");
        }
        // 2 conditions x 4 metrics bars, each with an error bar.
        assert!(svg.matches("<rect").count() >= 8);
    }

    #[test]
    fn empty_results_are_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let results = dir.path().join("r.jsonl");
        std::fs::write(&results, "").unwrap();
        assert!(matches!(
            write_report(&results, dir.path()),
            Err(ReportError::Empty(_))
        ));
    }
}
