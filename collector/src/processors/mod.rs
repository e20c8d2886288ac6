//! Processors: components that sit between receivers and exporters in a pipeline.
pub mod tail_sampling;
