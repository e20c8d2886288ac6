//! Pipeline wiring: the consumer contract, fan-out and the graph built from `service.pipelines`.
pub mod consumer;

pub use consumer::{ComponentCounters, ConsumeError, Consumer};
