//! `loadgen otlp`: OTLP trace load at a fixed span rate or as fast as the receiver answers.
//!
//! `connections` workers, each with its own connection (one HTTP/1.1 keep-alive connection, or
//! one tonic channel = one HTTP/2 connection) and one request in flight. Request `k` of the run is
//! due at `k × spans_per_request / rate`; workers take the next number from a shared counter, so
//! the rate holds whatever the latency as long as some worker is free. A request more than
//! [`MAX_LAG`] behind its due time is not sent but counted as `missed` (the rate was not reached),
//! so a slow receiver never causes a catch-up burst. With `--rate max` workers send back to back.
//! Latency is measured from the moment a request leaves.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;
use tonic::codec::CompressionEncoding;
use tonic::transport::Channel;

use super::grpc::{EXPORT_PATH, RawCodec};
use super::payload::{Shape, Template};

/// How far behind its due time a request may still leave.
pub const MAX_LAG: Duration = Duration::from_millis(250);

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Http,
    Grpc,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Http => "http",
            Protocol::Grpc => "grpc",
        })
    }
}

/// Spans per second, or as fast as the receiver answers.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub enum Rate {
    Fixed(f64),
    Max,
}

impl FromStr for Rate {
    type Err = String;

    /// `max`, `10000`, `10k`, `1.5m`.
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim().to_ascii_lowercase();
        if s == "max" {
            return Ok(Rate::Max);
        }
        let (num, mult) = match s.strip_suffix('k') {
            Some(n) => (n, 1e3),
            None => match s.strip_suffix('m') {
                Some(n) => (n, 1e6),
                None => (s.as_str(), 1.0),
            },
        };
        let v: f64 = num
            .parse()
            .map_err(|_| format!("`{s}` is not a rate (spans/s: 10000, 10k, or max)"))?;
        let v = v * mult;
        if !(v.is_finite() && v > 0.0 && v <= 1e8) {
            return Err(format!("`{s}`: the rate must be in (0, 100m] spans/s"));
        }
        Ok(Rate::Fixed(v))
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rate::Max => f.write_str("max"),
            Rate::Fixed(v) if *v >= 1e3 && v % 1e3 == 0.0 => write!(f, "{}k", v / 1e3),
            Rate::Fixed(v) => write!(f, "{v}"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct GenConfig {
    /// The receiver: its OTLP/HTTP port for `Http`, its gRPC port for `Grpc`.
    pub target: SocketAddr,
    pub protocol: Protocol,
    pub connections: usize,
    pub rate: Rate,
    pub duration: Duration,
    pub shape: Shape,
    /// gzip every request body (HTTP: `Content-Encoding: gzip`; gRPC: `grpc-encoding: gzip`).
    pub gzip: bool,
    /// Per request; an unanswered request counts as failed.
    pub timeout: Duration,
    /// At most this many requests, whatever the duration.
    pub max_requests: u64,
    /// Seeds the run's trace ids (give each run its own).
    pub salt: u64,
}

impl GenConfig {
    pub fn new(target: SocketAddr, protocol: Protocol) -> Self {
        GenConfig {
            target,
            protocol,
            connections: 4,
            rate: Rate::Fixed(10_000.0),
            duration: Duration::from_secs(5),
            shape: Shape::default(),
            gzip: false,
            timeout: Duration::from_secs(10),
            max_requests: 10_000_000,
            salt: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64),
        }
    }
}

/// What a run sent and what came back.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct GenReport {
    pub requests_sent: u64,
    /// Answered with success (HTTP 2xx, gRPC OK).
    pub requests_accepted: u64,
    /// Pushed back: HTTP 429/503, gRPC UNAVAILABLE/RESOURCE_EXHAUSTED.
    pub requests_refused: u64,
    /// Any other answer, a broken connection, or no answer within the timeout.
    pub requests_failed: u64,
    /// Due requests not sent because they were more than `MAX_LAG` late.
    pub requests_missed: u64,
    pub spans_sent: u64,
    /// Spans of accepted requests, less any a partial success rejected.
    pub spans_accepted: u64,
    /// From the load's start to the last answer.
    pub elapsed_secs: f64,
    pub latency_p50_ms: f64,
    pub latency_p99_ms: f64,
    pub latency_max_ms: f64,
    /// The first failure's description, if any.
    pub first_error: Option<String>,
}

