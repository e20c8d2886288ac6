//! `otlp` (gRPC) and `otlphttp` exporters: send to another collector, Jaeger or Tempo.
//!
//! Both share [`QueuedSender`]: a bounded sending queue (`sending_queue.queue_size` batches;
//! when full, new data is refused with a retryable error rather than dropped silently), a pool
//! of `num_consumers` workers, and exponential backoff with jitter on retryable failures
//! (gRPC UNAVAILABLE / RESOURCE_EXHAUSTED / ..., HTTP 429 / 502 / 503 / 504, connection errors),
//! honouring `Retry-After`. A batch is dropped (and counted) only after `max_elapsed_time`
//! or on a permanent error.

mod config;
mod transport;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{Mutex, mpsc};

pub use config::{OtlpExporterConfig, OtlpHttpExporterConfig, QueueConfig, RetryConfig, TlsConfig};
pub use transport::{GrpcTransport, HttpTransport, OtlpGrpcSignal};

use crate::pipeline::signal::Signal;
use crate::pipeline::wire::Encoded;
use crate::pipeline::{ComponentCounters, ConsumeError, Consumer};

/// A failed send attempt.
#[derive(Debug)]
pub struct SendError {
    pub retryable: bool,
    pub message: String,
    /// Server-requested delay (Retry-After, gRPC RetryInfo).
    pub retry_after: Option<Duration>,
}

#[async_trait::async_trait]
pub trait Transport<T: Signal>: Send + Sync + 'static {
    async fn send(&self, req: T::Request) -> Result<(), SendError>;
    /// Sends a payload still encoded; the default decodes it (a transport that can put the
    /// bytes on the wire as they are overrides this).
    async fn send_encoded(&self, batch: &Encoded<T>) -> Result<(), SendError> {
        self.send(decoded_request(batch)?).await
    }
}

/// An encoded payload as a request, for transports that need the items.
pub(crate) fn decoded_request<T: Signal>(batch: &Encoded<T>) -> Result<T::Request, SendError> {
    let items = batch.decode().map_err(|e| SendError {
        retryable: false,
        message: format!("invalid OTLP protobuf: {e}"),
        retry_after: None,
    })?;
    Ok(T::into_request(items))
}

/// A batch waiting in the sending queue: as the pipeline handed it over.
pub enum Payload<T: Signal> {
    /// A request and the items it holds.
    Decoded(T::Request, u64),
    Encoded(Encoded<T>),
}

/// Queue depth, exposed on the collector's `/metrics`.
#[derive(Debug, Default)]
pub struct QueueGauge {
    pub size: AtomicU64,
    pub capacity: AtomicU64,
}

pub struct QueuedSender<T: Signal> {
    id: String,
    transport: Arc<dyn Transport<T>>,
    retry: RetryConfig,
    queue: Option<Mutex<Option<mpsc::Sender<Payload<T>>>>>,
    workers: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    counters: Arc<ComponentCounters>,
    pub gauge: Arc<QueueGauge>,
    shutting_down: Arc<AtomicBool>,
}

impl<T: Signal> QueuedSender<T> {
    pub fn new(
        id: String,
        transport: Arc<dyn Transport<T>>,
        retry: RetryConfig,
        queue: QueueConfig,
        counters: Arc<ComponentCounters>,
    ) -> Arc<Self> {
        let gauge = Arc::new(QueueGauge::default());
        let shutting_down = Arc::new(AtomicBool::new(false));
        let mut workers = Vec::new();
        let tx = if queue.enabled {
            gauge
                .capacity
                .store(queue.queue_size as u64, Ordering::Relaxed);
            let (tx, rx) = mpsc::channel::<Payload<T>>(queue.queue_size);
            let rx = Arc::new(Mutex::new(rx));
            for _ in 0..queue.num_consumers {
                let rx = rx.clone();
                let ctx = Attempt {
                    id: id.clone(),
                    transport: transport.clone(),
                    retry: retry.clone(),
                    counters: counters.clone(),
                    shutting_down: shutting_down.clone(),
                };
                let gauge = gauge.clone();
                workers.push(tokio::spawn(async move {
                    loop {
                        let next = rx.lock().await.recv().await;
                        let Some(batch) = next else { return };
                        gauge.size.fetch_sub(1, Ordering::Relaxed);
                        ctx.deliver(batch).await;
                    }
                }));
            }
            Some(Mutex::new(Some(tx)))
        } else {
            None
        };
        Arc::new(Self {
            id,
            transport,
            retry,
            queue: tx,
            workers: Mutex::new(workers),
            counters,
            gauge,
            shutting_down,
        })
    }
}

struct Attempt<T: Signal> {
    id: String,
    transport: Arc<dyn Transport<T>>,
    retry: RetryConfig,
    counters: Arc<ComponentCounters>,
    shutting_down: Arc<AtomicBool>,
}

