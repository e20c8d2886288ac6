//! HTTP instrumentation: server spans for axum, client spans for reqwest.

pub mod client;
pub mod server;

pub use client::{client, client_with};
pub use server::instrument_router;
