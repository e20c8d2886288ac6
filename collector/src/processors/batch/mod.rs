//! `batch` processor: buffers items and sends them on when `send_batch_size` is reached or
//! `timeout` has passed since the first buffered item; splits batches above
//! `send_batch_max_size`; flushes everything on shutdown. As in contrib, a size-triggered flush
//! sends batches while at least `send_batch_size` items remain and keeps the rest for the next
//! one. Payloads that arrive still encoded (`pipeline::wire`) are batched by concatenation and
//! never cut: a batch ends before one that does not fit, so it may hold a little less than
//! `send_batch_max_size`.
//!
//! Accepted means kept: once items are buffered the caller has its success, so a downstream
//! failure is never handed back (a retrying client would store them twice, and the other callers
//! sharing the combined batch would lose theirs silently). It is logged and counted as `dropped`.

mod config;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{Mutex, Notify};

pub use config::BatchConfig;

use crate::pipeline::signal::Signal;
use crate::pipeline::wire::Encoded;
use crate::pipeline::{ComponentCounters, ConsumeError, Consumer};

/// What a caller handed in: decoded items, or an OTLP payload still encoded (kept encoded so
/// the batch goes out by concatenation, see `pipeline::wire`).
enum Piece<T> {
    Decoded(Vec<T>),
    Encoded(Encoded<T>),
}

impl<T: Signal> Piece<T> {
    fn count(&self) -> usize {
        match self {
            Piece::Decoded(items) => crate::pipeline::signal::count(items),
            Piece::Encoded(e) => e.items,
        }
    }
}

struct Buffer<T> {
    pieces: VecDeque<Piece<T>>,
    count: usize,
    /// When the current batch got its first item; `None` when empty.
    started: Option<Instant>,
}

impl<T: Signal> Buffer<T> {
    /// Takes one batch of at most `max` items (all when `max` is 0) from the front. An encoded
    /// piece is never cut: one that does not fit starts the next batch, unless it alone holds
    /// more than `max`, in which case it is decoded and split like decoded items.
    fn next_batch(&mut self, max: usize, counters: &ComponentCounters) -> Vec<Piece<T>> {
        let mut out = Vec::new();
        let mut n = 0;
        while let Some(front) = self.pieces.front_mut() {
            let c = front.count();
            if max == 0 || n + c <= max {
                n += c;
                out.extend(self.pieces.pop_front());
                continue;
            }
            match front {
                Piece::Encoded(e) if e.items <= max => break,
                Piece::Encoded(e) => match e.decode() {
                    Ok(items) => *front = Piece::Decoded(items),
                    Err(err) => {
                        // The receiver's scan accepted it, so this is a bug, not bad input.
                        ComponentCounters::add(&counters.dropped, c as u64);
                        tracing::error!(items = c, error = %err, "batch: dropping an undecodable payload");
                        self.count -= c;
                        self.pieces.pop_front();
                    }
                },
                Piece::Decoded(items) => {
                    let room = max - n;
                    out.push(Piece::Decoded(split_front(items, room)));
                    n += room;
                    break;
                }
            }
        }
        self.count -= n;
        out
    }
}

/// Removes the first `n` items (spans, data points, records) of `items` and returns them.
fn split_front<T: Signal>(items: &mut Vec<T>, mut n: usize) -> Vec<T> {
    let mut out = Vec::new();
    while n > 0 && !items.is_empty() {
        let c = items[0].item_count();
        if c <= n {
            n -= c;
            out.push(items.remove(0));
        } else {
            out.push(items[0].take_front(n));
            n = 0;
        }
    }
    out
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
                pieces: VecDeque::new(),
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
                                let batches = {
                                    let mut b = p.buf.lock().await;
                                    if b.started == Some(t0) { p.take_all(&mut b) } else { Vec::new() }
                                };
                                p.send(batches).await;
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
    /// A batch of decoded items goes on decoded; one holding any encoded piece goes on encoded
    /// (the decoded pieces encoded), since encoding is cheaper than decoding.
    async fn deliver(&self, batch: Vec<Piece<T>>) {
        let n: usize = batch.iter().map(Piece::count).sum();
        if n == 0 {
            return;
        }
        let r = if batch.iter().all(|p| matches!(p, Piece::Decoded(_))) {
            let items = batch
                .into_iter()
                .flat_map(|p| match p {
                    Piece::Decoded(items) => items,
                    Piece::Encoded(_) => Vec::new(),
                })
                .collect();
            self.next.consume(items).await
        } else {
            let mut all = Encoded::empty();
            for p in batch {
                all.append(match p {
                    Piece::Encoded(e) => e,
                    Piece::Decoded(items) => Encoded::encode(items),
                });
            }
            self.next.consume_encoded(all).await
        };
        if let Err(e) = r {
            ComponentCounters::add(&self.counters.dropped, n as u64);
            tracing::error!(
                items = n,
                error = %e,
                "batch: dropping buffered data, the next component failed"
            );
        }
    }

    async fn send(&self, batches: Vec<Vec<Piece<T>>>) {
        for b in batches {
            self.deliver(b).await;
        }
    }

    /// Everything buffered, in batches of at most `send_batch_max_size` (timeout, shutdown).
    fn take_all(&self, b: &mut Buffer<T>) -> Vec<Vec<Piece<T>>> {
        let mut out = Vec::new();
        while !b.pieces.is_empty() {
            out.push(b.next_batch(self.cfg.send_batch_max_size, &self.counters));
        }
        b.count = 0;
        b.started = None;
        out
    }

    /// Buffers a piece; returns the batches to send now. As in contrib's batch processor, a
    /// full buffer sends batches while at least `send_batch_size` items remain, and the rest
    /// waits (its timeout restarted) for more.
    async fn add(&self, piece: Piece<T>) -> Vec<Vec<Piece<T>>> {
        let n = piece.count();
        if n == 0 {
            return Vec::new();
        }
        let mut b = self.buf.lock().await;
        if b.started.is_none() {
            b.started = Some(Instant::now());
            self.started.notify_one();
        }
        b.pieces.push_back(piece);
        b.count += n;
        let mut out = Vec::new();
        while b.count >= self.cfg.send_batch_size && !b.pieces.is_empty() {
            out.push(b.next_batch(self.cfg.send_batch_max_size, &self.counters));
        }
        if !out.is_empty() {
            b.started = (!b.pieces.is_empty()).then(Instant::now);
        }
        out
    }
}

#[async_trait::async_trait]
impl<T: Signal> Consumer<T> for BatchProcessor<T> {
    async fn consume(&self, batch: Vec<T>) -> Result<(), ConsumeError> {
        let full = self.add(Piece::Decoded(batch)).await;
        self.send(full).await;
        Ok(())
    }

    async fn consume_encoded(&self, batch: Encoded<T>) -> Result<(), ConsumeError> {
        let full = self.add(Piece::Encoded(batch)).await;
        self.send(full).await;
        Ok(())
    }

    async fn shutdown(&self) -> Result<(), ConsumeError> {
        self.stop.stop();
        let batches = {
            let mut b = self.buf.lock().await;
            self.take_all(&mut b)
        };
        self.send(batches).await;
        Ok(())
    }
}
