//! `semkv`: the command-line client of `semkvd`, and the semantic-isolation experiment
//! (run the prototype's four conditions on real per-cluster KV caches, then report).
//!
//! Module map:
//! * [`dataset`] — the two JSON formats and the normalised [`dataset::Example`];
//! * [`validate`] — schema checks with file + JSON-path problem reports;
//! * [`conditions`] — the four conditions as pure plan builders;
//! * [`metrics`] — interference / coverage metrics and the statistics behind reports;
//! * [`results`] — the JSONL results file (append-only writer, resumable reader);
//! * [`report`] — `summary.md`, `results.csv`, `metrics.svg`;
//! * [`client`] — the [`client::ClusterClient`] trait, the seam to the daemon, and its
//!   gRPC implementation [`client::GrpcClient`];
//! * [`proto`] — the generated gRPC client of `proto/semkv/v1`;
//! * [`daemon`] — finding, starting and stopping a local `semkvd` (for `semkv demo`);
//! * [`runner`] — executes plans over a `ClusterClient`, with progress and resume;
//! * [`commands`] — the cluster, append, generate and chat commands;
//! * [`demo`] — `semkv demo`: the bundled example through the 4 conditions, one command.

pub mod client;
pub mod commands;
pub mod conditions;
pub mod daemon;
pub mod dataset;
pub mod demo;
pub mod metrics;
pub mod proto;
pub mod report;
pub mod results;
pub mod runner;
pub mod validate;
