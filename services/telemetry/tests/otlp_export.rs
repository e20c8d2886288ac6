//! The kit's OTLP exporters deliver traces, metrics and logs to a local receiver over
//! each protocol of `OTEL_EXPORTER_OTLP_PROTOCOL`: gRPC (a tonic server) and HTTP with
//! protobuf or JSON bodies (an axum server).

use std::time::Duration;

use axum::{Router, body::Bytes, extract::State, http::HeaderMap, routing::post};
use opentelemetry::{
    KeyValue,
    logs::{LogRecord as _, Logger as _, LoggerProvider as _},
    metrics::MeterProvider as _,
    trace::{Tracer as _, TracerProvider as _},
};
use opentelemetry_proto::tonic::collector::{
    logs::v1::{
        ExportLogsServiceRequest, ExportLogsServiceResponse,
        logs_service_server::{LogsService, LogsServiceServer},
    },
    metrics::v1::{
        ExportMetricsServiceRequest, ExportMetricsServiceResponse,
        metrics_service_server::{MetricsService, MetricsServiceServer},
    },
    trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
        trace_service_server::{TraceService, TraceServiceServer},
    },
};
use prost::Message as _;
use telemetry::{Protocol, TelemetryConfig, otlp};
use tokio::sync::mpsc;

/// What a receiver saw, flattened to the names the assertions need.
#[derive(Debug)]
enum Received {
    Span { service: String, name: String },
    Metric { name: String },
    Log { body: String },
}

fn service_name(resource: &Option<opentelemetry_proto::tonic::resource::v1::Resource>) -> String {
    resource
        .iter()
        .flat_map(|r| &r.attributes)
        .find(|kv| kv.key == "service.name")
        .and_then(|kv| kv.value.as_ref())
        .map(|v| format!("{:?}", v.value))
        .unwrap_or_default()
}

fn flatten_traces(req: ExportTraceServiceRequest) -> Vec<Received> {
    req.resource_spans
        .into_iter()
        .flat_map(|rs| {
            let service = service_name(&rs.resource);
            rs.scope_spans.into_iter().flat_map(move |ss| {
                let service = service.clone();
                ss.spans.into_iter().map(move |s| Received::Span {
                    service: service.clone(),
                    name: s.name,
                })
            })
        })
        .collect()
}

fn flatten_metrics(req: ExportMetricsServiceRequest) -> Vec<Received> {
    req.resource_metrics
        .into_iter()
        .flat_map(|rm| rm.scope_metrics)
        .flat_map(|sm| sm.metrics)
        .map(|m| Received::Metric { name: m.name })
        .collect()
}

fn flatten_logs(req: ExportLogsServiceRequest) -> Vec<Received> {
    req.resource_logs
        .into_iter()
        .flat_map(|rl| rl.scope_logs)
        .flat_map(|sl| sl.log_records)
        .map(|l| Received::Log {
            body: format!("{:?}", l.body),
        })
        .collect()
}

#[derive(Clone)]
struct Sink(mpsc::UnboundedSender<Received>);

impl Sink {
    fn push(&self, items: Vec<Received>) {
        for item in items {
            let _ = self.0.send(item);
        }
    }
}

#[tonic::async_trait]
impl TraceService for Sink {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.push(flatten_traces(request.into_inner()));
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl MetricsService for Sink {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        self.push(flatten_metrics(request.into_inner()));
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl LogsService for Sink {
    async fn export(
        &self,
        request: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        self.push(flatten_logs(request.into_inner()));
        Ok(tonic::Response::new(ExportLogsServiceResponse::default()))
    }
}

async fn grpc_receiver(sink: Sink) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(sink.clone()))
            .add_service(MetricsServiceServer::new(sink.clone()))
            .add_service(LogsServiceServer::new(sink))
            .serve_with_incoming(incoming),
    );
    format!("http://{addr}")
}

/// Decodes a body as OTLP protobuf or OTLP/JSON depending on its content type.
fn decode<T: prost::Message + Default + serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    body: &[u8],
) -> T {
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if content_type.starts_with("application/json") {
        serde_json::from_slice(body).expect("valid OTLP/JSON")
    } else {
        assert_eq!(content_type, "application/x-protobuf");
        T::decode(body).expect("valid OTLP protobuf")
    }
}

