//! Processors: components that sit between receivers and exporters in a pipeline.

pub mod attributes;
pub mod batch;
pub mod memory_limiter;
pub mod probabilistic_sampler;
pub mod tail_sampling;
