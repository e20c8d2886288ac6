//! Exporters: the last components of a pipeline, sending data out of the collector.

pub mod debug;
pub mod file;
pub mod loadbalancing;
pub mod otlp;
pub mod prometheus;
pub mod tracelab;

/// `nop` exporter: accepts and drops everything (a blackhole for benchmarks).
pub struct NopExporter;

#[async_trait::async_trait]
impl<T: crate::pipeline::signal::Signal> crate::pipeline::Consumer<T> for NopExporter {
    async fn consume(&self, _batch: Vec<T>) -> Result<(), crate::pipeline::ConsumeError> {
        Ok(())
    }

    /// Not decoded: nothing here reads it.
    async fn consume_encoded(
        &self,
        _batch: crate::pipeline::wire::Encoded<T>,
    ) -> Result<(), crate::pipeline::ConsumeError> {
        Ok(())
    }
}
