//! The wire: OTLP/gRPC through tonic's generated clients, OTLP/HTTP through reqwest.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::logs::v1::ResourceLogs;
use opentelemetry_proto::tonic::metrics::v1::ResourceMetrics;
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use prost::Message;
use tonic::codec::CompressionEncoding;
use tonic::transport::Channel;

use super::{SendError, Transport};
use crate::pipeline::signal::Signal;
use crate::pipeline::wire::Encoded;

/// One export RPC per signal (the generated clients are distinct types).
#[async_trait::async_trait]
pub trait OtlpGrpcSignal: Signal {
    /// The export method's path, for sending encoded payloads as they are.
    const EXPORT_PATH: &'static str;
    /// Logs an encoded export response's partial success, if it reports one.
    fn warn_partial(response: &[u8]);
    async fn export(
        channel: Channel,
        req: tonic::Request<Self::Request>,
        gzip: bool,
    ) -> Result<(), tonic::Status>;
}

macro_rules! grpc_signal {
    ($ty:ty, $client:ident, $path:literal, $resp:ty) => {
        #[async_trait::async_trait]
        impl OtlpGrpcSignal for $ty {
            const EXPORT_PATH: &'static str = $path;
            fn warn_partial(response: &[u8]) {
                if let Ok(r) = <$resp as prost::Message>::decode(response)
                    && let Some(p) = r.partial_success
                    && !p.error_message.is_empty()
                {
                    tracing::warn!(message = %p.error_message, "otlp exporter: partial success");
                }
            }
            async fn export(
                channel: Channel,
                req: tonic::Request<Self::Request>,
                gzip: bool,
            ) -> Result<(), tonic::Status> {
                let mut c = $client::new(channel).max_decoding_message_size(64 * 1024 * 1024);
                if gzip {
                    c = c.send_compressed(CompressionEncoding::Gzip);
                }
                let resp = c.export(req).await?.into_inner();
                if let Some(p) = resp.partial_success
                    && !p.error_message.is_empty()
                {
                    tracing::warn!(message = %p.error_message, "otlp exporter: partial success");
                }
                Ok(())
            }
        }
    };
}

grpc_signal!(
    ResourceSpans,
    TraceServiceClient,
    "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
    ExportTraceServiceResponse
);
grpc_signal!(
    ResourceMetrics,
    MetricsServiceClient,
    "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
    ExportMetricsServiceResponse
);
grpc_signal!(
    ResourceLogs,
    LogsServiceClient,
    "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
    ExportLogsServiceResponse
);

pub struct GrpcTransport {
    channel: Channel,
    headers: BTreeMap<String, String>,
    gzip: bool,
    timeout: Duration,
}

impl GrpcTransport {
    pub fn new(cfg: &super::OtlpExporterConfig) -> Result<Self, String> {
        let timeout = cfg.timeout.unwrap_or(Duration::from_secs(5));
        let endpoint = tonic::transport::Endpoint::from_shared(cfg.url())
            .map_err(|e| format!("invalid endpoint {}: {e}", cfg.endpoint))?
            .tcp_nodelay(true)
            .connect_timeout(timeout)
            .timeout(timeout);
        Ok(Self {
            channel: endpoint.connect_lazy(),
            headers: cfg.headers.clone(),
            gzip: cfg.compression.as_deref().is_none_or(|c| c == "gzip"),
            timeout,
        })
    }
}

/// The OTLP spec's retryable codes; RESOURCE_EXHAUSTED only when the server sent a RetryInfo
/// (otherwise it means "this can never fit", as in contrib's exporter).
fn grpc_send_error(s: &tonic::Status) -> SendError {
    use tonic::Code::*;
    let retry_after = crate::rpc_status::grpc_retry_delay(s);
    let retryable = match s.code() {
        Cancelled | DeadlineExceeded | Aborted | OutOfRange | Unavailable | DataLoss => true,
        ResourceExhausted => retry_after.is_some(),
        _ => false,
    };
    SendError {
        retryable,
        message: format!("gRPC {:?}: {}", s.code(), s.message()),
        retry_after,
    }
}

