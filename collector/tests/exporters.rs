//! Exporters and connectors end to end: spanmetrics → prometheus exposition, collector →
//! collector over otlp (gRPC) and otlphttp with retry, fan-out to several exporters.

mod common;

use common::*;
use prost::Message;

async fn post_traces(
    addr: std::net::SocketAddr,
    req: &opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest,
) {
    let resp = reqwest::Client::new()
        .post(format!("http://{addr}/v1/traces"))
        .header("content-type", "application/x-protobuf")
        .body(req.encode_to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spanmetrics_reach_prometheus_in_exposition_format() {
    let yaml = "receivers:
  otlp:
    protocols:
      http: {endpoint: 127.0.0.1:0}
connectors:
  spanmetrics:
    metrics_flush_interval: 50ms
exporters:
  prometheus:
    endpoint: 127.0.0.1:0
    enable_open_metrics: false
  nop:
service:
  pipelines:
    traces: {receivers: [otlp], exporters: [spanmetrics, nop]}
    metrics: {receivers: [otlp, spanmetrics], exporters: [prometheus]}
";
    let c = start(yaml).await;
    let http = c.addr("otlp/http").unwrap();
    let mut req = trace_request("checkout-svc", [3; 16], &["GET /cart", "GET /cart"]);
    req.resource_spans.push(resource_spans(
        "checkout-svc",
        [4; 16],
        &["GET /cart"],
        true,
    ));
    post_traces(http, &req).await;

    // Application metrics over OTLP/JSON land on the same endpoint.
    let gauge = r#"{"resourceMetrics":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"inventory-service"}}]},
      "scopeMetrics":[{"metrics":[{"name":"queue.depth","unit":"By","gauge":{"dataPoints":[{"asInt":"7","attributes":[{"key":"queue","value":{"stringValue":"orders"}}]}]}}]}]}]}"#;
    let resp = reqwest::Client::new()
        .post(format!("http://{http}/v1/metrics"))
        .header("content-type", "application/json")
        .body(gauge)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    let url = format!("http://{}/metrics", c.addr("prometheus").unwrap());
    let text = eventually("spanmetrics on /metrics", async || {
        let t = reqwest::get(&url).await.ok()?.text().await.ok()?;
        (t.contains("traces_span_metrics_calls_total") && t.contains("queue_depth_bytes"))
            .then_some(t)
    })
    .await;
    assert!(
        text.contains("# TYPE traces_span_metrics_calls_total counter"),
        "{text}"
    );
    assert!(
        text.contains("# TYPE traces_span_metrics_duration_milliseconds histogram"),
        "{text}"
    );
    assert!(
        text.contains(r#"traces_span_metrics_calls_total{job="checkout-svc",service_name="checkout-svc",span_kind="SPAN_KIND_SERVER",span_name="GET /cart",status_code="STATUS_CODE_UNSET"} 2"#),
        "{text}"
    );
    assert!(
        text.contains(r#"traces_span_metrics_calls_total{job="checkout-svc",service_name="checkout-svc",span_kind="SPAN_KIND_SERVER",span_name="GET /cart",status_code="STATUS_CODE_ERROR"} 1"#),
        "{text}"
    );
    // Durations 5 ms and 10 ms: le=6 holds 1, le=10 holds 2, +Inf = count.
    assert!(text.contains(r#"traces_span_metrics_duration_milliseconds_bucket{job="checkout-svc",service_name="checkout-svc",span_kind="SPAN_KIND_SERVER",span_name="GET /cart",status_code="STATUS_CODE_UNSET",le="6"} 1"#), "{text}");
    assert!(text.contains(r#"traces_span_metrics_duration_milliseconds_bucket{job="checkout-svc",service_name="checkout-svc",span_kind="SPAN_KIND_SERVER",span_name="GET /cart",status_code="STATUS_CODE_UNSET",le="10"} 2"#), "{text}");
    assert!(text.contains(r#"traces_span_metrics_duration_milliseconds_bucket{job="checkout-svc",service_name="checkout-svc",span_kind="SPAN_KIND_SERVER",span_name="GET /cart",status_code="STATUS_CODE_UNSET",le="+Inf"} 2"#), "{text}");
    assert!(text.contains(r#"traces_span_metrics_duration_milliseconds_sum{job="checkout-svc",service_name="checkout-svc",span_kind="SPAN_KIND_SERVER",span_name="GET /cart",status_code="STATUS_CODE_UNSET"} 15"#), "{text}");
    assert!(text.contains(r#"traces_span_metrics_duration_milliseconds_count{job="checkout-svc",service_name="checkout-svc",span_kind="SPAN_KIND_SERVER",span_name="GET /cart",status_code="STATUS_CODE_UNSET"} 2"#), "{text}");
    assert!(
        text.contains(r#"queue_depth_bytes{job="inventory-service",queue="orders"} 7"#),
        "{text}"
    );
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_metrics_exposition_carries_exemplars() {
    let yaml = "receivers:
  otlp:
    protocols:
      http: {endpoint: 127.0.0.1:0}
connectors:
  spanmetrics:
    metrics_flush_interval: 50ms
    exemplars: {enabled: true}
exporters:
  prometheus:
    endpoint: 127.0.0.1:0
    enable_open_metrics: true
service:
  pipelines:
    traces: {receivers: [otlp], exporters: [spanmetrics]}
    metrics: {receivers: [spanmetrics], exporters: [prometheus]}
";
    let c = start(yaml).await;
    post_traces(
        c.addr("otlp/http").unwrap(),
        &trace_request("ex", [0xab; 16], &["op"]),
    )
    .await;
    let url = format!("http://{}/metrics", c.addr("prometheus").unwrap());
    let http = reqwest::Client::new();
    let scrape = |accept: &'static str| {
        let (http, url) = (http.clone(), url.clone());
        async move {
            let r = http.get(&url).header("accept", accept).send().await.ok()?;
            let ct = r.headers().get("content-type")?.to_str().ok()?.to_string();
            Some((ct, r.text().await.ok()?))
        }
    };
    const OPEN: &str = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5";
    let text = eventually("exemplar", async || {
        let (ct, t) = scrape(OPEN).await?;
        (ct.starts_with("application/openmetrics-text") && t.contains("trace_id=")).then_some(t)
    })
    .await;
    // A scraper that does not ask for OpenMetrics gets the text format, without exemplars.
    let (ct, plain) = scrape("text/plain").await.expect("plain scrape");
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    assert!(
        !plain.contains("trace_id=") && !plain.contains("# EOF"),
        "{plain}"
    );
    assert!(
        plain.contains("traces_span_metrics_duration_milliseconds_bucket{"),
        "{plain}"
    );
    assert!(
        text.contains(&format!("trace_id=\"{}\"", "ab".repeat(16))),
        "{text}"
    );
    // The exemplar sits on a bucket line of the duration histogram, after the series' labels.
    let line = text
        .lines()
        .find(|l| l.contains("_bucket{") && l.contains("trace_id="))
        .expect("an exemplar on a bucket");
    // ... and on the calls counter's sample.
    assert!(
        text.lines()
            .any(|l| l.starts_with("traces_span_metrics_calls_total{")
                && l.contains(" # {trace_id=")),
        "{text}"
    );
    assert!(
        line.starts_with(
            "traces_span_metrics_duration_milliseconds_bucket{job=\"ex\",service_name=\"ex\","
        ) && line.contains(&format!(" # {{trace_id=\"{}\",span_id=\"", "ab".repeat(16))),
        "{line}"
    );
    assert!(
        text.contains("# TYPE traces_span_metrics_calls counter"),
        "{text}"
    );
    assert!(text.ends_with("# EOF\n"));
    c.shutdown().await;
}

fn downstream_yaml(out: &std::path::Path) -> String {
    format!(
        "receivers:
  otlp:
    protocols:
      grpc: {{endpoint: 127.0.0.1:0}}
      http: {{endpoint: 127.0.0.1:0}}
exporters:
  file: {{path: {}}}
service:
  pipelines:
    traces: {{receivers: [otlp], exporters: [file]}}
    logs: {{receivers: [otlp], exporters: [file]}}
",
        out.display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collector_to_collector_over_otlp_grpc_and_http_with_fanout() {
    let dir = tempfile::tempdir().unwrap();
    let out_b = dir.path().join("b.jsonl");
    let out_local = dir.path().join("a.jsonl");
    let b = start(&downstream_yaml(&out_b)).await;
    let yaml = format!(
        "receivers:
  otlp:
    protocols:
      http: {{endpoint: 127.0.0.1:0}}
processors:
  batch: {{timeout: 20ms, send_batch_size: 100}}
exporters:
  otlp/b:
    endpoint: {}
    tls: {{insecure: true}}
  otlphttp/b:
    endpoint: http://{}
    encoding: json
  file: {{path: {}}}
  logging:
    verbosity: detailed
service:
  pipelines:
    traces: {{receivers: [otlp], processors: [batch], exporters: [otlp/b, otlphttp/b, file, logging]}}
",
        b.addr("otlp/grpc").unwrap(),
        b.addr("otlp/http").unwrap(),
        out_local.display()
    );
    let a = start(&yaml).await;
    post_traces(
        a.addr("otlp/http").unwrap(),
        &trace_request("fan", [6; 16], &["one", "two"]),
    )
    .await;
    let sent = a.self_metrics().counters("otlp/b", "traces").unwrap();
    // B writes its file before it answers; the exporter counts `sent` once the answer is in.
    eventually(
        "both copies at B, one locally, and B's answer counted",
        async || {
            let remote = spans_in(&read_lines(&out_b)).len();
            let local = spans_in(&read_lines(&out_local)).len();
            let counted = sent.sent.load(std::sync::atomic::Ordering::Relaxed);
            (remote == 4 && local == 2 && counted >= 2).then_some(())
        },
    )
    .await;
    assert_eq!(sent.sent.load(std::sync::atomic::Ordering::Relaxed), 2);
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlphttp_exporter_retries_until_the_receiver_appears() {
    let dir = tempfile::tempdir().unwrap();
    let out_b = dir.path().join("b.jsonl");
    // Reserve a port, release it, and point the exporter at it before B listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let yaml = format!(
        "receivers:
  otlp:
    protocols:
      http: {{endpoint: 127.0.0.1:0}}
exporters:
  otlphttp:
    endpoint: http://127.0.0.1:{port}
    retry_on_failure: {{initial_interval: 50ms, max_interval: 200ms, max_elapsed_time: 60s}}
    sending_queue: {{queue_size: 10, num_consumers: 1}}
service:
  pipelines:
    traces: {{receivers: [otlp], exporters: [otlphttp]}}
"
    );
    let a = start(&yaml).await;
    post_traces(
        a.addr("otlp/http").unwrap(),
        &trace_request("retry", [7; 16], &["late"]),
    )
    .await;
    // B starts only now: the queued batch is retried until it gets through.
    let b_yaml = downstream_yaml(&out_b).replace(
        "http: {endpoint: 127.0.0.1:0}",
        &format!("http: {{endpoint: 127.0.0.1:{port}}}"),
    );
    let b = start(&b_yaml).await;
    eventually("the retried batch at B", async || {
        (spans_in(&read_lines(&out_b)).len() == 1).then_some(())
    })
    .await;
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_exporter_waits_what_the_receivers_retry_info_says() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let out_b = dir.path().join("b.jsonl");
    // B's memory_limiter refuses (RESOURCE_EXHAUSTED + RetryInfo 1s) until the reading drops.
    let reading = Arc::new(AtomicU64::new(90 * 1024 * 1024));
    let probe = reading.clone();
    let b_yaml = format!(
        "receivers:
  otlp:
    protocols:
      grpc: {{endpoint: 127.0.0.1:0}}
processors:
  memory_limiter: {{check_interval: 10ms, limit_mib: 100, spike_limit_mib: 20}}
exporters:
  file: {{path: {}}}
service:
  pipelines:
    traces: {{receivers: [otlp], processors: [memory_limiter], exporters: [file]}}
",
        out_b.display()
    );
    let b = start_with(
        &b_yaml,
        collector::StartOptions {
            memory_probe: Some(Arc::new(move || probe.load(Ordering::Relaxed))),
        },
    )
    .await;
    // Without the RetryInfo, A would wait its own 60s initial_interval (and RESOURCE_EXHAUSTED
    // alone would be permanent): arriving within seconds shows the server's 1s delay was used.
    let yaml = format!(
        "receivers:
  otlp:
    protocols:
      http: {{endpoint: 127.0.0.1:0}}
exporters:
  otlp:
    endpoint: {}
    tls: {{insecure: true}}
    retry_on_failure: {{initial_interval: 60s, max_interval: 60s, max_elapsed_time: 120s}}
    sending_queue: {{queue_size: 10, num_consumers: 1}}
service:
  pipelines:
    traces: {{receivers: [otlp], exporters: [otlp]}}
",
        b.addr("otlp/grpc").unwrap()
    );
    let a = start(&yaml).await;
    post_traces(
        a.addr("otlp/http").unwrap(),
        &trace_request("retry-info", [8; 16], &["held"]),
    )
    .await;
    let refused = b
        .self_metrics()
        .counters("memory_limiter", "traces")
        .unwrap();
    eventually("B refusing A twice", async || {
        (refused.refused.load(Ordering::Relaxed) >= 2).then_some(())
    })
    .await;
    reading.store(10 * 1024 * 1024, Ordering::Relaxed);
    let released = std::time::Instant::now();
    eventually("the retried batch at B", async || {
        (spans_in(&read_lines(&out_b)).len() == 1).then_some(())
    })
    .await;
    assert!(
        released.elapsed() < std::time::Duration::from_secs(5),
        "retried after {:?}",
        released.elapsed()
    );
    assert_eq!(
        a.self_metrics()
            .counters("otlp", "traces")
            .unwrap()
            .dropped
            .load(Ordering::Relaxed),
        0
    );
    a.shutdown().await;
    b.shutdown().await;
}
