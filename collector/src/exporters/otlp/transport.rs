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
use crate::grpc_codec::RawClientCodec;
use crate::pipeline::signal::Signal;
use crate::pipeline::wire::Encoded;

/// One export RPC per signal (the generated clients are distinct types).
#[async_trait::async_trait]
pub trait OtlpGrpcSignal: Signal {
    /// The export method's path, for sending encoded payloads as they are.
    const EXPORT_PATH: &'static str;
    /// The export response (decoded from what the backend answers).
    type Response: prost::Message + Default + Send + 'static;
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
            type Response = $resp;
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

    /// The chunks go out as they are (`RawClientCodec`): no decode, no re-encode.
    async fn send_encoded(&self, batch: &Encoded<T>) -> Result<(), SendError> {
        let mut grpc = tonic::client::Grpc::new(self.channel.clone())
            .max_decoding_message_size(64 * 1024 * 1024);
        if self.gzip {
            grpc = grpc.send_compressed(CompressionEncoding::Gzip);
        }
        let unavailable = |e: tonic::transport::Error| SendError {
            retryable: true,
            message: format!("gRPC connection: {e}"),
            retry_after: None,
        };
        grpc.ready().await.map_err(unavailable)?;
        let path = http::uri::PathAndQuery::from_static(T::EXPORT_PATH);
        let resp = grpc
            .unary(
                self.request(batch.chunks.clone()),
                path,
                RawClientCodec::<T::Response>::default(),
            )
            .await
            .map_err(|s| grpc_send_error(&s))?;
        drop(resp);
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

fn gzip(data: &[u8]) -> Vec<u8> {
    gzip_chunks(&[data])
}

/// One gzip stream over the chunks in order (the fastest level: export latency matters more
/// than a few percent of bytes on the wire).
fn gzip_chunks<C: AsRef<[u8]>>(chunks: &[C]) -> Vec<u8> {
    let len: usize = chunks.iter().map(|c| c.as_ref().len()).sum();
    let mut enc =
        flate2::write::GzEncoder::new(Vec::with_capacity(len / 4), flate2::Compression::fast());
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
            let items = batch.decode().map_err(|e| SendError {
                retryable: false,
                message: format!("invalid OTLP protobuf: {e}"),
                retry_after: None,
            })?;
            return Transport::<T>::send(self, T::into_request(items)).await;
        }
        let body = if self.gzip {
            gzip_chunks(&batch.chunks)
        } else {
            batch.to_bytes().to_vec()
        };
        self.post(body, "application/x-protobuf").await
    }

    async fn send(&self, req: T::Request) -> Result<(), SendError> {
        let (body, ctype) = if self.json {
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
        let body = if self.gzip { gzip(&body) } else { body };
        self.post(body, ctype).await
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
