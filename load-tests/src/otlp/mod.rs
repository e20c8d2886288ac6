//! OTLP trace load and a counting OTLP sink, for measuring collectors (`loadgen otlp`,
//! `loadgen sink`, `loadgen bench-collector`).
//!
//! - [`payload`] encodes one request template and patches fresh ids into copies of it;
//! - [`generator`] sends them over OTLP/HTTP or gRPC at a span rate or flat out;
//! - [`sink`] receives and counts what a collector exports;
//! - [`bench`] runs tracelab's collector and rotel side by side between the two;
//! - [`wire`] is the protobuf walk the payload and the sink share; [`grpc`] the pass-through codec.

pub mod args;
pub mod bench;
pub mod generator;
pub mod grpc;
pub mod payload;
pub mod sink;
pub mod wire;
