//! OTLP/gRPC: the three collector services on one tonic server. The trace service is
//! [`RawTraceService`]: it takes each request as bytes, so a request the wire scan accepts goes
//! on still encoded (`pipeline::wire`) and only the others are decoded, by prost, as before.

use std::net::SocketAddr;

use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use tokio::sync::watch;
use tonic::codec::CompressionEncoding;
use tonic::codegen::{Body, BoxFuture, Bytes, Context, Poll, Service, StdError, http};
use tonic::server::NamedService;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

use super::{
    GrpcConfig, IngestError, SignalConsumers, ingest, ingest_encoded, no_validation, validate_logs,
    validate_spans,
};
use crate::grpc_codec::RawRequestCodec;
use crate::pipeline::wire::scan_traces;

#[derive(Clone)]
struct Svc(SignalConsumers);

fn status(e: IngestError) -> Status {
    match e {
        IngestError::NotEnabled(s) => Status::unimplemented(format!(
            "this collector has no {s} pipeline using this receiver"
        )),
        // Retryable by the OTLP spec only with RetryInfo: without it, SDKs drop the data.
        IngestError::Refused(m) => crate::rpc_status::grpc_retryable(
            tonic::Code::ResourceExhausted,
            m,
            crate::rpc_status::REFUSED_RETRY_DELAY,
        ),
        IngestError::Failed(m) => Status::internal(m),
    }
}

impl Svc {
    /// One trace export: still encoded when the scan accepts it, else decoded (prost is the
    /// authority on errors and partial success).
    async fn export_traces(&self, body: Bytes) -> Result<ExportTraceServiceResponse, Status> {
        if let Ok(scan) = scan_traces(&body) {
            ingest_encoded(&self.0.traces, body, scan.spans)
                .await
                .map_err(status)?;
            return Ok(ExportTraceServiceResponse {
                partial_success: None,
            });
        }
        let req = ExportTraceServiceRequest::decode(body)
            .map_err(|e| Status::invalid_argument(format!("invalid OTLP protobuf: {e}")))?;
        let a = ingest(&self.0.traces, req.resource_spans, validate_spans)
            .await
            .map_err(status)?;
        Ok(ExportTraceServiceResponse {
            partial_success: (a.rejected > 0).then_some(ExportTracePartialSuccess {
                rejected_spans: a.rejected,
                error_message: a.message,
            }),
        })
    }
}

/// `opentelemetry.proto.collector.trace.v1.TraceService` served by hand instead of by the
/// generated `TraceServiceServer`, whose codec would decode every request into owned structs.
/// Same path, compression (gzip both ways) and message size limit.
#[derive(Clone)]
struct RawTraceService {
    svc: Svc,
    max_decoding_message_size: usize,
}

impl NamedService for RawTraceService {
    const NAME: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
}

struct ExportRaw(Svc);

impl tonic::server::UnaryService<Bytes> for ExportRaw {
    type Response = ExportTraceServiceResponse;
    type Future = BoxFuture<Response<Self::Response>, Status>;

    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        let svc = self.0.clone();
        Box::pin(async move {
            svc.export_traces(request.into_inner())
                .await
                .map(Response::new)
        })
    }
}

impl<B> Service<http::Request<B>> for RawTraceService
where
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if req.uri().path() != "/opentelemetry.proto.collector.trace.v1.TraceService/Export" {
            return Box::pin(async {
                Ok(Status::unimplemented("unknown method of TraceService").into_http())
            });
        }
        let this = self.clone();
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(RawRequestCodec::default())
                .accept_compressed(CompressionEncoding::Gzip)
                .send_compressed(CompressionEncoding::Gzip)
                .max_decoding_message_size(this.max_decoding_message_size);
            Ok(grpc.unary(ExportRaw(this.svc), req).await)
        })
    }
}

#[tonic::async_trait]
impl MetricsService for Svc {
    async fn export(
        &self,
        request: Request<ExportMetricsServiceRequest>,
    ) -> Result<Response<ExportMetricsServiceResponse>, Status> {
        ingest(
            &self.0.metrics,
            request.into_inner().resource_metrics,
            no_validation,
        )
        .await
        .map_err(status)?;
        Ok(Response::new(ExportMetricsServiceResponse {
            partial_success: None,
        }))
    }
}

#[tonic::async_trait]
impl LogsService for Svc {
    async fn export(
        &self,
        request: Request<ExportLogsServiceRequest>,
    ) -> Result<Response<ExportLogsServiceResponse>, Status> {
        let a = ingest(
            &self.0.logs,
            request.into_inner().resource_logs,
            validate_logs,
        )
        .await
        .map_err(status)?;
        Ok(Response::new(ExportLogsServiceResponse {
            partial_success: (a.rejected > 0).then_some(ExportLogsPartialSuccess {
                rejected_log_records: a.rejected,
                error_message: a.message,
            }),
        }))
    }
}

pub(super) async fn serve(
    id: &str,
    cfg: &GrpcConfig,
    consumers: SignalConsumers,
    stop: watch::Receiver<bool>,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = super::bind(&cfg.endpoint).await?;
    let addr = listener.local_addr()?;
    // Nagle's algorithm adds up to 40 ms to small responses: disable it.
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    let max = cfg.max_recv_msg_size_mib * 1024 * 1024;
    let svc = Svc(consumers);
    let mut builder = tonic::transport::Server::builder();
    if let Some(n) = cfg.max_concurrent_streams {
        builder = builder.max_concurrent_streams(n);
    }
    let router = builder
        .add_service(RawTraceService {
            svc: svc.clone(),
            max_decoding_message_size: max,
        })
        .add_service(
            MetricsServiceServer::new(svc.clone())
                .accept_compressed(CompressionEncoding::Gzip)
                .send_compressed(CompressionEncoding::Gzip)
                .max_decoding_message_size(max),
        )
        .add_service(
            LogsServiceServer::new(svc)
                .accept_compressed(CompressionEncoding::Gzip)
                .send_compressed(CompressionEncoding::Gzip)
                .max_decoding_message_size(max),
        );
    let id = id.to_string();
    tracing::info!(receiver = %id, %addr, "OTLP/gRPC receiver listening");
    let task = tokio::spawn(async move {
        if let Err(e) = router
            .serve_with_incoming_shutdown(incoming, super::stopped(stop))
            .await
        {
            tracing::error!(receiver = %id, error = %e, "OTLP/gRPC server failed");
        }
    });
    Ok((addr, task))
}
