//! The gRPC API generated from `proto/semkv/v1/semkv.proto` (package `semkv.v1`).
#![allow(missing_docs, clippy::all, clippy::pedantic)]

tonic::include_proto!("semkv.v1");

/// The encoded file descriptor set of the API, served by the reflection service.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("semkv_v1_descriptor");