impl GenReport {
    pub fn spans_per_second(&self) -> f64 {
        self.spans_accepted as f64 / self.elapsed_secs.max(1e-9)
    }

    /// A few lines for a terminal.
    pub fn text(&self) -> String {
        let mut s = format!(
            "requests: {} sent, {} accepted, {} refused, {} failed, {} missed\n\
             spans: {} sent, {} accepted ({:.0}/s over {:.2} s)\n\
             latency: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms\n",
            self.requests_sent,
            self.requests_accepted,
            self.requests_refused,
            self.requests_failed,
            self.requests_missed,
            self.spans_sent,
            self.spans_accepted,
            self.spans_per_second(),
            self.elapsed_secs,
            self.latency_p50_ms,
            self.latency_p99_ms,
            self.latency_max_ms,
        );
        if let Some(e) = &self.first_error {
            s.push_str(&format!("first error: {e}\n"));
        }
        s
    }
}

enum Outcome {
    /// Accepted; the receiver's partial success rejected this many spans.
    Accepted(u64),
    Refused,
    Failed(String),
}

struct HttpConn {
    addr: SocketAddr,
    sender: Option<hyper::client::conn::http1::SendRequest<Full<Bytes>>>,
}

impl HttpConn {
    async fn connect(
        addr: SocketAddr,
    ) -> Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>, String> {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connecting to {addr}: {e}"))?;
        let _ = stream.set_nodelay(true);
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("HTTP handshake with {addr}: {e}"))?;
        // The connection task ends when the sender is dropped or the peer closes.
        tokio::spawn(conn);
        Ok(sender)
    }

    async fn send(&mut self, body: Bytes, gzip: bool) -> Outcome {
        if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
            match Self::connect(self.addr).await {
                Ok(s) => self.sender = Some(s),
                Err(e) => return Outcome::Failed(e),
            }
        }
        let Some(sender) = self.sender.as_mut() else {
            return Outcome::Failed("no connection".into());
        };
        let mut req = http::Request::post("/v1/traces")
            .header(http::header::HOST, self.addr.to_string())
            .header(http::header::CONTENT_TYPE, "application/x-protobuf");
        if gzip {
            req = req.header(http::header::CONTENT_ENCODING, "gzip");
        }
        let req = match req.body(Full::new(body)) {
            Ok(r) => r,
            Err(e) => return Outcome::Failed(e.to_string()),
        };
        let answer = async {
            sender.ready().await?;
            let resp = sender.send_request(req).await?;
            let status = resp.status();
            let body = resp.into_body().collect().await?.to_bytes();
            Ok::<_, hyper::Error>((status, body))
        }
        .await;
        match answer {
            Ok((status, body)) if status.is_success() => Outcome::Accepted(rejected(&body)),
            Ok((status, _))
                if status == http::StatusCode::TOO_MANY_REQUESTS
                    || status == http::StatusCode::SERVICE_UNAVAILABLE =>
            {
                Outcome::Refused
            }
            Ok((status, body)) => Outcome::Failed(format!(
                "HTTP {status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(200)])
            )),
            Err(e) => {
                self.sender = None;
                Outcome::Failed(e.to_string())
            }
        }
    }
}

/// Spans a partial success says were rejected (0 for an empty answer or one we cannot read).
fn rejected(body: &[u8]) -> u64 {
    if body.is_empty() {
        return 0;
    }
    ExportTraceServiceResponse::decode(body)
        .ok()
        .and_then(|r| r.partial_success)
        .map_or(0, |p| p.rejected_spans.max(0) as u64)
}

enum Conn {
    Http(HttpConn),
    Grpc(tonic::client::Grpc<Channel>),
}

