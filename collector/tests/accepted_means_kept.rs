//! Accepted means kept, once: `batch` and `tail_sampling` never hand a downstream failure back to
//! a caller whose data they buffered (it is counted as dropped in their self-metrics), and the
//! store keeps one row per (trace id, span id), so a retried export is stored once.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use collector::pipeline::{ConsumeError, Consumer};
use collector::processors::batch::{BatchConfig, BatchProcessor};
use collector_api::jaeger::{JaegerResponse, Trace};
use common::*;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, Span};

/// A downstream component that always refuses (retryably), counting what it saw.
#[derive(Default)]
struct Failing(AtomicU64);

#[async_trait::async_trait]
impl Consumer<ResourceSpans> for Failing {
    async fn consume(&self, batch: Vec<ResourceSpans>) -> Result<(), ConsumeError> {
        self.0.fetch_add(
            collector::pipeline::signal::count(&batch) as u64,
            Ordering::Relaxed,
        );
        Err(ConsumeError::Refused("downstream queue is full".into()))
    }
}

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// `n` spans of one trace, starting now (so the store's retention keeps them).
fn request(trace: [u8; 16], n: u8) -> ExportTraceServiceRequest {
    let t0 = now_ns();
    let spans = (0..n)
        .map(|i| Span {
            trace_id: trace.to_vec(),
            span_id: [i + 1; 8].to_vec(),
            name: format!("op{i}"),
            kind: 2,
            start_time_unix_nano: t0,
            end_time_unix_nano: t0 + 1_000_000,
            ..Default::default()
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![service_spans("svc", spans)],
    }
}

#[tokio::test]
async fn batch_callers_get_ok_and_a_downstream_failure_is_counted_as_dropped() {
    let next = Arc::new(Failing::default());
    let b = BatchProcessor::new(
        BatchConfig {
            timeout: Duration::from_secs(3600),
            send_batch_size: 5,
            send_batch_max_size: 4,
        },
        next.clone(),
    );
    // Two callers share one combined batch (3 + 3 ≥ 5); 4 go (send_batch_max_size), 2 wait for
    // more: both callers get Ok.
    b.consume(request([1; 16], 3).resource_spans)
        .await
        .expect("buffered: accepted");
    b.consume(request([2; 16], 3).resource_spans)
        .await
        .expect("the flush fails downstream, the caller still gets Ok");
    assert_eq!(
        next.0.load(Ordering::Relaxed),
        4,
        "one batch of 4 was tried"
    );
    assert_eq!(b.counters().dropped.load(Ordering::Relaxed), 4);
    // What is flushed at shutdown is counted the same way.
    b.consume(request([3; 16], 2).resource_spans).await.unwrap();
    b.shutdown().await.unwrap();
    assert_eq!(b.counters().dropped.load(Ordering::Relaxed), 8);
}

/// OTLP/gRPC → `processor` → an `otlp` exporter whose backend is down (no queue, no retry: the
/// exporter's failure reaches the processor synchronously).
fn failing_pipeline(processor: &str) -> String {
    format!(
        "receivers:
  otlp:
    protocols:
      grpc: {{endpoint: 127.0.0.1:0}}
processors:
  batch:
    timeout: 20ms
    send_batch_size: 4
  tail_sampling:
    decision_wait: 100ms
    policies: [{{name: all, type: always_sample}}]
exporters:
  otlp:
    endpoint: 127.0.0.1:1
    tls: {{insecure: true}}
    timeout: 1s
    sending_queue: {{enabled: false}}
    retry_on_failure: {{enabled: false}}
service:
  pipelines:
    traces: {{receivers: [otlp], processors: [{processor}], exporters: [otlp]}}
"
    )
}

async fn buffered_data_is_dropped_not_refused(processor: &str) {
    let c = start(&failing_pipeline(processor)).await;
    let mut client =
        TraceServiceClient::connect(format!("http://{}", c.addr("otlp/grpc").unwrap()))
            .await
            .unwrap();
    for t in 1..=3u8 {
        client
            .export(request([t; 16], 2))
            .await
            .unwrap_or_else(|s| panic!("{processor}: the caller must get Ok, got {s:?}"));
    }
    let counters = c.self_metrics().counters(processor, "traces").unwrap();
    eventually("the dropped spans counted", async || {
        (counters.dropped.load(Ordering::Relaxed) == 6).then_some(())
    })
    .await;
    assert_eq!(counters.refused.load(Ordering::Relaxed), 0);
    assert_eq!(counters.sent.load(Ordering::Relaxed), 0);
    let exporter = c.self_metrics().counters("otlp", "traces").unwrap();
    assert_eq!(exporter.dropped.load(Ordering::Relaxed), 6);
    assert!(
        c.self_metrics().render().contains(&format!(
            "tracelab_collector_component_dropped_items_total{{kind=\"processor\",component=\"{processor}\""
        )),
        "{}",
        c.self_metrics().render()
    );
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_in_a_pipeline_counts_a_failed_export_as_dropped() {
    buffered_data_is_dropped_not_refused("batch").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_sampling_in_a_pipeline_counts_a_failed_export_as_dropped() {
    buffered_data_is_dropped_not_refused("tail_sampling").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_batch_exported_twice_is_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "receivers:
  otlp:
    protocols:
      grpc: {{endpoint: 127.0.0.1:0}}
processors:
  batch: {{timeout: 10ms}}
exporters:
  tracelab:
    storage: {{directory: {}}}
    query: {{endpoint: 127.0.0.1:0}}
service:
  pipelines:
    traces: {{receivers: [otlp], processors: [batch], exporters: [tracelab]}}
",
        dir.path().display()
    );
    let c = start(&yaml).await;
    let mut client =
        TraceServiceClient::connect(format!("http://{}", c.addr("otlp/grpc").unwrap()))
            .await
            .unwrap();
    let req = request([0x42; 16], 5);
    client.export(req.clone()).await.unwrap();
    // The retry of a client that never saw the first answer, once apart and once in a combined batch.
    client.export(req.clone()).await.unwrap();
    let mut twice = req.clone();
    twice.resource_spans.extend(req.resource_spans.clone());
    client.export(twice).await.unwrap();
    let store = c.self_metrics().counters("tracelab", "traces").unwrap();
    eventually("all three exports stored", async || {
        (store.received.load(Ordering::Relaxed) == 20).then_some(())
    })
    .await;
    let url = format!(
        "http://{}/api/traces/{}",
        c.addr("query").unwrap(),
        "42".repeat(16)
    );
    let resp: JaegerResponse<Vec<Trace>> = reqwest::get(&url).await.unwrap().json().await.unwrap();
    let spans = &resp.data[0].spans;
    assert_eq!(spans.len(), 5, "each span once: {spans:?}");
    c.shutdown().await;
}
