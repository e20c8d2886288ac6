//! HTTP instrumentation: server spans for axum (feature `axum`), client spans for reqwest
//! (feature `reqwest`). Header propagation without either lives in [`crate::propagation`].

#[cfg(feature = "reqwest")]
pub mod client;
#[cfg(feature = "axum")]
pub mod server;

#[cfg(feature = "reqwest")]
pub use client::{client, client_with};
#[cfg(feature = "axum")]
pub use server::instrument_router;