impl Conn {
    async fn open(cfg: &GenConfig) -> Result<Conn, String> {
        match cfg.protocol {
            Protocol::Http => Ok(Conn::Http(HttpConn {
                addr: cfg.target,
                sender: Some(HttpConn::connect(cfg.target).await?),
            })),
            Protocol::Grpc => {
                let channel =
                    tonic::transport::Endpoint::from_shared(format!("http://{}", cfg.target))
                        .map_err(|e| e.to_string())?
                        .tcp_nodelay(true)
                        .connect()
                        .await
                        .map_err(|e| format!("connecting to {}: {e}", cfg.target))?;
                let mut grpc = tonic::client::Grpc::new(channel)
                    .accept_compressed(CompressionEncoding::Gzip)
                    .max_decoding_message_size(64 << 20);
                if cfg.gzip {
                    grpc = grpc.send_compressed(CompressionEncoding::Gzip);
                }
                Ok(Conn::Grpc(grpc))
            }
        }
    }

    async fn send(&mut self, body: Bytes, gzip: bool) -> Outcome {
        match self {
            Conn::Http(c) => c.send(body, gzip).await,
            Conn::Grpc(grpc) => {
                if let Err(e) = grpc.ready().await {
                    return Outcome::Failed(e.to_string());
                }
                let path = http::uri::PathAndQuery::from_static(EXPORT_PATH);
                match grpc.unary(tonic::Request::new(body), path, RawCodec).await {
                    Ok(resp) => Outcome::Accepted(rejected(resp.get_ref())),
                    // A transport failure is UNAVAILABLE too, but carries its cause.
                    Err(s)
                        if matches!(
                            s.code(),
                            tonic::Code::Unavailable | tonic::Code::ResourceExhausted
                        ) && std::error::Error::source(&s).is_none() =>
                    {
                        Outcome::Refused
                    }
                    Err(s) => Outcome::Failed(format!("gRPC {:?}: {}", s.code(), s.message())),
                }
            }
        }
    }
}

fn gzip_bytes(raw: &[u8]) -> Vec<u8> {
    use std::io::Write;
    // Level 1: the generator shares a core with the sink; compression ratio matters less here
    // than the receiver having to decompress at all.
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(raw.len() / 4),
        flate2::Compression::fast(),
    );
    let _ = enc.write_all(raw);
    enc.finish().unwrap_or_default()
}

#[derive(Default)]
struct Tally {
    sent: AtomicU64,
    accepted: AtomicU64,
    refused: AtomicU64,
    failed: AtomicU64,
    missed: AtomicU64,
    spans_accepted: AtomicU64,
}

