//! The OTLP receiver on the wire: the Rust SDK's exporter (gRPC, HTTP/protobuf, HTTP/JSON),
//! a hand-written OTLP/JSON payload, body limits, gzip, back-pressure codes, health and metrics.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::*;
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::trace::{Tracer, TracerProvider as _};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use prost::Message;
use telemetry::{Protocol, TelemetryConfig};

fn file_config(out: &std::path::Path, extra_http: &str) -> String {
    format!(
        "receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
      http:
        endpoint: 127.0.0.1:0{extra_http}
exporters:
  file:
    path: {}
service:
  pipelines:
    traces: {{receivers: [otlp], exporters: [file]}}
    metrics: {{receivers: [otlp], exporters: [file]}}
    logs: {{receivers: [otlp], exporters: [file]}}
",
        out.display()
    )
}

/// Sends one span, one counter and one log record with opentelemetry-otlp.
async fn export_with_sdk(protocol: Protocol, endpoint: String, service: &str) -> String {
    let mut config = TelemetryConfig::from_env(service, env!("CARGO_PKG_VERSION"));
    config.default_service_name = service.to_string();
    config.protocol = Some(protocol);
    config.endpoint = Some(endpoint);
    config.sdk_disabled = false;
    config.export_traces = true;
    config.export_metrics = true;
    config.export_logs = true;
    let resource = telemetry::otlp::resource(&config);
    let tracer = telemetry::otlp::tracer_provider(&config, resource.clone()).unwrap();
    let meter = telemetry::otlp::meter_provider(&config, resource.clone()).unwrap();
    let logger = telemetry::otlp::logger_provider(&config, resource).unwrap();
    let trace_id = tracer.tracer("e2e").in_span("checkout", |cx| {
        use opentelemetry::trace::TraceContextExt;
        cx.span().span_context().trace_id().to_string()
    });
    meter
        .meter("e2e")
        .u64_counter("orders_total")
        .build()
        .add(2, &[opentelemetry::KeyValue::new("sku", "LAPTOP-1")]);
    {
        use opentelemetry::logs::{LogRecord as _, Logger as _, LoggerProvider as _};
        let log = logger.logger("e2e");
        let mut record = log.create_log_record();
        record.set_body("order placed".into());
        log.emit(record);
    }
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
    trace_id
}

