//! `loadgen sink`: a counting OTLP trace receiver — OTLP/HTTP protobuf on `/v1/traces` and gRPC
//! `TraceService/Export`, both gzip-aware — that answers success and counts requests and spans.
//! The collector benchmark runs it in-process as the collectors' export target and reads its
//! [`SinkTotals`]; the CLI runs it until Ctrl-C and prints them.
//!
//! Spans are counted with the [`wire`](super::wire) walk by default (no allocation per span; the
//! sink shares a core with the generator), or with a full prost decode (`CountWith::Prost`), to
//! compare the two.

use std::collections::HashSet;
use std::convert::Infallible;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, State};
use axum::response::IntoResponse;
use bytes::Bytes;
use http::{HeaderMap, StatusCode, header};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use tokio::task::JoinHandle;
use tonic::codec::CompressionEncoding;
use tonic::codegen::{BoxFuture, Context, Poll, Service};

use super::grpc::{EXPORT_PATH, RawCodec, SERVICE};
use super::wire;

/// The largest request body, compressed or not, the sink reads.
const MAX_BODY: usize = 256 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum CountWith {
    /// Walk the encoding to the spans, decode nothing.
    #[default]
    Walk,
    /// Decode the whole request with prost.
    Prost,
}

#[derive(Debug, Clone, Default)]
pub struct SinkConfig {
    /// Where to listen for OTLP/HTTP (port 0: any free port).
    pub http: Option<SocketAddr>,
    /// Where to listen for OTLP/gRPC.
    pub grpc: Option<SocketAddr>,
    pub count: CountWith,
    /// Keep every trace id seen (tests: are ids distinct?); costs a set insert per span.
    pub record_trace_ids: bool,
}

/// What the sink received so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct SinkTotals {
    pub requests: u64,
    pub spans: u64,
    /// Requests answered 400 / INVALID_ARGUMENT: bad gzip or bad protobuf.
    pub malformed: u64,
    /// Request bytes after decompression.
    pub bytes: u64,
}

struct Counters {
    requests: AtomicU64,
    spans: AtomicU64,
    malformed: AtomicU64,
    bytes: AtomicU64,
    count: CountWith,
    trace_ids: Option<Mutex<HashSet<[u8; 16]>>>,
}

impl Counters {
    /// Counts one request; Err when it is not a valid `ExportTraceServiceRequest`.
    fn take(&self, body: &[u8]) -> Result<(), String> {
        let spans = match self.count {
            CountWith::Walk => wire::count_spans(body).map_err(|e| e.to_string()),
            CountWith::Prost => ExportTraceServiceRequest::decode(body)
                .map(|r| {
                    r.resource_spans
                        .iter()
                        .flat_map(|rs| &rs.scope_spans)
                        .map(|ss| ss.spans.len() as u64)
                        .sum()
                })
                .map_err(|e| e.to_string()),
        };
        let spans = match spans {
            Ok(n) => n,
            Err(e) => {
                self.malformed.fetch_add(1, Ordering::Relaxed);
                return Err(e);
            }
        };
        if let Some(ids) = &self.trace_ids {
            let mut seen = Vec::new();
            wire::for_each_span(body, |span| {
                if let Ok(Some(f)) = wire::field(body, span, 1)
                    && let Ok(id) = <[u8; 16]>::try_from(&body[f.start..f.end])
                {
                    seen.push(id);
                }
            })
            .map_err(|e| e.to_string())?;
            ids.lock().unwrap_or_else(|p| p.into_inner()).extend(seen);
        }
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.spans.fetch_add(spans, Ordering::Relaxed);
        self.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
        Ok(())
    }
}