impl<T: Signal> Attempt<T> {
    /// Sends with retries; returns the last error when the batch was dropped.
    async fn deliver(&self, batch: Payload<T>) -> Option<SendError> {
        let items = match &batch {
            Payload::Decoded(_, n) => *n,
            Payload::Encoded(e) => e.items as u64,
        };
        let start = Instant::now();
        let mut interval = self.retry.initial_interval;
        let mut rng = seed();
        loop {
            let sent = match &batch {
                // A clone per attempt: the transport consumes its request.
                Payload::Decoded(req, _) => self.transport.send(req.clone()).await,
                Payload::Encoded(e) => self.transport.send_encoded(e).await,
            };
            match sent {
                Ok(()) => {
                    ComponentCounters::add(&self.counters.sent, items);
                    return None;
                }
                Err(e) => {
                    let give_up = !e.retryable
                        || !self.retry.enabled
                        || self.shutting_down.load(Ordering::Relaxed);
                    let mut wait = e.retry_after.unwrap_or_else(|| {
                        let r = self.retry.randomization_factor;
                        let jitter = 1.0 - r + 2.0 * r * next_f64(&mut rng);
                        interval.mul_f64(jitter)
                    });
                    let max = self.retry.max_elapsed_time;
                    if !max.is_zero() && start.elapsed() + wait > max {
                        wait = Duration::MAX;
                    }
                    if give_up || wait == Duration::MAX {
                        ComponentCounters::add(&self.counters.dropped, items);
                        tracing::error!(
                            exporter = %self.id,
                            items,
                            error = %e.message,
                            retryable = e.retryable,
                            "exporter: dropping data after a failed export"
                        );
                        return Some(e);
                    }
                    tracing::warn!(
                        exporter = %self.id,
                        error = %e.message,
                        retry_in_ms = wait.as_millis() as u64,
                        "exporter: export failed, will retry"
                    );
                    tokio::time::sleep(wait).await;
                    interval = interval
                        .mul_f64(self.retry.multiplier)
                        .min(self.retry.max_interval.max(self.retry.initial_interval));
                }
            }
        }
    }
}

fn seed() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0x9E37_79B9_7F4A_7C15);
    t | 1
}

/// xorshift64*: jitter does not need a cryptographic generator.
fn next_f64(s: &mut u64) -> f64 {
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    let v = s.wrapping_mul(0x2545_F491_4F6C_DD1D);
    (v >> 11) as f64 / (1u64 << 53) as f64
}

#[async_trait::async_trait]
impl<T: Signal> Consumer<T> for QueuedSender<T> {
    async fn consume(&self, batch: Vec<T>) -> Result<(), ConsumeError> {
        let n = crate::pipeline::signal::count(&batch) as u64;
        self.enqueue(Payload::Decoded(T::into_request(batch), n))
            .await
    }

    async fn consume_encoded(&self, batch: Encoded<T>) -> Result<(), ConsumeError> {
        self.enqueue(Payload::Encoded(batch)).await
    }

    async fn shutdown(&self) -> Result<(), ConsumeError> {
        self.shutdown_queue().await
    }
}

impl<T: Signal> QueuedSender<T> {
    async fn enqueue(&self, batch: Payload<T>) -> Result<(), ConsumeError> {
        match &self.queue {
            Some(q) => {
                let guard = q.lock().await;
                let Some(tx) = guard.as_ref() else {
                    return Err(ConsumeError::Refused(format!(
                        "exporter {} is shutting down",
                        self.id
                    )));
                };
                match tx.try_send(batch) {
                    Ok(()) => {
                        self.gauge.size.fetch_add(1, Ordering::Relaxed);
                        Ok(())
                    }
                    Err(mpsc::error::TrySendError::Full(_)) => Err(ConsumeError::Refused(format!(
                        "sending queue of exporter {} is full",
                        self.id
                    ))),
                    Err(mpsc::error::TrySendError::Closed(_)) => Err(ConsumeError::Refused(
                        format!("exporter {} is shutting down", self.id),
                    )),
                }
            }
            None => {
                let attempt = Attempt {
                    id: self.id.clone(),
                    transport: self.transport.clone(),
                    retry: self.retry.clone(),
                    counters: self.counters.clone(),
                    shutting_down: self.shutting_down.clone(),
                };
                match attempt.deliver(batch).await {
                    None => Ok(()),
                    Some(e) if e.retryable => Err(ConsumeError::Refused(e.message)),
                    Some(e) => Err(ConsumeError::Permanent(e.message)),
                }
            }
        }
    }

    /// Stops accepting, then lets the workers drain the queue (retries stop at the first
    /// failure once shutting down; bounded by 30 s overall).
    async fn shutdown_queue(&self) -> Result<(), ConsumeError> {
        if let Some(q) = &self.queue {
            q.lock().await.take();
        }
        let workers = std::mem::take(&mut *self.workers.lock().await);
        let drain = async {
            for w in workers {
                let _ = w.await;
            }
        };
        if tokio::time::timeout(Duration::from_secs(30), drain)
            .await
            .is_err()
        {
            self.shutting_down.store(true, Ordering::Relaxed);
            return Err(ConsumeError::Permanent(format!(
                "exporter {}: queue not drained within 30s",
                self.id
            )));
        }
        Ok(())
    }
}