async fn sdk_roundtrip(protocol: Protocol) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    let c = start(&file_config(&out, "")).await;
    let endpoint = match protocol {
        Protocol::Grpc => format!("http://{}", c.addr("otlp/grpc").unwrap()),
        _ => format!("http://{}", c.addr("otlp/http").unwrap()),
    };
    let service = format!("svc-{protocol:?}").to_lowercase();
    let trace_id = export_with_sdk(protocol, endpoint, &service).await;
    let lines = eventually("all three signals in the file", async || {
        let lines = read_lines(&out);
        let text = serde_json::to_string(&lines).unwrap();
        (text.contains("resourceSpans")
            && text.contains("orders_total")
            && text.contains("order placed"))
        .then_some(lines)
    })
    .await;
    let spans = spans_in(&lines);
    assert!(
        spans
            .iter()
            .any(|(svc, name, tid, _)| svc == &service && name == "checkout" && tid == &trace_id),
        "{spans:?}"
    );
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_sdk_over_grpc_arrives() {
    sdk_roundtrip(Protocol::Grpc).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_sdk_over_http_protobuf_arrives() {
    sdk_roundtrip(Protocol::HttpProtobuf).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_sdk_over_http_json_arrives() {
    sdk_roundtrip(Protocol::HttpJson).await;
}

/// The example of the OTLP specification (file exporter JSON), plus enum values by name.
const SPEC_JSON: &str = r#"{
  "resourceSpans": [{
    "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "my.service"}}]},
    "scopeSpans": [{
      "scope": {"name": "my.library", "version": "1.0.0",
                "attributes": [{"key": "my.scope.attribute", "value": {"stringValue": "some scope attribute"}}]},
      "spans": [{
        "traceId": "5b8efff798038103d269b633813fc60c",
        "spanId": "eee19b7ec3c1b174",
        "parentSpanId": "eee19b7ec3c1b173",
        "name": "I'm a server span",
        "startTimeUnixNano": "1544712660000000000",
        "endTimeUnixNano": "1544712661000000000",
        "kind": 2,
        "attributes": [{"key": "my.span.attr", "value": {"stringValue": "some value"}}]
      }, {
        "traceId": "5b8efff798038103d269b633813fc60c",
        "spanId": "eee19b7ec3c1b175",
        "parentSpanId": "eee19b7ec3c1b174",
        "name": "named enums",
        "startTimeUnixNano": "1544712660100000000",
        "endTimeUnixNano": "1544712660900000000",
        "kind": "SPAN_KIND_CLIENT",
        "status": {"code": "STATUS_CODE_ERROR", "message": "boom"},
        "attributes": [{"key": "retries", "value": {"intValue": "3"}}]
      }]
    }]
  }]
}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spec_json_payload_with_enum_names_arrives() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    let c = start(&file_config(&out, "")).await;
    let url = format!("http://{}/v1/traces", c.addr("otlp/http").unwrap());
    let resp = reqwest::Client::new()
        .post(&url)
        .header("content-type", "application/json")
        .body(SPEC_JSON)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let lines = eventually("spans in the file", async || {
        let l = read_lines(&out);
        (spans_in(&l).len() == 2).then_some(l)
    })
    .await;
    let spans = spans_in(&lines);
    assert_eq!(spans[0].0, "my.service");
    assert_eq!(spans[0].2, "5b8efff798038103d269b633813fc60c");
    assert_eq!(spans[1].3, 3, "SPAN_KIND_CLIENT decoded to 3");
    let text = serde_json::to_string(&lines).unwrap();
    assert!(
        text.contains(r#""code":2"#),
        "STATUS_CODE_ERROR decoded: {text}"
    );

    // Malformed JSON: 400 with a google.rpc.Status body (INVALID_ARGUMENT).
    let resp = reqwest::Client::new()
        .post(&url)
        .header("content-type", "application/json")
        .body(r#"{"resourceSpans": [{"scopeSpans": [{"spans": [{"kind": "SPAN_KIND_NOPE"}]}]}]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["code"], 3);
    assert!(body["message"].as_str().unwrap().contains("kind"), "{body}");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_get_413_and_gzip_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    let c = start(&file_config(&out, "\n        max_request_body_size: 2048")).await;
    let url = format!("http://{}/v1/traces", c.addr("otlp/http").unwrap());
    let names: Vec<String> = (0..200).map(|i| format!("span-{i}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let big = trace_request("big", [7; 16], &refs).encode_to_vec();
    assert!(big.len() > 2048);
    let client = reqwest::Client::new();
    let resp = client
        .post(&url)
        .header("content-type", "application/x-protobuf")
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);

    // Compressed below the limit but larger once decompressed: still 413.
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(&mut enc, &big).unwrap();
    let gz = enc.finish().unwrap();
    assert!(gz.len() < 2048, "{}", gz.len());
    let resp = client
        .post(&url)
        .header("content-type", "application/x-protobuf")
        .header("content-encoding", "gzip")
        .body(gz)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);

    // A small gzip request is accepted.
    let small = trace_request("small", [8; 16], &["a", "b"]).encode_to_vec();
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut enc, &small).unwrap();
    let resp = client
        .post(&url)
        .header("content-type", "application/x-protobuf")
        .header("content-encoding", "gzip")
        .body(enc.finish().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    eventually("small trace in the file", async || {
        (spans_in(&read_lines(&out)).len() == 2).then_some(())
    })
    .await;

    // Unsupported media type.
    let resp = client
        .post(&url)
        .header("content-type", "text/plain")
        .body("hi")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 415);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_ids_get_a_partial_success() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    let c = start(&file_config(&out, "")).await;
    let mut req = trace_request("p", [9; 16], &["good", "bad"]);
    req.resource_spans[0].scope_spans[0].spans[1].trace_id = vec![1, 2, 3];
    let mut client =
        TraceServiceClient::connect(format!("http://{}", c.addr("otlp/grpc").unwrap()))
            .await
            .unwrap();
    let resp = client.export(req).await.unwrap().into_inner();
    let p = resp.partial_success.expect("partial success");
    assert_eq!(p.rejected_spans, 1);
    assert!(p.error_message.contains("16 bytes"));
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_limiter_refuses_with_retryable_codes() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    let reading = Arc::new(AtomicU64::new(10 * 1024 * 1024));
    let probe_reading = reading.clone();
    let opts = collector::StartOptions {
        memory_probe: Some(Arc::new(move || probe_reading.load(Ordering::Relaxed))),
    };
    let yaml = format!(
        "receivers:
  otlp:
    protocols:
      grpc: {{endpoint: 127.0.0.1:0}}
      http: {{endpoint: 127.0.0.1:0}}
processors:
  memory_limiter:
    check_interval: 10ms
    limit_mib: 100
    spike_limit_mib: 20
exporters:
  file: {{path: {}}}
service:
  pipelines:
    traces: {{receivers: [otlp], processors: [memory_limiter], exporters: [file]}}
",
        out.display()
    );
    let c = start_with(&yaml, opts).await;
    let grpc = format!("http://{}", c.addr("otlp/grpc").unwrap());
    let http = format!("http://{}/v1/traces", c.addr("otlp/http").unwrap());
    let mut client = TraceServiceClient::connect(grpc).await.unwrap();
    client
        .export(trace_request("m", [1; 16], &["accepted"]))
        .await
        .expect("below the soft limit: accepted");

    // 90 MiB > soft limit of 80 MiB.
    reading.store(90 * 1024 * 1024, Ordering::Relaxed);
    let status = eventually("gRPC RESOURCE_EXHAUSTED", async || {
        client
            .export(trace_request("m", [2; 16], &["probe"]))
            .await
            .err()
    })
    .await;
    assert_eq!(status.code(), tonic::Code::ResourceExhausted);
    // Retryable by the OTLP spec: RESOURCE_EXHAUSTED with a google.rpc.RetryInfo detail.
    assert_eq!(
        collector::rpc_status::grpc_retry_delay(&status),
        Some(Duration::from_secs(1))
    );
    assert!(
        status
            .metadata()
            .get_bin("google.rpc.retryinfo-bin")
            .is_some()
    );
    let resp = reqwest::Client::new()
        .post(&http)
        .header("content-type", "application/x-protobuf")
        .body(trace_request("m", [3; 16], &["refused"]).encode_to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["retry-after"], "1");
    let body = collector::rpc_status::RpcStatus::decode(resp.bytes().await.unwrap()).unwrap();
    assert_eq!(body.code, tonic::Code::Unavailable as i32);
    assert_eq!(
        body.retry_info().and_then(|r| r.delay()),
        Some(Duration::from_secs(1))
    );
    let resp = reqwest::Client::new()
        .post(&http)
        .header("content-type", "application/json")
        .body(
            r#"{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "0af7651916cd43dd8448eb211c80319c",
                "spanId": "b7ad6b7169203331", "name": "refused"}]}]}]}"#,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["code"], 14, "{body}");
    assert_eq!(
        body["details"][0],
        serde_json::json!({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1s"})
    );

    // Back below: accepted again; what was accepted before is in the file, nothing refused is.
    reading.store(10 * 1024 * 1024, Ordering::Relaxed);
    eventually("accepting again", async || {
        client
            .export(trace_request("m", [4; 16], &["accepted-again"]))
            .await
            .ok()
    })
    .await;
    let names: Vec<String> = spans_in(&read_lines(&out))
        .into_iter()
        .map(|s| s.1)
        .collect();
    // Probes sent before the limiter's next check may have been accepted; the refused
    // request never is.
    assert!(!names.iter().any(|n| n == "refused"), "{names:?}");
    assert_eq!(names.first().map(String::as_str), Some("accepted"));
    assert_eq!(names.last().map(String::as_str), Some("accepted-again"));
    let counters = c
        .self_metrics()
        .counters("memory_limiter", "traces")
        .unwrap();
    assert!(counters.refused.load(Ordering::Relaxed) >= 1);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_check_and_self_metrics() {
    let yaml = "receivers:
  otlp:
    protocols:
      http: {endpoint: 127.0.0.1:0}
exporters:
  nop:
extensions:
  health_check: {endpoint: 127.0.0.1:0}
service:
  extensions: [health_check]
  pipelines:
    traces: {receivers: [otlp], exporters: [nop]}
";
    let c = start(yaml).await;
    let health = format!("http://{}/", c.addr("health_check").unwrap());
    let resp = reqwest::get(&health).await.unwrap();
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["status"], "Server available");

    let http = format!("http://{}/v1/traces", c.addr("otlp/http").unwrap());
    let resp = reqwest::Client::new()
        .post(&http)
        .header("content-type", "application/x-protobuf")
        .body(trace_request("h", [5; 16], &["a", "b", "c"]).encode_to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let metrics = reqwest::get(format!(
        "http://{}/metrics",
        c.addr("health_check").unwrap()
    ))
    .await
    .unwrap()
    .text()
    .await
    .unwrap();
    assert!(
        metrics.contains(r#"tracelab_collector_component_received_items_total{kind="receiver",component="otlp",signal="traces",pipeline=""} 3"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"tracelab_collector_component_sent_items_total{kind="exporter",component="nop",signal="traces",pipeline="traces"} 3"#),
        "{metrics}"
    );
    // No metrics pipeline: the signal is not served.
    let resp = reqwest::Client::new()
        .post(format!(
            "http://{}/v1/metrics",
            c.addr("otlp/http").unwrap()
        ))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    c.shutdown().await;
    let _ = Duration::ZERO;
}
