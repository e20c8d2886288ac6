//! Payloads that stay encoded (`pipeline::wire`): OTLP/HTTP and OTLP/gRPC in → batch → `otlp`
//! (gRPC) and `otlphttp` (protobuf), both gzip → a second collector. What arrives must be what
//! was sent, span for span and field for field, and the counters must agree; a request the scan
//! leaves to prost (a bad span id) still gets its partial success.

mod common;

use common::*;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
use opentelemetry_proto::tonic::trace::v1::{Span, Status};
use prost::Message;
use std::sync::atomic::Ordering;

fn attr(k: &str, v: any_value::Value) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    }
}

/// Spans using every kind of field: typed and nested attributes, events, links, status.
fn rich_request(service: &str, trace: u8, spans: usize) -> ExportTraceServiceRequest {
    let spans = (0..spans)
        .map(|i| Span {
            trace_id: vec![trace; 16],
            span_id: vec![i as u8 + 1; 8],
            parent_span_id: if i == 0 { vec![] } else { vec![1; 8] },
            trace_state: "ot=th:c".into(),
            name: format!("GET /items/{i}"),
            kind: 2,
            start_time_unix_nano: 1_700_000_000_000_000_000 + i as u64,
            end_time_unix_nano: 1_700_000_000_004_000_000 + i as u64,
            attributes: vec![
                attr(
                    "http.request.method",
                    any_value::Value::StringValue("GET".into()),
                ),
                attr("http.response.status_code", any_value::Value::IntValue(200)),
                attr("ratio", any_value::Value::DoubleValue(0.25)),
                attr("cached", any_value::Value::BoolValue(false)),
                attr(
                    "tags",
                    any_value::Value::ArrayValue(ArrayValue {
                        values: vec![AnyValue {
                            value: Some(any_value::Value::StringValue("a".into())),
                        }],
                    }),
                ),
            ],
            events: vec![Event {
                time_unix_nano: 1_700_000_000_001_000_000,
                name: "cache.miss".into(),
                attributes: vec![attr("key", any_value::Value::StringValue("k".into()))],
                dropped_attributes_count: 0,
            }],
            links: vec![Link {
                trace_id: vec![7; 16],
                span_id: vec![7; 8],
                ..Default::default()
            }],
            status: Some(Status {
                message: if i == 1 { "boom".into() } else { String::new() },
                code: if i == 1 { 2 } else { 0 },
            }),
            ..Default::default()
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![service_spans(service, spans)],
    }
}

/// Every span of the file exporter's lines, decoded back into OTLP structs, in a stable order.
fn spans_at(path: &std::path::Path) -> Vec<Span> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut out: Vec<Span> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .flat_map(|l| {
            collector::receivers::otlp::json::decode::<ExportTraceServiceRequest>(l.as_bytes())
                .expect("OTLP/JSON line")
                .resource_spans
        })
        .flat_map(|rs| rs.scope_spans)
        .flat_map(|ss| ss.spans)
        .collect();
    out.sort_by(|a, b| (&a.trace_id, &a.span_id).cmp(&(&b.trace_id, &b.span_id)));
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encoded_payloads_arrive_intact_over_grpc_and_http_exports() {
    let dir = tempfile::tempdir().unwrap();
    let (out_grpc, out_http) = (dir.path().join("grpc.jsonl"), dir.path().join("http.jsonl"));
    let downstream = |out: &std::path::Path| {
        format!(
            "receivers:\n  otlp:\n    protocols:\n      grpc: {{endpoint: 127.0.0.1:0}}\n      http: {{endpoint: 127.0.0.1:0}}\nexporters:\n  file: {{path: {}}}\nservice:\n  pipelines:\n    traces: {{receivers: [otlp], exporters: [file]}}\n",
            out.display()
        )
    };
    let b_grpc = start(&downstream(&out_grpc)).await;
    let b_http = start(&downstream(&out_http)).await;
    let yaml = format!(
        "receivers:
  otlp:
    protocols:
      grpc: {{endpoint: 127.0.0.1:0}}
      http: {{endpoint: 127.0.0.1:0}}
processors:
  batch: {{timeout: 50ms, send_batch_size: 8, send_batch_max_size: 8}}
exporters:
  otlp/b:
    endpoint: {}
    tls: {{insecure: true}}
    compression: gzip
  otlphttp/b:
    endpoint: http://{}
    compression: gzip
service:
  pipelines:
    traces: {{receivers: [otlp], processors: [batch], exporters: [otlp/b, otlphttp/b]}}
",
        b_grpc.addr("otlp/grpc").unwrap(),
        b_http.addr("otlp/http").unwrap(),
    );
    let a = start(&yaml).await;

    // 3 × 3 spans over HTTP (protobuf), 2 × 3 over gRPC: 15 spans, batched as 8 + 7, never
    // cutting a request.
    let mut sent: Vec<Span> = Vec::new();
    let http = reqwest::Client::new();
    for t in 1..=3u8 {
        let req = rich_request("http-sender", t, 3);
        sent.extend(req.resource_spans[0].scope_spans[0].spans.clone());
        let resp = http
            .post(format!("http://{}/v1/traces", a.addr("otlp/http").unwrap()))
            .header("content-type", "application/x-protobuf")
            .body(req.encode_to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    let mut grpc = TraceServiceClient::connect(format!("http://{}", a.addr("otlp/grpc").unwrap()))
        .await
        .unwrap()
        .send_compressed(tonic::codec::CompressionEncoding::Gzip);
    for t in 4..=5u8 {
        let req = rich_request("grpc-sender", t, 3);
        sent.extend(req.resource_spans[0].scope_spans[0].spans.clone());
        let resp = grpc.export(req).await.unwrap().into_inner();
        assert!(resp.partial_success.is_none());
    }
    sent.sort_by(|a, b| (&a.trace_id, &a.span_id).cmp(&(&b.trace_id, &b.span_id)));

    let grpc_sent = a.self_metrics().counters("otlp/b", "traces").unwrap();
    let http_sent = a.self_metrics().counters("otlphttp/b", "traces").unwrap();
    eventually("15 spans at both downstream collectors", async || {
        let done = spans_at(&out_grpc).len() == 15
            && spans_at(&out_http).len() == 15
            && grpc_sent.sent.load(Ordering::Relaxed) == 15
            && http_sent.sent.load(Ordering::Relaxed) == 15;
        done.then_some(())
    })
    .await;
    assert_eq!(spans_at(&out_grpc), sent, "over gRPC: every field as sent");
    assert_eq!(spans_at(&out_http), sent, "over HTTP: every field as sent");
    let received = a.self_metrics().counters("otlp", "traces").unwrap();
    assert_eq!(received.received.load(Ordering::Relaxed), 15);
    let batch = a.self_metrics().counters("batch", "traces").unwrap();
    assert_eq!(batch.dropped.load(Ordering::Relaxed), 0);

    // A span with a bad id: the scan leaves the request to prost, which rejects that span only.
    let mut bad = rich_request("grpc-sender", 6, 2);
    bad.resource_spans[0].scope_spans[0].spans[1].span_id = vec![1, 2];
    let resp = grpc.export(bad).await.unwrap().into_inner();
    assert_eq!(
        resp.partial_success
            .expect("partial success")
            .rejected_spans,
        1
    );
    eventually("the good span of the mixed request arrives", async || {
        (spans_at(&out_grpc).len() == 16).then_some(())
    })
    .await;

    a.shutdown().await;
    b_grpc.shutdown().await;
    b_http.shutdown().await;
}
