//! tracelab's shared contracts: the HTTP request/response types of the four checkout services, the
//! versioned Kafka event envelope, the JSON error body, card-data redaction for error text, and the
//! scenario registry.
//!
//! This crate is deliberately dependency-light (serde, uuid): the services, the load generator and the
//! lab kit all depend on it, and none of them should inherit a database or HTTP stack from it.

pub mod error;
pub mod events;
pub mod inventory;
pub mod orders;
pub mod payments;
pub mod provider;
pub mod redact;
pub mod scenario;
