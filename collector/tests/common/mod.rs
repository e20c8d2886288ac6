//! Test helpers: start a collector from YAML on port 0, build OTLP payloads, poll conditions.
#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use collector::Collector;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};

pub async fn start(yaml: &str) -> Collector {
    start_with(yaml, collector::StartOptions::default()).await
}

pub async fn start_with(yaml: &str, opts: collector::StartOptions) -> Collector {
    let cfg = collector::load_str(yaml, "test.yaml").unwrap_or_else(|e| panic!("{e}"));
    Collector::start_with(cfg, opts)
        .await
        .expect("collector starts")
}

/// Polls `cond` until it returns Some or the (generous) deadline passes.
pub async fn eventually<T>(what: &str, mut cond: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = cond().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// JSON lines of the file exporter (empty when the file does not exist yet).
pub fn read_lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("valid JSON line"))
        .collect()
}

/// All spans in file-exporter lines: (service, name, trace id hex, kind).
pub fn spans_in(lines: &[serde_json::Value]) -> Vec<(String, String, String, i64)> {
    let mut out = Vec::new();
    for l in lines {
        for rs in l["resourceSpans"].as_array().into_iter().flatten() {
            let svc = rs["resource"]["attributes"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|kv| kv["key"] == "service.name")
                .and_then(|kv| kv["value"]["stringValue"].as_str())
                .unwrap_or("")
                .to_string();
            for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
                for s in ss["spans"].as_array().into_iter().flatten() {
                    out.push((
                        svc.clone(),
                        s["name"].as_str().unwrap_or("").to_string(),
                        s["traceId"].as_str().unwrap_or("").to_string(),
                        s["kind"].as_i64().unwrap_or(0),
                    ));
                }
            }
        }
    }
    out
}

pub fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

pub fn resource_spans(
    service: &str,
    trace_id: [u8; 16],
    names: &[&str],
    error: bool,
) -> ResourceSpans {
    let spans = names
        .iter()
        .enumerate()
        .map(|(i, n)| Span {
            trace_id: trace_id.to_vec(),
            span_id: [(i + 1) as u8; 8].to_vec(),
            name: n.to_string(),
            kind: 2,
            start_time_unix_nano: 1_700_000_000_000_000_000,
            end_time_unix_nano: 1_700_000_000_000_000_000 + 5_000_000 * (i as u64 + 1),
            status: Some(Status {
                code: if error { 2 } else { 0 },
                message: String::new(),
            }),
            ..Default::default()
        })
        .collect();
    service_spans(service, spans)
}

/// `spans` under one resource with `service.name` = `service`.
pub fn service_spans(service: &str, spans: Vec<Span>) -> ResourceSpans {
    ResourceSpans {
        resource: Some(Resource {
            attributes: vec![kv("service.name", service)],
            ..Default::default()
        }),
        scope_spans: vec![ScopeSpans {
            spans,
            ..Default::default()
        }],
        schema_url: String::new(),
    }
}

pub fn trace_request(
    service: &str,
    trace_id: [u8; 16],
    names: &[&str],
) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![resource_spans(service, trace_id, names, false)],
    }
}
