//! Pipeline wiring: the consumer contract, fan-out, per-component counters and the graph built
//! from `service.pipelines` (see [`build`]).

pub mod build;
pub mod consumer;
pub mod self_metrics;
pub mod signal;

use std::sync::Arc;

pub use consumer::{ComponentCounters, ConsumeError, Consumer};

use signal::Signal;

/// Sends each batch to several consumers (a pipeline's exporters, or the pipelines sharing a
/// receiver). Every consumer gets the data; the first error is returned, a `Refused` one
/// first so the sender retries.
pub struct Fanout<T> {
    pub next: Vec<Arc<dyn Consumer<T>>>,
}

#[async_trait::async_trait]
impl<T: Signal> Consumer<T> for Fanout<T> {
    async fn consume(&self, batch: Vec<T>) -> Result<(), ConsumeError> {
        match self.next.as_slice() {
            [] => Ok(()),
            [one] => one.consume(batch).await,
            many => {
                let futs = many.iter().map(|c| c.consume(batch.clone()));
                let results = futures::future::join_all(futs).await;
                let mut first: Option<ConsumeError> = None;
                for r in results {
                    if let Err(e) = r {
                        let refused = matches!(e, ConsumeError::Refused(_));
                        if first.is_none() || refused {
                            first = Some(e);
                        }
                    }
                }
                first.map_or(Ok(()), Err)
            }
        }
    }
}

/// Counts what enters a component (`received`), what it refuses, and — for components that
/// deliver synchronously — what it sent.
pub struct Instrumented<T> {
    pub inner: Arc<dyn Consumer<T>>,
    pub counters: Arc<ComponentCounters>,
    pub count_sent: bool,
}

#[async_trait::async_trait]
impl<T: Signal> Consumer<T> for Instrumented<T> {
    async fn consume(&self, batch: Vec<T>) -> Result<(), ConsumeError> {
        let n = signal::count(&batch) as u64;
        ComponentCounters::add(&self.counters.received, n);
        let r = self.inner.consume(batch).await;
        match &r {
            Ok(()) if self.count_sent => ComponentCounters::add(&self.counters.sent, n),
            Ok(()) => {}
            Err(_) => ComponentCounters::add(&self.counters.refused, n),
        }
        r
    }

    async fn shutdown(&self) -> Result<(), ConsumeError> {
        self.inner.shutdown().await
    }
}

/// Counts what a component hands to its next consumer (`sent`).
pub struct CountSent<T> {
    pub next: Arc<dyn Consumer<T>>,
    pub sent: Arc<ComponentCounters>,
}

#[async_trait::async_trait]
impl<T: Signal> Consumer<T> for CountSent<T> {
    async fn consume(&self, batch: Vec<T>) -> Result<(), ConsumeError> {
        let n = signal::count(&batch) as u64;
        let r = self.next.consume(batch).await;
        if r.is_ok() {
            ComponentCounters::add(&self.sent.sent, n);
        }
        r
    }
}
