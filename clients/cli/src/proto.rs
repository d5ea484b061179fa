//! The client side of the gRPC API, generated from `proto/semkv/v1/semkv.proto`
//! (package `semkv.v1`) by `build.rs`.
#![allow(missing_docs, clippy::all, clippy::pedantic)]

tonic::include_proto!("semkv.v1");
