//! `semkv-client`: the typed async client of `semkvd`, and a harness that runs a local
//! `semkvd` for tests, benches and demos.
//!
//! Module map:
//! * [`client`] — [`Client`]: one method per RPC of `proto/semkv/v1`, with
//!   [`ConnectOptions`] (timeouts, retries of a busy daemon);
//! * [`generate`] — [`GenerateStream`]: a generation as a [`Stream`](futures_core::Stream)
//!   of [`GenerateEvent`]s (token deltas, then the summary);
//! * [`error`] — [`ClientError`]: what went wrong, with the gRPC status code when the
//!   daemon sent one;
//! * [`local`] — [`LocalDaemon`]: starts `semkvd` on a free port, waits until it
//!   listens, stops it (SIGTERM or `kill -9`), and kills it when dropped;
//! * [`proto`] — the generated messages and the raw tonic client, for anything the
//!   typed methods do not cover.
//!
//! ```no_run
//! use semkv_client::{proto, Client, Labels};
//!
//! # async fn example() -> Result<(), semkv_client::ClientError> {
//! let client = Client::connect("127.0.0.1:50051").await?;
//! client.create_cluster("physics", Labels::new()).await?;
//! client
//!     .append_turns("physics", vec![proto::Turn::user("Why is the sky blue?")], proto::TurnFormat::Chat)
//!     .await?;
//! let request = proto::GenerateRequest {
//!     cluster_id: "physics".into(),
//!     max_tokens: Some(64),
//!     ..Default::default()
//! };
//! let summary = client
//!     .generate(request)
//!     .await?
//!     .finish(|token| print!("{}", token.text))
//!     .await?;
//! println!("\n{} tokens", summary.tokens.len());
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs)]

pub mod client;
pub mod error;
pub mod generate;
pub mod local;
pub mod proto;

pub use client::{normalize_addr, Client, ConnectOptions, Labels, DEFAULT_ADDR};
pub use error::ClientError;
pub use generate::{GenerateEvent, GenerateStream};
pub use local::{DaemonError, DaemonLog, LocalDaemon, LocalDaemonBuilder};
pub use tonic::Code;
