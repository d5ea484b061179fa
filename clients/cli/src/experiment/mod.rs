//! The semantic-isolation experiment: run the prototype's four conditions on real
//! per-cluster KV caches, then report.
//!
//! Data flows one way, and each module only uses the ones above it:
//! * [`dataset`] — the two JSON formats, read and normalised into [`dataset::Example`];
//! * [`schema`] — the schema checks `dataset` runs first (pure, one file per format);
//! * [`conditions`] — the four conditions as pure plan builders;
//! * [`metrics`] — interference and coverage of one output;
//! * [`stats`] — t intervals, the paired t-test and the Wilcoxon signed-rank test;
//! * [`results`] — the JSONL results file (append-only writer, resumable reader);
//! * [`runner`] — executes plans over a [`crate::client::ClusterClient`], with
//!   progress and resume;
//! * [`report`] — `summary.md`, `results.csv`, `metrics.svg`;
//! * [`demo`] — `semkv demo`: the bundled example through the 4 conditions, starting
//!   a daemon when none runs.

pub mod conditions;
pub mod dataset;
pub mod demo;
pub mod metrics;
pub mod report;
pub mod results;
pub mod runner;
pub mod schema;
pub mod stats;
