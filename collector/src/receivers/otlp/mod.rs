//! `otlp` receiver: OTLP/gRPC (tonic, TCP_NODELAY, gzip) and OTLP/HTTP (axum: protobuf and
//! JSON, gzip/deflate, partial success, 413 above `max_request_body_size`, CORS) for traces,
//! metrics and logs. Refused data (memory_limiter, full queues, no loadbalancing backend: any
//! `ConsumeError::Refused`) answers gRPC RESOURCE_EXHAUSTED with a `google.rpc.RetryInfo` detail
//! (retryable by the OTLP spec only with it) / HTTP 503 with Retry-After and a `google.rpc.Status`
//! body, so senders retry; a malformed payload is 400.

mod config;
mod grpc;
mod http;
pub mod json;

use std::net::SocketAddr;
use std::sync::Arc;

use opentelemetry_proto::tonic::logs::v1::ResourceLogs;
use opentelemetry_proto::tonic::metrics::v1::ResourceMetrics;
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use tokio::sync::watch;

pub use config::{CorsConfig, GrpcConfig, HttpConfig, OtlpReceiverConfig, Protocols};

use crate::pipeline::signal::Signal;
use crate::pipeline::wire::Encoded;
use crate::pipeline::{ConsumeError, Consumer};

/// Where a receiver pushes each signal (a fan-out over the pipelines that list it).
#[derive(Clone, Default)]
pub struct SignalConsumers {
    pub traces: Option<Arc<dyn Consumer<ResourceSpans>>>,
    pub metrics: Option<Arc<dyn Consumer<ResourceMetrics>>>,
    pub logs: Option<Arc<dyn Consumer<ResourceLogs>>>,
}

/// Why a request was not (fully) accepted.
#[derive(Debug)]
pub enum IngestError {
    /// No pipeline of this signal uses the receiver.
    NotEnabled(&'static str),
    Refused(String),
    Failed(String),
}

impl From<ConsumeError> for IngestError {
    fn from(e: ConsumeError) -> Self {
        match e {
            ConsumeError::Refused(m) => IngestError::Refused(m),
            ConsumeError::Permanent(m) => IngestError::Failed(m),
        }
    }
}

/// Result of accepting one request: items rejected as invalid (partial success).
pub struct Accepted {
    pub rejected: i64,
    pub message: String,
}

/// A trace id must be 16 bytes and a span id 8; spans breaking that are rejected (partial
/// success), the rest is accepted.
fn validate_spans(batch: &mut [ResourceSpans]) -> (i64, String) {
    let mut rejected = 0i64;
    for rs in batch.iter_mut() {
        for ss in &mut rs.scope_spans {
            let before = ss.spans.len();
            ss.spans
                .retain(|s| s.trace_id.len() == 16 && s.span_id.len() == 8);
            rejected += (before - ss.spans.len()) as i64;
        }
    }
    let msg = if rejected > 0 {
        format!("{rejected} span(s) rejected: trace_id must be 16 bytes and span_id 8 bytes")
    } else {
        String::new()
    };
    (rejected, msg)
}

pub(crate) async fn ingest<T: Signal>(
    consumer: &Option<Arc<dyn Consumer<T>>>,
    mut batch: Vec<T>,
    validate: fn(&mut [T]) -> (i64, String),
) -> Result<Accepted, IngestError> {
    let Some(c) = consumer else {
        return Err(IngestError::NotEnabled(T::KIND.as_str()));
    };
    let (rejected, message) = validate(&mut batch);
    batch.retain(|r| r.item_count() > 0);
    if !batch.is_empty() {
        c.consume(batch).await?;
    }
    Ok(Accepted { rejected, message })
}

/// Pushes a request the wire scan accepted (`items` counted by it), still encoded.
pub(crate) async fn ingest_encoded<T: Signal>(
    consumer: &Option<Arc<dyn Consumer<T>>>,
    body: bytes::Bytes,
    items: usize,
) -> Result<(), IngestError> {
    let Some(c) = consumer else {
        return Err(IngestError::NotEnabled(T::KIND.as_str()));
    };
    if items == 0 {
        return Ok(());
    }
    Ok(c.consume_encoded(Encoded::one(body, items)).await?)
}

fn no_validation<T>(_: &mut [T]) -> (i64, String) {
    (0, String::new())
}

fn validate_logs(batch: &mut [ResourceLogs]) -> (i64, String) {
    let mut rejected = 0i64;
    for rl in batch.iter_mut() {
        for sl in &mut rl.scope_logs {
            let before = sl.log_records.len();
            sl.log_records.retain(|r| {
                (r.trace_id.is_empty() || r.trace_id.len() == 16)
                    && (r.span_id.is_empty() || r.span_id.len() == 8)
            });
            rejected += (before - sl.log_records.len()) as i64;
        }
    }
    let msg = if rejected > 0 {
        format!(
            "{rejected} log record(s) rejected: trace_id must be empty or 16 bytes, span_id empty or 8 bytes"
        )
    } else {
        String::new()
    };
    (rejected, msg)
}

/// The addresses a started receiver listens on.
#[derive(Debug, Clone, Copy, Default)]
pub struct BoundAddrs {
    pub grpc: Option<SocketAddr>,
    pub http: Option<SocketAddr>,
}

/// A running receiver: its servers stop when `shutdown` is signalled.
pub struct RunningReceiver {
    pub addrs: BoundAddrs,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl RunningReceiver {
    /// Stops accepting connections and waits for in-flight requests to finish.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// Binds the listeners (so port 0 resolves now) and starts the servers.
pub async fn start(
    id: &str,
    cfg: &OtlpReceiverConfig,
    consumers: SignalConsumers,
) -> std::io::Result<RunningReceiver> {
    let (stop, stop_rx) = watch::channel(false);
    let mut addrs = BoundAddrs::default();
    let mut tasks = Vec::new();
    if let Some(g) = &cfg.protocols.grpc {
        let (addr, task) = grpc::serve(id, g, consumers.clone(), stop_rx.clone()).await?;
        addrs.grpc = Some(addr);
        tasks.push(task);
    }
    if let Some(h) = &cfg.protocols.http {
        let (addr, task) = http::serve(id, h, consumers.clone(), stop_rx.clone()).await?;
        addrs.http = Some(addr);
        tasks.push(task);
    }
    Ok(RunningReceiver { addrs, stop, tasks })
}

/// Waits until the stop flag is raised.
pub(crate) async fn stopped(mut rx: watch::Receiver<bool>) {
    while !*rx.borrow() {
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// Binds `endpoint` (host:port; `localhost` = 127.0.0.1).
pub(crate) async fn bind(endpoint: &str) -> std::io::Result<tokio::net::TcpListener> {
    let addr = crate::component::endpoint::listen_addr(endpoint)
        .map_err(|m| std::io::Error::new(std::io::ErrorKind::InvalidInput, m))?;
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {endpoint}: {e}")))
}