impl GrpcTransport {
    /// A request with the configured timeout and headers.
    fn request<M>(&self, message: M) -> tonic::Request<M> {
        let mut r = tonic::Request::new(message);
        r.set_timeout(self.timeout);
        for (k, v) in &self.headers {
            if let (Ok(k), Ok(v)) = (
                k.parse::<tonic::metadata::MetadataKey<tonic::metadata::Ascii>>(),
                v.parse(),
            ) {
                r.metadata_mut().insert(k, v);
            }
        }
        r
    }
}

#[async_trait::async_trait]
impl<T: OtlpGrpcSignal> Transport<T> for GrpcTransport {
    async fn send(&self, req: T::Request) -> Result<(), SendError> {
        T::export(self.channel.clone(), self.request(req), self.gzip)
            .await
            .map_err(|s| grpc_send_error(&s))
    }

    /// The chunks go out as they are: no decode, no re-encode. The gRPC message is framed here
    /// rather than by a tonic codec so that it can be gzipped at the fastest level, as the
    /// HTTP exporter does: tonic's gzip is fixed at level 6, which costs about three times the
    /// CPU for a few percent fewer bytes. The connection (HTTP/2, pooling, reconnects) is still
    /// tonic's `Channel`.
    async fn send_encoded(&self, batch: &Encoded<T>) -> Result<(), SendError> {
        // The message goes after the 5-byte gRPC prefix (compressed flag, big-endian length).
        let mut frame = body(5, &batch.chunks, self.gzip);
        let len = (frame.len() - 5) as u32;
        frame[0] = u8::from(self.gzip);
        frame[1..5].copy_from_slice(&len.to_be_bytes());
        let mut req = http::Request::builder()
            .method(http::Method::POST)
            .uri(T::EXPORT_PATH)
            .version(http::Version::HTTP_2)
            .header(http::header::CONTENT_TYPE, "application/grpc")
            .header(http::header::TE, "trailers")
            .header(
                "grpc-timeout",
                format!("{}m", self.timeout.as_millis().max(1)),
            );
        if self.gzip {
            req = req.header("grpc-encoding", "gzip");
        }
        for (k, v) in &self.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let req = req
            .body(tonic::body::Body::new(http_body_util::Full::new(
                bytes::Bytes::from(frame),
            )))
            .map_err(|e| SendError {
                retryable: false,
                message: format!("cannot build the gRPC request: {e}"),
                retry_after: None,
            })?;
        let unavailable = |e: &dyn std::fmt::Display| SendError {
            retryable: true,
            message: format!("gRPC {}: {e}", T::EXPORT_PATH),
            retry_after: None,
        };
        let mut channel = self.channel.clone();
        std::future::poll_fn(|cx| tonic::codegen::Service::poll_ready(&mut channel, cx))
            .await
            .map_err(|e| unavailable(&e))?;
        let resp = tonic::codegen::Service::call(&mut channel, req)
            .await
            .map_err(|e| unavailable(&e))?;
        if resp.status() != http::StatusCode::OK {
            // What tonic does with a non-gRPC answer (a proxy's 502, say): UNAVAILABLE-like.
            return Err(unavailable(&format!("HTTP status {}", resp.status())));
        }
        // A trailers-only answer carries the status in the headers.
        if let Some(st) = tonic::Status::from_header_map(resp.headers())
            && st.code() != tonic::Code::Ok
        {
            return Err(grpc_send_error(&st));
        }
        let collected = http_body_util::BodyExt::collect(resp.into_body())
            .await
            .map_err(|e| unavailable(&e))?;
        let status = collected
            .trailers()
            .and_then(tonic::Status::from_header_map)
            .ok_or_else(|| unavailable(&"the answer carried no grpc-status"))?;
        if status.code() != tonic::Code::Ok {
            return Err(grpc_send_error(&status));
        }
        let body = collected.to_bytes();
        // An uncompressed answer (we announce no grpc-accept-encoding): flag 0, length, message.
        if body.len() > 5 && body[0] == 0 {
            T::warn_partial(&body[5..]);
        }
        Ok(())
    }
}

pub struct HttpTransport {
    client: reqwest::Client,
    url: String,
    json: bool,
    gzip: bool,
    headers: BTreeMap<String, String>,
}

