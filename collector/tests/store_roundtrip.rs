//! OTLP in, Jaeger API out: spans sent by the Rust SDK (gRPC, HTTP/protobuf, HTTP/JSON) and a
//! hand-written OTLP/JSON payload come back through `/api/traces/{id}` of the tracelab store.

mod common;

use common::*;
use opentelemetry::trace::{TraceContextExt, Tracer, TracerProvider as _};
use telemetry::{Protocol, TelemetryConfig};

fn store_config(dir: &std::path::Path) -> String {
    format!(
        "receivers:
  otlp:
    protocols:
      grpc: {{endpoint: 127.0.0.1:0}}
      http: {{endpoint: 127.0.0.1:0}}
processors:
  batch: {{timeout: 20ms}}
exporters:
  tracelab:
    storage: {{directory: {}}}
    query: {{endpoint: 127.0.0.1:0}}
service:
  pipelines:
    traces: {{receivers: [otlp], processors: [batch], exporters: [tracelab]}}
    logs: {{receivers: [otlp], exporters: [tracelab]}}
",
        dir.display()
    )
}

async fn send_span(protocol: Protocol, endpoint: String, service: &str) -> String {
    let mut config = TelemetryConfig::from_env(service, env!("CARGO_PKG_VERSION"));
    config.default_service_name = service.to_string();
    config.protocol = Some(protocol);
    config.endpoint = Some(endpoint);
    config.sdk_disabled = false;
    config.export_traces = true;
    let resource = telemetry::otlp::resource(&config);
    let tracer = telemetry::otlp::tracer_provider(&config, resource).unwrap();
    let trace_id = tracer.tracer("store-e2e").in_span("checkout", |cx| {
        tracer.tracer("store-e2e").in_span("charge", |_| {
            cx.span().span_context().trace_id().to_string()
        })
    });
    tokio::task::spawn_blocking(move || {
        tracer.force_flush().unwrap();
        let _ = tracer.shutdown();
    })
    .await
    .unwrap();
    trace_id
}

async fn fetch_trace(query: std::net::SocketAddr, trace_id: &str) -> serde_json::Value {
    let url = format!("http://{query}/api/traces/{trace_id}");
    eventually("the trace in the store", async || {
        let r = reqwest::get(&url).await.ok()?;
        if !r.status().is_success() {
            return None;
        }
        let v: serde_json::Value = r.json().await.ok()?;
        (v["data"][0]["spans"].as_array().map(Vec::len).unwrap_or(0) >= 2).then_some(v)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_spans_come_back_through_the_jaeger_api() {
    let dir = tempfile::tempdir().unwrap();
    let c = start(&store_config(dir.path())).await;
    let query = c.addr("query").unwrap();
    for (protocol, addr) in [
        (Protocol::Grpc, c.addr("otlp/grpc").unwrap()),
        (Protocol::HttpProtobuf, c.addr("otlp/http").unwrap()),
        (Protocol::HttpJson, c.addr("otlp/http").unwrap()),
    ] {
        let service = format!("store-{protocol:?}").to_lowercase();
        let trace_id = send_span(protocol, format!("http://{addr}"), &service).await;
        let v = fetch_trace(query, &trace_id).await;
        let trace = &v["data"][0];
        assert_eq!(trace["traceID"], trace_id.as_str());
        let names: Vec<&str> = trace["spans"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|s| s["operationName"].as_str())
            .collect();
        assert!(
            names.contains(&"checkout") && names.contains(&"charge"),
            "{names:?}"
        );
        let procs = trace["processes"].to_string();
        assert!(procs.contains(&service), "{procs}");
    }
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hand_written_json_comes_back_through_the_jaeger_api() {
    let dir = tempfile::tempdir().unwrap();
    let c = start(&store_config(dir.path())).await;
    let body = r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"json-svc"}}]},
      "scopeSpans":[{"scope":{"name":"manual"},"spans":[
        {"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"root",
         "startTimeUnixNano":"1544712660000000000","endTimeUnixNano":"1544712661000000000","kind":"SPAN_KIND_SERVER"},
        {"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b175","parentSpanId":"eee19b7ec3c1b174","name":"child",
         "startTimeUnixNano":"1544712660100000000","endTimeUnixNano":"1544712660200000000","kind":3,
         "status":{"code":"STATUS_CODE_ERROR","message":"boom"}}]}]}]}"#;
    let resp = reqwest::Client::new()
        .post(format!("http://{}/v1/traces", c.addr("otlp/http").unwrap()))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v = fetch_trace(c.addr("query").unwrap(), "5b8efff798038103d269b633813fc60c").await;
    let spans = v["data"][0]["spans"].as_array().unwrap();
    let root = spans.iter().find(|s| s["operationName"] == "root").unwrap();
    assert_eq!(root["duration"], 1_000_000, "microseconds");
    let child = spans
        .iter()
        .find(|s| s["operationName"] == "child")
        .unwrap();
    assert_eq!(child["references"][0]["spanID"], "eee19b7ec3c1b174");
    assert!(
        child["tags"].to_string().contains("error"),
        "{}",
        child["tags"]
    );
    c.shutdown().await;
}
