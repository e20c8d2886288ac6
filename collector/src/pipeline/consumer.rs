//! The consumer contract every pipeline component implements (receivers push into consumers).
use std::sync::atomic::{AtomicU64, Ordering};

use super::signal::Signal;
use super::wire::Encoded;
#[derive(Debug, thiserror::Error)]
pub enum ConsumeError {
    /// Temporary back-pressure (memory_limiter, full queue): gRPC RESOURCE_EXHAUSTED + RetryInfo /
    /// HTTP 503 + Retry-After (see `rpc_status`).
    #[error("refused, retry later: {0}")]
    Refused(String),
    #[error("{0}")]
    Permanent(String),
}
#[async_trait::async_trait]
pub trait Consumer<T: Signal>: Send + Sync + 'static {
    async fn consume(&self, batch: Vec<T>) -> Result<(), ConsumeError>;
    /// Takes data still encoded (see [`wire`](super::wire)). Components that need the items
    /// keep this default, which decodes; the ones that only forward or count override it.
    async fn consume_encoded(&self, batch: Encoded<T>) -> Result<(), ConsumeError> {
        let items = batch
            .decode()
            .map_err(|e| ConsumeError::Permanent(format!("invalid OTLP protobuf: {e}")))?;
        if items.is_empty() {
            return Ok(());
        }
        self.consume(items).await
    }
    /// Flush what is buffered downstream; called once at shutdown, upstream components first.
    async fn shutdown(&self) -> Result<(), ConsumeError> {
        Ok(())
    }
}
/// Every component owns one of these; the collector's /metrics exposes them per component id.
#[derive(Debug, Default)]
pub struct ComponentCounters {
    pub received: AtomicU64,
    pub sent: AtomicU64,
    pub dropped: AtomicU64,
    pub refused: AtomicU64,
}
impl ComponentCounters {
    pub fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }
}
