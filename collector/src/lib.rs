//! tracelab collector: an OpenTelemetry-Collector-compatible pipeline of receivers, processors,
//! connectors and exporters, configured by YAML.
pub mod config;
pub mod connectors;
pub mod exporters;
pub mod pipeline;
pub mod processors;
pub mod receivers;
pub mod sampling;
