//! `batch` processor: buffers items and sends them on when `send_batch_size` is reached or
//! `timeout` has passed since the first buffered item; splits batches above
//! `send_batch_max_size`; flushes everything on shutdown.
//!
//! Accepted means kept: once items are buffered the caller has its success, so a downstream
//! failure is never handed back (a retrying client would store them twice, and the other callers
//! sharing the combined batch would lose theirs silently). It is logged and counted as `dropped`.

mod config;

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{Mutex, Notify};

pub use config::BatchConfig;

use crate::pipeline::signal::Signal;
use crate::pipeline::{ComponentCounters, ConsumeError, Consumer};

struct Buffer<T> {
    items: Vec<T>,
    count: usize,
    /// When the current batch got its first item; `None` when empty.
    started: Option<Instant>,
}

pub struct BatchProcessor<T: Signal> {
    cfg: BatchConfig,
    next: Arc<dyn Consumer<T>>,
    counters: Arc<ComponentCounters>,
    buf: Mutex<Buffer<T>>,
    started: Notify,
    stop: tokio_util_notify::Stop,
}

/// A tiny stop flag + notify pair so the timer task ends on shutdown.
mod tokio_util_notify {
    use std::sync::atomic::{AtomicBool, Ordering};

    #[derive(Default)]
    pub struct Stop {
        flag: AtomicBool,
        pub notify: tokio::sync::Notify,
    }

    impl Stop {
        pub fn stop(&self) {
            self.flag.store(true, Ordering::SeqCst);
            self.notify.notify_waiters();
        }
        pub fn stopped(&self) -> bool {
            self.flag.load(Ordering::SeqCst)
        }
    }
}

impl<T: Signal> BatchProcessor<T> {
    pub fn new(cfg: BatchConfig, next: Arc<dyn Consumer<T>>) -> Arc<Self> {
        Self::with_counters(cfg, next, Arc::default())
    }

    /// As [`new`](Self::new), counting items lost to downstream failures in `counters.dropped`
    /// (the component's self-metrics).
    pub fn with_counters(
        cfg: BatchConfig,
        next: Arc<dyn Consumer<T>>,
        counters: Arc<ComponentCounters>,
    ) -> Arc<Self> {
        let p = Arc::new(Self {
            cfg,
            next,
            counters,
            buf: Mutex::new(Buffer {
                items: Vec::new(),
                count: 0,
                started: None,
            }),
            started: Notify::new(),
            stop: Default::default(),
        });
        let weak = Arc::downgrade(&p);
        tokio::spawn(async move {
            loop {
                let Some(p) = weak.upgrade() else { return };
                if p.stop.stopped() {
                    return;
                }
                let started = p.buf.lock().await.started;
                match started {
                    None => {
                        let notified = p.started.notified();
                        let stop = p.stop.notify.notified();
                        // Re-check after registering, so a batch started meanwhile is not missed.
                        if p.buf.lock().await.started.is_none() {
                            tokio::select! {
                                _ = notified => {}
                                _ = stop => {}
                            }
                        }
                    }
                    Some(t0) => {
                        let deadline = tokio::time::Instant::from_std(t0 + p.cfg.timeout);
                        tokio::select! {
                            _ = tokio::time::sleep_until(deadline) => {
                                let batch = {
                                    let mut b = p.buf.lock().await;
                                    if b.started == Some(t0) { Some(take(&mut b)) } else { None }
                                };
                                if let Some(batch) = batch {
                                    p.send(batch).await;
                                }
                            }
                            _ = p.stop.notify.notified() => {}
                        }
                    }
                }
            }
        });
        p
    }

    /// Counters of this processor (`dropped`: items lost to downstream failures).
    pub fn counters(&self) -> &Arc<ComponentCounters> {
        &self.counters
    }

    /// Hands one batch on; a failure is logged and counted, never returned (see the module docs).
    async fn deliver(&self, chunk: Vec<T>) {
        let n = crate::pipeline::signal::count(&chunk) as u64;
        if let Err(e) = self.next.consume(chunk).await {
            ComponentCounters::add(&self.counters.dropped, n);
            tracing::error!(
                items = n,
                error = %e,
                "batch: dropping buffered data, the next component failed"
            );
        }
    }

    async fn send(&self, items: Vec<T>) {
        if items.is_empty() {
            return;
        }
        let max = self.cfg.send_batch_max_size;
        if max == 0 {
            return self.deliver(items).await;
        }
        // Split into chunks of at most `max` items.
        let mut chunk = Vec::new();
        let mut chunk_count = 0;
        for mut item in items {
            loop {
                let n = item.item_count();
                if chunk_count + n <= max {
                    chunk_count += n;
                    chunk.push(item);
                    break;
                }
                let room = max - chunk_count;
                if room > 0 {
                    chunk.push(item.take_front(room));
                }
                self.deliver(std::mem::take(&mut chunk)).await;
                chunk_count = 0;
                if item.item_count() == 0 {
                    break;
                }
            }
        }
        if !chunk.is_empty() {
            self.deliver(chunk).await;
        }
    }
}

fn take<T>(b: &mut Buffer<T>) -> Vec<T> {
    b.count = 0;
    b.started = None;
    std::mem::take(&mut b.items)
}

#[async_trait::async_trait]
impl<T: Signal> Consumer<T> for BatchProcessor<T> {
    async fn consume(&self, batch: Vec<T>) -> Result<(), ConsumeError> {
        let n: usize = batch.iter().map(Signal::item_count).sum();
        if n == 0 {
            return Ok(());
        }
        let full = {
            let mut b = self.buf.lock().await;
            if b.started.is_none() {
                b.started = Some(Instant::now());
                self.started.notify_one();
            }
            b.items.extend(batch);
            b.count += n;
            (b.count >= self.cfg.send_batch_size).then(|| take(&mut b))
        };
        if let Some(items) = full {
            self.send(items).await;
        }
        Ok(())
    }

    async fn shutdown(&self) -> Result<(), ConsumeError> {
        self.stop.stop();
        let items = take(&mut *self.buf.lock().await);
        self.send(items).await;
        Ok(())
    }
}
