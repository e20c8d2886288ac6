//! The `loadbalancing` exporter end to end: an agent collector (otlp receiver → loadbalancing,
//! static resolver) in front of two gateway collectors (otlp receiver → tracelab store). Spans of
//! one trace arrive in separate requests, interleaved with other traces; every trace must end up
//! whole on exactly one gateway, and both gateways must get a fair share.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use collector::Collector;
use collector_api::v1::TraceLookupResponse;
use common::*;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;

const TRACES: usize = 200;
const SPANS_PER_TRACE: usize = 5;
/// Traces per request: each request carries one span of each of this many traces.
const PER_REQUEST: usize = 20;

fn trace_id(n: usize) -> [u8; 16] {
    // Spread over the whole id, as real random ids are.
    let mut id = [0u8; 16];
    let mut s = (n as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    for chunk in id.chunks_mut(8) {
        s ^= s >> 29;
        s = s.wrapping_mul(0xBF58_476D_1CE4_E5B9);
        s ^= s >> 32;
        chunk.copy_from_slice(&s.to_be_bytes());
    }
    id
}

fn hex(id: &[u8; 16]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

async fn gateway(dir: &std::path::Path) -> Collector {
    gateway_for(dir, "").await
}

/// A gateway; `extra` adds pipelines (e.g. logs into the same store).
async fn gateway_for(dir: &std::path::Path, extra: &str) -> Collector {
    start(&format!(
        "receivers:
  otlp:
    protocols:
      grpc: {{endpoint: 127.0.0.1:0}}
exporters:
  tracelab:
    storage: {{directory: {}}}
    query: {{endpoint: 127.0.0.1:0}}
service:
  pipelines:
    traces: {{receivers: [otlp], exporters: [tracelab]}}
{extra}",
        dir.display()
    ))
    .await
}

/// Span counts per trace id (hex) stored by the gateway behind `query`.
async fn stored(query: std::net::SocketAddr, ids: &[String]) -> BTreeMap<String, u64> {
    let r = reqwest::Client::new()
        .post(format!("http://{query}/api/v1/traces/lookup"))
        .json(&serde_json::json!({ "trace_ids": ids }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: TraceLookupResponse = r.json().await.unwrap();
    body.traces
        .into_iter()
        .map(|t| (t.trace_id, t.spans))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_behind_one_agent_each_get_whole_traces() {
    let dir = tempfile::tempdir().unwrap();
    let gw1 = gateway(&dir.path().join("gw1")).await;
    let gw2 = gateway(&dir.path().join("gw2")).await;
    let agent = start(&format!(
        "receivers:
  otlp:
    protocols:
      http: {{endpoint: 127.0.0.1:0}}
exporters:
  loadbalancing:
    routing_key: traceID
    protocol:
      otlp:
        tls: {{insecure: true}}
        timeout: 5s
        retry_on_failure: {{initial_interval: 50ms, max_interval: 500ms}}
    resolver:
      static:
        hostnames: [\"{}\", \"{}\"]
service:
  pipelines:
    traces: {{receivers: [otlp], exporters: [loadbalancing]}}
",
        gw1.addr("otlp/grpc").unwrap(),
        gw2.addr("otlp/grpc").unwrap()
    ))
    .await;
    let lb = agent
        .self_metrics()
        .loadbalancer("loadbalancing", "traces")
        .expect("the exporter's statistics are registered");
    assert_eq!(lb.backends.load(Ordering::Relaxed), 2);

    let url = format!("http://{}/v1/traces", agent.addr("otlp/http").unwrap());
    let http = reqwest::Client::new();
    // Round r sends span r of every trace, PER_REQUEST traces per request, two services.
    for r in 0..SPANS_PER_TRACE {
        for chunk in (0..TRACES).collect::<Vec<_>>().chunks(PER_REQUEST) {
            let span = |n: usize| Span {
                trace_id: trace_id(n).to_vec(),
                span_id: [(r + 1) as u8; 8].to_vec(),
                name: format!("op-{r}"),
                kind: 2,
                start_time_unix_nano: 1_700_000_000_000_000_000,
                end_time_unix_nano: 1_700_000_000_000_000_000 + 1_000_000,
                ..Default::default()
            };
            let req = ExportTraceServiceRequest {
                resource_spans: vec![
                    service_spans("front", chunk.iter().step_by(2).map(|n| span(*n)).collect()),
                    service_spans(
                        "back",
                        chunk.iter().skip(1).step_by(2).map(|n| span(*n)).collect(),
                    ),
                ],
            };
            let resp = http
                .post(&url)
                .header("content-type", "application/x-protobuf")
                .body(req.encode_to_vec())
                .send()
                .await
                .unwrap();
            assert_eq!(
                resp.status(),
                200,
                "{}",
                resp.text().await.unwrap_or_default()
            );
        }
    }

    let ids: Vec<String> = (0..TRACES).map(|n| hex(&trace_id(n))).collect();
    let (q1, q2) = (gw1.addr("query").unwrap(), gw2.addr("query").unwrap());
    let (on1, on2) = eventually("all 1000 spans in the gateways' stores", async || {
        let (a, b) = (stored(q1, &ids).await, stored(q2, &ids).await);
        let total: u64 = a.values().chain(b.values()).sum();
        (total == (TRACES * SPANS_PER_TRACE) as u64).then_some((a, b))
    })
    .await;

    for id in &ids {
        match (on1.get(id), on2.get(id)) {
            (Some(n), None) | (None, Some(n)) => {
                assert_eq!(*n, SPANS_PER_TRACE as u64, "trace {id} is whole")
            }
            other => panic!("trace {id} must be on exactly one gateway, found {other:?}"),
        }
    }
    let min = TRACES / 5;
    assert!(
        on1.len() >= min && on2.len() >= min,
        "each gateway holds at least 20% of the traces: {} / {}",
        on1.len(),
        on2.len()
    );

    // The agent's counters: everything received was sent, per backend as routed.
    let c = agent
        .self_metrics()
        .counters("loadbalancing", "traces")
        .unwrap();
    let spans = (TRACES * SPANS_PER_TRACE) as u64;
    eventually("the agent counts every span sent", async || {
        (c.sent.load(Ordering::Relaxed) == spans).then_some(())
    })
    .await;
    assert_eq!(c.received.load(Ordering::Relaxed), spans);
    assert_eq!(c.dropped.load(Ordering::Relaxed), 0);
    let per: u64 = lb.per_backend().iter().map(|(_, n, _)| n).sum();
    assert_eq!(per, spans);
    let metrics = agent.self_metrics().render();
    assert!(
        metrics.contains(
            "tracelab_collector_loadbalancer_num_backends{component=\"loadbalancing\",signal=\"traces\"} 2"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("tracelab_collector_loadbalancer_backend_items_total"),
        "{metrics}"
    );

    agent.shutdown().await;
    gw1.shutdown().await;
    gw2.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_backend_means_a_retryable_refusal_not_a_drop() {
    // A DNS name that resolves to nothing reachable is not needed: a resolver whose first
    // lookup has not succeeded is enough. `invalid.` never resolves.
    let agent = start(
        "receivers:
  otlp:
    protocols:
      http: {endpoint: 127.0.0.1:0}
exporters:
  loadbalancing:
    protocol: {otlp: {tls: {insecure: true}}}
    resolver:
      dns: {hostname: no-such-gateway.invalid, interval: 1h, timeout: 100ms}
service:
  pipelines:
    traces: {receivers: [otlp], exporters: [loadbalancing]}
",
    )
    .await;
    let url = format!("http://{}/v1/traces", agent.addr("otlp/http").unwrap());
    let resp = reqwest::Client::new()
        .post(&url)
        .header("content-type", "application/x-protobuf")
        .body(trace_request("svc", [3; 16], &["a"]).encode_to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503, "retryable: the client keeps the data");
    let c = agent
        .self_metrics()
        .counters("loadbalancing", "traces")
        .unwrap();
    assert_eq!(c.refused.load(Ordering::Relaxed), 1);
    assert_eq!(c.dropped.load(Ordering::Relaxed), 0);
    agent.shutdown().await;
}

async fn logs_of(query: std::net::SocketAddr, id: &str) -> u64 {
    let r = reqwest::get(format!("http://{query}/api/v1/traces/{id}/logs"))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: collector_api::v1::LogsResponse = r.json().await.unwrap();
    body.total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_follow_their_trace_and_shutdown_drains_every_backend() {
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};

    const N: usize = 40;
    let dir = tempfile::tempdir().unwrap();
    let logs = "    logs: {receivers: [otlp], exporters: [tracelab]}\n";
    let gw1 = gateway_for(&dir.path().join("gw1"), logs).await;
    let gw2 = gateway_for(&dir.path().join("gw2"), logs).await;
    let agent = start(&format!(
        "receivers:
  otlp:
    protocols:
      http: {{endpoint: 127.0.0.1:0}}
exporters:
  loadbalancing:
    protocol:
      otlp:
        tls: {{insecure: true}}
        sending_queue: {{num_consumers: 2, queue_size: 500}}
    resolver:
      static:
        hostnames: [\"{}\", \"{}\"]
service:
  pipelines:
    traces: {{receivers: [otlp], exporters: [loadbalancing]}}
    logs: {{receivers: [otlp], exporters: [loadbalancing]}}
",
        gw1.addr("otlp/grpc").unwrap(),
        gw2.addr("otlp/grpc").unwrap()
    ))
    .await;
    let base = format!("http://{}", agent.addr("otlp/http").unwrap());
    let http = reqwest::Client::new();
    let post = async |path: &str, body: Vec<u8>| {
        let r = http
            .post(format!("{base}{path}"))
            .header("content-type", "application/x-protobuf")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    };
    for n in 0..N {
        post(
            "/v1/traces",
            trace_request("svc", trace_id(n), &["root"]).encode_to_vec(),
        )
        .await;
    }
    // Two log records per trace, all traces mixed in each request.
    for round in 0..2u8 {
        let records = (0..N)
            .map(|n| LogRecord {
                trace_id: trace_id(n).to_vec(),
                span_id: [1; 8].to_vec(),
                time_unix_nano: 1_700_000_000_000_000_000 + u64::from(round),
                severity_text: "INFO".into(),
                body: opentelemetry_proto::tonic::common::v1::AnyValue {
                    value: Some(
                        opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(
                            format!("log {round}"),
                        ),
                    ),
                }
                .into(),
                ..Default::default()
            })
            .collect();
        let req = ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: service_spans("svc", Vec::new()).resource,
                scope_logs: vec![ScopeLogs {
                    log_records: records,
                    ..Default::default()
                }],
                schema_url: String::new(),
            }],
        };
        post("/v1/logs", req.encode_to_vec()).await;
    }
    // No waiting: shutdown must drain what is still queued for either backend.
    agent.shutdown().await;

    let ids: Vec<String> = (0..N).map(|n| hex(&trace_id(n))).collect();
    let (q1, q2) = (gw1.addr("query").unwrap(), gw2.addr("query").unwrap());
    let (on1, on2) = eventually("every span at the gateways", async || {
        let (a, b) = (stored(q1, &ids).await, stored(q2, &ids).await);
        let total: u64 = a.values().chain(b.values()).sum();
        (total == N as u64).then_some((a, b))
    })
    .await;
    assert!(!on1.is_empty() && !on2.is_empty(), "both gateways used");
    for id in &ids {
        let (with, without) = if on1.contains_key(id) {
            (q1, q2)
        } else {
            (q2, q1)
        };
        eventually("the trace's logs beside its spans", async || {
            (logs_of(with, id).await == 2).then_some(())
        })
        .await;
        assert_eq!(
            logs_of(without, id).await,
            0,
            "trace {id}'s logs on one gateway"
        );
    }
    gw1.shutdown().await;
    gw2.shutdown().await;
}