/// Sends the load; returns once every worker stopped (at most `duration` plus one `timeout`).
pub async fn run(cfg: &GenConfig) -> Result<GenReport, String> {
    if cfg.connections == 0 {
        return Err("at least one connection is needed".into());
    }
    let template = Arc::new(Template::new(cfg.shape, cfg.salt));
    let spr = cfg.shape.spans_per_request as u64;
    // Connect every worker before the clock starts.
    let mut conns = Vec::with_capacity(cfg.connections);
    for _ in 0..cfg.connections {
        conns.push(Conn::open(cfg).await?);
    }
    let tally = Arc::new(Tally::default());
    let next = Arc::new(AtomicU64::new(0));
    let first_error = Arc::new(std::sync::Mutex::new(None::<String>));
    let t0 = Instant::now();
    let deadline = t0 + cfg.duration;
    let interval = match cfg.rate {
        Rate::Fixed(r) => Some(spr as f64 / r),
        Rate::Max => None,
    };
    let mut workers = Vec::with_capacity(conns.len());
    for mut conn in conns {
        let (template, tally, next, first_error) = (
            template.clone(),
            tally.clone(),
            next.clone(),
            first_error.clone(),
        );
        let (gzip, timeout, max_requests) = (cfg.gzip, cfg.timeout, cfg.max_requests);
        workers.push(tokio::spawn(async move {
            let mut hist = Histogram::<u64>::new_with_bounds(1, 120_000_000, 3)
                .expect("valid histogram bounds");
            loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                if k >= max_requests {
                    break;
                }
                match interval {
                    Some(iv) => {
                        let due = t0 + Duration::from_secs_f64(iv * k as f64);
                        if due >= deadline {
                            break;
                        }
                        let now = Instant::now();
                        if now < due {
                            tokio::time::sleep_until(due.into()).await;
                        } else if now - due > MAX_LAG {
                            tally.missed.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                    }
                    None => {
                        if Instant::now() >= deadline {
                            break;
                        }
                    }
                }
                let now_nanos = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as u64);
                let raw = template.request(k, now_nanos);
                let body = Bytes::from(match (gzip, &conn) {
                    // tonic compresses gRPC messages itself.
                    (true, Conn::Http(_)) => gzip_bytes(&raw),
                    _ => raw,
                });
                tally.sent.fetch_add(1, Ordering::Relaxed);
                let sent_at = Instant::now();
                let outcome = match tokio::time::timeout(timeout, conn.send(body, gzip)).await {
                    Ok(o) => o,
                    Err(_) => {
                        if let Conn::Http(c) = &mut conn {
                            // Its answer may still come on that connection: start afresh.
                            c.sender = None;
                        }
                        Outcome::Failed(format!("no answer within {timeout:?}"))
                    }
                };
                let _ = hist.record(sent_at.elapsed().as_micros().max(1) as u64);
                match outcome {
                    Outcome::Accepted(rejected) => {
                        tally.accepted.fetch_add(1, Ordering::Relaxed);
                        tally
                            .spans_accepted
                            .fetch_add(spr.saturating_sub(rejected), Ordering::Relaxed);
                    }
                    Outcome::Refused => {
                        tally.refused.fetch_add(1, Ordering::Relaxed);
                    }
                    Outcome::Failed(e) => {
                        tally.failed.fetch_add(1, Ordering::Relaxed);
                        let mut first = first_error.lock().unwrap_or_else(|p| p.into_inner());
                        first.get_or_insert(e);
                    }
                }
            }
            hist
        }));
    }
    let mut hist =
        Histogram::<u64>::new_with_bounds(1, 120_000_000, 3).expect("valid histogram bounds");
    for w in workers {
        let h = w.await.map_err(|e| format!("a worker panicked: {e}"))?;
        let _ = hist.add(h);
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let ms = |us: u64| us as f64 / 1000.0;
    let sent = tally.sent.load(Ordering::Relaxed);
    let first_error = first_error
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    Ok(GenReport {
        requests_sent: sent,
        requests_accepted: tally.accepted.load(Ordering::Relaxed),
        requests_refused: tally.refused.load(Ordering::Relaxed),
        requests_failed: tally.failed.load(Ordering::Relaxed),
        requests_missed: tally.missed.load(Ordering::Relaxed),
        spans_sent: sent * spr,
        spans_accepted: tally.spans_accepted.load(Ordering::Relaxed),
        elapsed_secs: elapsed,
        latency_p50_ms: ms(hist.value_at_quantile(0.5)),
        latency_p99_ms: ms(hist.value_at_quantile(0.99)),
        latency_max_ms: ms(hist.max()),
        first_error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_as_people_write_them() {
        assert_eq!("max".parse::<Rate>().unwrap(), Rate::Max);
        assert_eq!("10k".parse::<Rate>().unwrap(), Rate::Fixed(10_000.0));
        assert_eq!("2500".parse::<Rate>().unwrap(), Rate::Fixed(2_500.0));
        assert_eq!("1.5m".parse::<Rate>().unwrap(), Rate::Fixed(1_500_000.0));
        assert!("-3".parse::<Rate>().is_err());
        assert!("fast".parse::<Rate>().is_err());
        assert_eq!(Rate::Fixed(100_000.0).to_string(), "100k");
        assert_eq!(Rate::Max.to_string(), "max");
    }
}