impl HttpTransport {
    pub fn new(cfg: &super::OtlpHttpExporterConfig, url: String) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .timeout(cfg.timeout.unwrap_or(Duration::from_secs(30)))
            .tcp_nodelay(true)
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Self {
            client,
            url,
            json: cfg.encoding.as_deref() == Some("json"),
            gzip: cfg.compression.as_deref().is_none_or(|c| c == "gzip"),
            headers: cfg.headers.clone(),
        })
    }
}

/// A request body: `prefix` zero bytes (room for a frame header), then the chunks in order,
/// gzipped as one stream when `gzip` is set (the fastest level: export latency matters more
/// than a few percent of bytes on the wire). Written once, straight into the returned buffer.
fn body<C: AsRef<[u8]>>(prefix: usize, chunks: &[C], gzip: bool) -> Vec<u8> {
    let len: usize = chunks.iter().map(|c| c.as_ref().len()).sum();
    if !gzip {
        let mut out = Vec::with_capacity(prefix + len);
        out.resize(prefix, 0);
        for c in chunks {
            out.extend_from_slice(c.as_ref());
        }
        return out;
    }
    let mut out = Vec::with_capacity(prefix + len / 4);
    out.resize(prefix, 0);
    let mut enc = flate2::write::GzEncoder::new(out, flate2::Compression::fast());
    for c in chunks {
        let _ = enc.write_all(c.as_ref());
    }
    enc.finish().unwrap_or_default()
}

#[async_trait::async_trait]
impl<T: Signal> Transport<T> for HttpTransport {
    /// Protobuf payloads go out as they are (compressed chunk by chunk into one body); JSON
    /// needs the items, so it decodes.
    async fn send_encoded(&self, batch: &Encoded<T>) -> Result<(), SendError> {
        if self.json {
            return Transport::<T>::send(self, super::decoded_request(batch)?).await;
        }
        self.post(body(0, &batch.chunks, self.gzip), "application/x-protobuf")
            .await
    }

    async fn send(&self, req: T::Request) -> Result<(), SendError> {
        let (encoded, ctype) = if self.json {
            (
                serde_json::to_vec(&req).map_err(|e| SendError {
                    retryable: false,
                    message: format!("cannot encode JSON: {e}"),
                    retry_after: None,
                })?,
                "application/json",
            )
        } else {
            (req.encode_to_vec(), "application/x-protobuf")
        };
        let encoded = if self.gzip {
            body(0, &[encoded], true)
        } else {
            encoded
        };
        self.post(encoded, ctype).await
    }
}

impl HttpTransport {
    /// POSTs a body (already compressed when `gzip` is on) and maps the answer.
    async fn post(&self, body: Vec<u8>, ctype: &'static str) -> Result<(), SendError> {
        let mut rb = self
            .client
            .post(&self.url)
            .header(http::header::CONTENT_TYPE, ctype);
        for (k, v) in &self.headers {
            rb = rb.header(k.as_str(), v.as_str());
        }
        if self.gzip {
            rb = rb.header(http::header::CONTENT_ENCODING, "gzip");
        }
        let resp = rb.body(body).send().await.map_err(|e| SendError {
            retryable: true,
            message: format!("POST {}: {e}", self.url),
            retry_after: None,
        })?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let retry_after = resp
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let text = resp.text().await.unwrap_or_default();
        Err(SendError {
            retryable: matches!(status.as_u16(), 429 | 502 | 503 | 504),
            message: format!(
                "POST {} answered {status}: {}",
                self.url,
                text.chars().take(300).collect::<String>()
            ),
            retry_after,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::grpc_send_error;
    use crate::rpc_status::grpc_retryable;

    #[test]
    fn retry_info_sets_the_delay_and_makes_resource_exhausted_retryable() {
        let with = grpc_send_error(&grpc_retryable(
            tonic::Code::ResourceExhausted,
            "memory".into(),
            Duration::from_millis(2500),
        ));
        assert!(with.retryable);
        assert_eq!(with.retry_after, Some(Duration::from_millis(2500)));
        let without = grpc_send_error(&tonic::Status::resource_exhausted("too big"));
        assert!(
            !without.retryable,
            "RESOURCE_EXHAUSTED without RetryInfo is permanent"
        );
        let unavailable = grpc_send_error(&tonic::Status::unavailable("down"));
        assert!(unavailable.retryable);
        assert_eq!(unavailable.retry_after, None);
        assert!(!grpc_send_error(&tonic::Status::invalid_argument("bad")).retryable);
    }
}