async fn http_receiver(sink: Sink) -> (String, mpsc::UnboundedReceiver<String>) {
    let (ct_tx, ct_rx) = mpsc::unbounded_channel();
    let record_ct = move |headers: &HeaderMap| {
        let _ = ct_tx.send(
            headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned(),
        );
    };
    let (r1, r2, r3) = (record_ct.clone(), record_ct.clone(), record_ct);
    let router = Router::new()
        .route(
            "/v1/traces",
            post(
                move |State(sink): State<Sink>, headers: HeaderMap, body: Bytes| async move {
                    r1(&headers);
                    sink.push(flatten_traces(decode(&headers, &body)));
                    ExportTraceServiceResponse::default().encode_to_vec()
                },
            ),
        )
        .route(
            "/v1/metrics",
            post(
                move |State(sink): State<Sink>, headers: HeaderMap, body: Bytes| async move {
                    r2(&headers);
                    sink.push(flatten_metrics(decode(&headers, &body)));
                    ExportMetricsServiceResponse::default().encode_to_vec()
                },
            ),
        )
        .route(
            "/v1/logs",
            post(
                move |State(sink): State<Sink>, headers: HeaderMap, body: Bytes| async move {
                    r3(&headers);
                    sink.push(flatten_logs(decode(&headers, &body)));
                    ExportLogsServiceResponse::default().encode_to_vec()
                },
            ),
        )
        .with_state(sink);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (format!("http://{addr}"), ct_rx)
}

async fn export_all_signals(protocol: Protocol, endpoint: String, service: &str) {
    let mut config = TelemetryConfig::from_env(service, env!("CARGO_PKG_VERSION"));
    config.protocol = Some(protocol);
    config.endpoint = Some(endpoint);
    config.sdk_disabled = false;
    config.export_traces = true;
    config.export_metrics = true;
    config.export_logs = true;
    let resource = otlp::resource(&config);
    let tracer = otlp::tracer_provider(&config, resource.clone()).unwrap();
    let meter = otlp::meter_provider(&config, resource.clone()).unwrap();
    let logger = otlp::logger_provider(&config, resource).unwrap();

    tracer.tracer("otlp-test").in_span("checkout", |_| {});
    meter
        .meter("otlp-test")
        .u64_counter("inventory_reservations_total")
        .build()
        .add(3, &[KeyValue::new("sku", "LAPTOP-1")]);
    let log = logger.logger("otlp-test");
    let mut record = log.create_log_record();
    record.set_body("order placed".into());
    log.emit(record);

    // The SDK's processors block; flush them off the async workers.
    tokio::task::spawn_blocking(move || {
        tracer.force_flush().unwrap();
        meter.force_flush().unwrap();
        logger.force_flush().unwrap();
        let _ = tracer.shutdown();
        let _ = meter.shutdown();
        let _ = logger.shutdown();
    })
    .await
    .unwrap();
}

async fn expect_all_signals(rx: &mut mpsc::UnboundedReceiver<Received>, service: &str) {
    let (mut span, mut metric, mut log) = (false, false, false);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !(span && metric && log) {
        let item = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("missing signals: span={span} metric={metric} log={log}"))
            .unwrap();
        match item {
            Received::Span { service: s, name } => {
                assert!(s.contains(service), "service.name {s} != {service}");
                assert_eq!(name, "checkout");
                span = true;
            }
            Received::Metric { name } => metric |= name == "inventory_reservations_total",
            Received::Log { body } => {
                assert!(body.contains("order placed"), "{body}");
                log = true;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_delivers_traces_metrics_and_logs() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let endpoint = grpc_receiver(Sink(tx)).await;
    export_all_signals(Protocol::Grpc, endpoint, "grpc-svc").await;
    expect_all_signals(&mut rx, "grpc-svc").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_protobuf_delivers_traces_metrics_and_logs() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (endpoint, mut content_types) = http_receiver(Sink(tx)).await;
    export_all_signals(Protocol::HttpProtobuf, endpoint, "proto-svc").await;
    expect_all_signals(&mut rx, "proto-svc").await;
    assert_eq!(
        content_types.recv().await.unwrap(),
        "application/x-protobuf"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_json_delivers_traces_metrics_and_logs() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (endpoint, mut content_types) = http_receiver(Sink(tx)).await;
    export_all_signals(Protocol::HttpJson, endpoint, "json-svc").await;
    expect_all_signals(&mut rx, "json-svc").await;
    assert_eq!(content_types.recv().await.unwrap(), "application/json");
}
