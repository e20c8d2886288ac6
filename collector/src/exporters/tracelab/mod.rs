//! `tracelab` exporter: writes spans and log records into the embedded [`TraceStore`], persists
//! the sampling decisions queued in its [`DecisionQueue`] (by the tail samplers upstream of it, see
//! `pipeline::build`) every second, and prunes the store to its bounds. The query API
//! ([`crate::query::serve`]) reads the same store.
//!
//! ```yaml
//! exporters:
//!   tracelab:
//!     storage: { directory: data/collector, max_spans: 2000000, max_size_mib: 2048, retention: 24h }
//!     query: { endpoint: 0.0.0.0:16686 }
//! ```

use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::logs::v1::ResourceLogs;
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use serde::Deserialize;
use tokio::task::JoinHandle;

use crate::component::FieldError;
use crate::pipeline::{ComponentCounters, ConsumeError, Consumer};
use crate::query::QueryConfig;
use crate::sampling::DecisionQueue;
use crate::store::{StoreConfig, StoreError, TraceStore};

/// `exporters.tracelab`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TracelabExporterConfig {
    pub storage: StoreConfig,
    pub query: QueryConfig,
    /// How often the store is pruned to its bounds (and sampling decisions persisted, every second).
    #[serde(deserialize_with = "crate::component::duration::deserialize")]
    pub prune_interval: Duration,
}

impl Default for TracelabExporterConfig {
    fn default() -> Self {
        Self {
            storage: StoreConfig::default(),
            query: QueryConfig::default(),
            prune_interval: Duration::from_secs(30),
        }
    }
}

impl TracelabExporterConfig {
    pub fn validate(&self) -> Result<(), FieldError> {
        self.storage
            .validate()
            .map_err(|e| FieldError::new(format!("storage.{}", e.path), e.message))?;
        self.query
            .validate()
            .map_err(|e| FieldError::new(format!("query.{}", e.path), e.message))?;
        if self.prune_interval.is_zero() {
            return Err(FieldError::new(
                "prune_interval",
                "must be greater than 0 (e.g. 30s)",
            ));
        }
        Ok(())
    }
}

/// The exporter. Build it once per collector and hand the same instance to the traces and logs
/// pipelines; give [`store`](Self::store) to the query API.
pub struct TracelabExporter {
    store: Arc<TraceStore>,
    decisions: Arc<DecisionQueue>,
    spans: ComponentCounters,
    logs: ComponentCounters,
    background: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for TracelabExporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TracelabExporter")
            .field("store", &self.store.config().directory)
            .finish_non_exhaustive()
    }
}

impl TracelabExporter {
    /// Opens the store and starts the background task (decision persistence, pruning).
    pub async fn start(cfg: &TracelabExporterConfig) -> Result<Self, StoreError> {
        let store = Arc::new(TraceStore::open(cfg.storage.clone()).await?);
        // Bounds may have shrunk since the last run.
        store.prune().await?;
        let decisions = Arc::new(DecisionQueue::default());
        let task = {
            let (store, decisions) = (store.clone(), decisions.clone());
            let prune_every = cfg.prune_interval;
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(1));
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                let mut last_prune = tokio::time::Instant::now();
                loop {
                    tick.tick().await;
                    persist_decisions(&store, &decisions).await;
                    if last_prune.elapsed() >= prune_every {
                        last_prune = tokio::time::Instant::now();
                        if let Err(e) = store.prune().await {
                            tracing::warn!(error = %e, "tracelab exporter: pruning the store failed");
                        }
                    }
                }
            })
        };
        Ok(Self {
            store,
            decisions,
            spans: ComponentCounters::default(),
            logs: ComponentCounters::default(),
            background: Mutex::new(Some(task)),
        })
    }

    /// The store, for the query API.
    pub fn store(&self) -> Arc<TraceStore> {
        self.store.clone()
    }

    /// Where tail samplers queue the decisions this store persists.
    pub fn decision_queue(&self) -> Arc<DecisionQueue> {
        self.decisions.clone()
    }

    /// Span counters (received / sent = stored / refused).
    pub fn span_counters(&self) -> &ComponentCounters {
        &self.spans
    }

    /// Log record counters.
    pub fn log_counters(&self) -> &ComponentCounters {
        &self.logs
    }

    async fn stop(&self) {
        let task = self
            .background
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(t) = task {
            t.abort();
            persist_decisions(&self.store, &self.decisions).await;
        }
    }
}

impl Drop for TracelabExporter {
    fn drop(&mut self) {
        if let Some(t) = self
            .background
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            t.abort();
        }
    }
}

async fn persist_decisions(store: &TraceStore, queue: &DecisionQueue) {
    let d = queue.drain();
    if let Err(e) = store.insert_decisions(&d).await {
        tracing::warn!(error = %e, decisions = d.len(), "tracelab exporter: persisting sampling decisions failed");
    }
}

/// A store write failure is retryable from the sender's point of view (disk busy or full): refuse
/// rather than claim the data was kept.
fn refused(e: StoreError) -> ConsumeError {
    match e {
        StoreError::Db(_) | StoreError::Io { .. } => ConsumeError::Refused(e.to_string()),
        other => ConsumeError::Permanent(other.to_string()),
    }
}

#[async_trait::async_trait]
impl Consumer<ResourceSpans> for TracelabExporter {
    async fn consume(&self, batch: Vec<ResourceSpans>) -> Result<(), ConsumeError> {
        let n: u64 = batch
            .iter()
            .flat_map(|r| r.scope_spans.iter())
            .map(|s| s.spans.len() as u64)
            .sum();
        ComponentCounters::add(&self.spans.received, n);
        match self.store.insert_spans(&batch).await {
            Ok(stored) => {
                ComponentCounters::add(&self.spans.sent, stored);
                Ok(())
            }
            Err(e) => {
                ComponentCounters::add(&self.spans.refused, n);
                tracing::warn!(error = %e, spans = n, "tracelab exporter: storing spans failed");
                Err(refused(e))
            }
        }
    }

    async fn shutdown(&self) -> Result<(), ConsumeError> {
        self.stop().await;
        Ok(())
    }
}

#[async_trait::async_trait]
impl Consumer<ResourceLogs> for TracelabExporter {
    async fn consume(&self, batch: Vec<ResourceLogs>) -> Result<(), ConsumeError> {
        let n: u64 = batch
            .iter()
            .flat_map(|r| r.scope_logs.iter())
            .map(|s| s.log_records.len() as u64)
            .sum();
        ComponentCounters::add(&self.logs.received, n);
        match self.store.insert_logs(&batch).await {
            Ok(stored) => {
                ComponentCounters::add(&self.logs.sent, stored);
                Ok(())
            }
            Err(e) => {
                ComponentCounters::add(&self.logs.refused, n);
                tracing::warn!(error = %e, records = n, "tracelab exporter: storing log records failed");
                Err(refused(e))
            }
        }
    }

    async fn shutdown(&self) -> Result<(), ConsumeError> {
        self.stop().await;
        Ok(())
    }
}
