//! `semkv`: the command-line client of `semkvd`, and the semantic-isolation experiment
//! (run the prototype's four conditions on real per-cluster KV caches, then report).
//!
//! Module map:
//! * [`cli`] — the command line (clap types only);
//! * [`commands`] — one file per command group, and [`commands::dispatch`];
//! * [`output`] — [`output::Printer`]: every command's result, as text or `--json`;
//! * [`exit`] — exit codes, and [`exit::Failure`]: a message with its exit code;
//! * [`client`] — the [`client::ClusterClient`] trait, the seam to the daemon, and its
//!   gRPC implementation over [`semkv_client`];
//! * [`experiment`] — datasets, conditions, the runner, metrics, statistics, reports
//!   and the demo.
//!
//! `main` parses a [`cli::Cli`], runs [`commands::dispatch`] and exits with
//! [`exit::exit_code`].

pub mod cli;
pub mod client;
pub mod commands;
pub mod exit;
pub mod experiment;
pub mod output;
