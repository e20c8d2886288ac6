//! Pipeline wiring: the consumer contract, fan-out, per-component counters and the graph built
//! from `service.pipelines` (see [`build`]).

pub mod build;
pub mod consumer;
pub mod self_metrics;
pub mod signal;
pub mod wire;

use std::sync::Arc;

pub use consumer::{ComponentCounters, ConsumeError, Consumer};

use signal::Signal;
use wire::Encoded;

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
                first_error(results)
            }
        }
    }

    async fn consume_encoded(&self, batch: Encoded<T>) -> Result<(), ConsumeError> {
        match self.next.as_slice() {
            [] => Ok(()),
            [one] => one.consume_encoded(batch).await,
            many => {
                let futs = many.iter().map(|c| c.consume_encoded(batch.clone()));
                first_error(futures::future::join_all(futs).await)
            }
        }
    }
}

/// The first error of a fan-out, a `Refused` one first so the sender retries.
fn first_error(results: Vec<Result<(), ConsumeError>>) -> Result<(), ConsumeError> {
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
        self.count(n, &r);
        r
    }

    async fn consume_encoded(&self, batch: Encoded<T>) -> Result<(), ConsumeError> {
        let n = batch.items as u64;
        ComponentCounters::add(&self.counters.received, n);
        let r = self.inner.consume_encoded(batch).await;
        self.count(n, &r);
        r
    }

    async fn shutdown(&self) -> Result<(), ConsumeError> {
        self.inner.shutdown().await
    }
}

impl<T> Instrumented<T> {
    /// Counts the outcome (`received` is counted before the call, so it is seen while waiting).
    fn count(&self, n: u64, r: &Result<(), ConsumeError>) {
        match r {
            Ok(()) if self.count_sent => ComponentCounters::add(&self.counters.sent, n),
            Ok(()) => {}
            Err(_) => ComponentCounters::add(&self.counters.refused, n),
        }
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

    async fn consume_encoded(&self, batch: Encoded<T>) -> Result<(), ConsumeError> {
        let n = batch.items as u64;
        let r = self.next.consume_encoded(batch).await;
        if r.is_ok() {
            ComponentCounters::add(&self.sent.sent, n);
        }
        r
    }
}
