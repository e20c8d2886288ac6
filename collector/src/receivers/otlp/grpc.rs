//! OTLP/gRPC: the three collector services on one tonic server.

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
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tokio::sync::watch;
use tonic::codec::CompressionEncoding;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

use super::{
    GrpcConfig, IngestError, SignalConsumers, ingest, no_validation, validate_logs, validate_spans,
};

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

#[tonic::async_trait]
impl TraceService for Svc {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let a = ingest(
            &self.0.traces,
            request.into_inner().resource_spans,
            validate_spans,
        )
        .await
        .map_err(status)?;
        Ok(Response::new(ExportTraceServiceResponse {
            partial_success: (a.rejected > 0).then_some(ExportTracePartialSuccess {
                rejected_spans: a.rejected,
                error_message: a.message,
            }),
        }))
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
        .add_service(
            TraceServiceServer::new(svc.clone())
                .accept_compressed(CompressionEncoding::Gzip)
                .send_compressed(CompressionEncoding::Gzip)
                .max_decoding_message_size(max),
        )
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