/// A running sink; dropping it stops its servers.
pub struct Sink {
    pub http_addr: Option<SocketAddr>,
    pub grpc_addr: Option<SocketAddr>,
    counters: Arc<Counters>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Sink {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Sink {
    /// Binds the listeners and serves in background tasks of the current runtime.
    pub async fn start(cfg: SinkConfig) -> std::io::Result<Sink> {
        let counters = Arc::new(Counters {
            requests: AtomicU64::new(0),
            spans: AtomicU64::new(0),
            malformed: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            count: cfg.count,
            trace_ids: cfg.record_trace_ids.then(|| Mutex::new(HashSet::new())),
        });
        let mut sink = Sink {
            http_addr: None,
            grpc_addr: None,
            counters: counters.clone(),
            tasks: Vec::new(),
        };
        if let Some(addr) = cfg.http {
            let listener = tokio::net::TcpListener::bind(addr).await?;
            sink.http_addr = Some(listener.local_addr()?);
            let app = axum::Router::new()
                .route("/v1/traces", axum::routing::post(http_export))
                .layer(DefaultBodyLimit::max(MAX_BODY))
                .with_state(counters.clone());
            sink.tasks.push(tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, app).await {
                    eprintln!("loadgen sink: OTLP/HTTP server stopped: {e}");
                }
            }));
        }
        if let Some(addr) = cfg.grpc {
            let listener = tokio::net::TcpListener::bind(addr).await?;
            sink.grpc_addr = Some(listener.local_addr()?);
            let incoming =
                tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
            let svc = GrpcSink(counters);
            sink.tasks.push(tokio::spawn(async move {
                // Wide HTTP/2 windows: a gzip'd 8192-span batch is hundreds of KiB, and with the
                // 64 KiB default each one would wait for window updates — a cost of the sink's,
                // not of the collector under test.
                if let Err(e) = tonic::transport::Server::builder()
                    .initial_stream_window_size(4 << 20)
                    .initial_connection_window_size(16 << 20)
                    .add_service(svc)
                    .serve_with_incoming(incoming)
                    .await
                {
                    eprintln!("loadgen sink: gRPC server stopped: {e}");
                }
            }));
        }
        Ok(sink)
    }

    pub fn totals(&self) -> SinkTotals {
        let c = &self.counters;
        SinkTotals {
            requests: c.requests.load(Ordering::Relaxed),
            spans: c.spans.load(Ordering::Relaxed),
            malformed: c.malformed.load(Ordering::Relaxed),
            bytes: c.bytes.load(Ordering::Relaxed),
        }
    }

    /// The distinct trace ids seen (empty unless `record_trace_ids`).
    pub fn trace_ids(&self) -> HashSet<[u8; 16]> {
        self.counters
            .trace_ids
            .as_ref()
            .map(|m| m.lock().unwrap_or_else(|p| p.into_inner()).clone())
            .unwrap_or_default()
    }

    /// Waits until at least `spans` spans arrived or `timeout` passed, then also until the count
    /// stayed still for `quiet` (so late duplicates would be seen); returns the totals.
    pub async fn wait_for(&self, spans: u64, timeout: Duration, quiet: Duration) -> SinkTotals {
        let deadline = Instant::now() + timeout;
        while self.totals().spans < spans && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut last = self.totals();
        let mut still_since = Instant::now();
        while still_since.elapsed() < quiet && Instant::now() < deadline + quiet {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let now = self.totals();
            if now != last {
                last = now;
                still_since = Instant::now();
            }
        }
        last
    }
}

fn gunzip(body: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(body.len() * 4);
    flate2::read::MultiGzDecoder::new(body)
        .take(MAX_BODY as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("bad gzip body: {e}"))?;
    if out.len() > MAX_BODY {
        return Err("body too large".into());
    }
    Ok(out)
}

async fn http_export(
    State(counters): State<Arc<Counters>>,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    let gzip = headers
        .get(header::CONTENT_ENCODING)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"gzip"));
    let raw = if gzip {
        match gunzip(&body) {
            Ok(raw) => Bytes::from(raw),
            Err(e) => {
                counters.malformed.fetch_add(1, Ordering::Relaxed);
                return (StatusCode::BAD_REQUEST, e).into_response();
            }
        }
    } else {
        body
    };
    match counters.take(&raw) {
        // An empty ExportTraceServiceResponse encodes to zero bytes.
        Ok(()) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/x-protobuf")],
            Bytes::new(),
        )
            .into_response(),
        Err(e) => (StatusCode::BAD_REQUEST, e).into_response(),
    }
}

/// `TraceService` over the pass-through codec (tonic handles framing and gzip).
#[derive(Clone)]
struct GrpcSink(Arc<Counters>);

impl tonic::server::NamedService for GrpcSink {
    const NAME: &'static str = SERVICE;
}

struct Export(Arc<Counters>);

impl tonic::server::UnaryService<Bytes> for Export {
    type Response = Bytes;
    type Future = BoxFuture<tonic::Response<Bytes>, tonic::Status>;

    fn call(&mut self, request: tonic::Request<Bytes>) -> Self::Future {
        let counted = self.0.take(request.get_ref());
        Box::pin(async move {
            counted
                .map(|()| tonic::Response::new(Bytes::new()))
                .map_err(tonic::Status::invalid_argument)
        })
    }
}

impl Service<http::Request<tonic::body::Body>> for GrpcSink {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Infallible>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        let counters = self.0.clone();
        Box::pin(async move {
            if req.uri().path() != EXPORT_PATH {
                return Ok(tonic::Status::unimplemented("only TraceService/Export").into_http());
            }
            let mut grpc = tonic::server::Grpc::new(RawCodec)
                .accept_compressed(CompressionEncoding::Gzip)
                .send_compressed(CompressionEncoding::Gzip)
                .max_decoding_message_size(MAX_BODY);
            Ok(grpc.unary(Export(counters), req).await)
        })
    }
}
