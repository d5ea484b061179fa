//! semkv: long-lived, isolated LLM KV caches per semantic cluster, served over gRPC.
//!
//! Module map (data flows top to bottom; no module imports one above it):
//! * [`daemon`] / [`daemon_config`] — `semkvd`: flags, env and TOML, starting the
//!   actors and the gRPC server, graceful shutdown;
//! * [`api`] — the tonic service: request validation, admission, conversions, and the
//!   one mapping from errors to gRPC status codes;
//! * [`actors`] — the registry, one cluster actor per cluster, and the model actor (the
//!   only owner of the MLX engine and of every in-memory cache);
//! * [`scheduler`] — deficit round robin over clusters at token granularity (pure logic);
//! * [`store`] — the sled layout: metadata, turns, token segments, cache snapshots and
//!   deltas;
//! * [`cluster_id`], [`error`], [`proto`] — the validated cluster id, the service error
//!   type, and the generated gRPC types.
//!
//! The inference engine itself is the `semkv-engine` crate (MLX only).
pub mod actors;
pub mod api;
pub mod cluster_id;
pub mod daemon;
pub mod daemon_config;
pub mod error;
pub mod proto;
pub mod scheduler;
pub mod store;
