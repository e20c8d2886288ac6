//! `loadgen otlp` → `loadgen sink`, directly and through the debug `collector` binary: every span
//! sent arrives, exactly once, with distinct trace ids; and the patched payloads are valid OTLP.
//! Counts are bounded (`max_requests`); nothing here is timed.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use lab::harness::bin_dir;
use loadgen::otlp::bench::{Pipeline, Subject, start_collector};
use loadgen::otlp::generator::{self, GenConfig, Protocol, Rate};
use loadgen::otlp::payload::{Shape, Template};
use loadgen::otlp::sink::{Sink, SinkConfig};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

const SHAPE: Shape = Shape {
    spans_per_request: 25,
    spans_per_trace: 5,
    attributes: 6,
};
const REQUESTS: u64 = 40;
const SPANS: u64 = REQUESTS * SHAPE.spans_per_request as u64;

fn any_port() -> Option<SocketAddr> {
    Some(SocketAddr::from(([127, 0, 0, 1], 0)))
}

async fn sink(protocol: Protocol) -> Sink {
    let cfg = match protocol {
        Protocol::Http => SinkConfig {
            http: any_port(),
            record_trace_ids: true,
            ..Default::default()
        },
        Protocol::Grpc => SinkConfig {
            grpc: any_port(),
            record_trace_ids: true,
            ..Default::default()
        },
    };
    Sink::start(cfg).await.expect("sink starts")
}

/// `REQUESTS` requests, flat out on 3 connections, bounded by count (the duration is a backstop).
fn load(target: SocketAddr, protocol: Protocol, gzip: bool) -> GenConfig {
    GenConfig {
        connections: 3,
        rate: Rate::Max,
        duration: Duration::from_secs(60),
        shape: SHAPE,
        gzip,
        max_requests: REQUESTS,
        ..GenConfig::new(target, protocol)
    }
}

async fn direct(protocol: Protocol, gzip: bool) {
    let sink = sink(protocol).await;
    let target = sink.http_addr.or(sink.grpc_addr).unwrap();
    let report = generator::run(&load(target, protocol, gzip)).await.unwrap();
    assert_eq!(report.requests_sent, REQUESTS, "{}", report.text());
    assert_eq!(report.requests_accepted, REQUESTS, "{}", report.text());
    assert_eq!(report.spans_accepted, SPANS);
    let totals = sink
        .wait_for(SPANS, Duration::from_secs(30), Duration::ZERO)
        .await;
    assert_eq!(totals.spans, SPANS);
    assert_eq!(totals.requests, REQUESTS);
    assert_eq!(totals.malformed, 0);
    assert_eq!(
        sink.trace_ids().len() as u64,
        SPANS / SHAPE.spans_per_trace as u64,
        "every trace has its own id"
    );
}

#[tokio::test]
async fn generator_to_sink_over_http() {
    direct(Protocol::Http, false).await;
}

#[tokio::test]
async fn generator_to_sink_over_http_gzip() {
    direct(Protocol::Http, true).await;
}

#[tokio::test]
async fn generator_to_sink_over_grpc_gzip() {
    direct(Protocol::Grpc, true).await;
}

/// Through the debug collector's receive → batch → OTLP export (gzip) pipeline.
async fn through_collector(protocol: Protocol) {
    let collector = bin_dir().join("collector");
    assert!(
        collector.is_file(),
        "{} is missing: run `cargo build -p collector` first (`make test` does)",
        collector.display()
    );
    let sink = sink(protocol).await;
    let sink_addr = sink.http_addr.or(sink.grpc_addr).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let running = start_collector(
        Subject::Tracelab,
        &collector,
        None,
        Pipeline::P1,
        Some((protocol, sink_addr)),
        dir.path(),
    )
    .await
    .unwrap();
    let report = generator::run(&load(running.addr(protocol), protocol, false))
        .await
        .unwrap();
    assert_eq!(report.spans_accepted, SPANS, "{}", report.text());
    // The batch processor flushes within 200 ms; 30 s bounds the wait, it is not a deadline.
    let totals = sink
        .wait_for(SPANS, Duration::from_secs(30), Duration::from_millis(500))
        .await;
    assert_eq!(totals.spans, SPANS, "spans lost or duplicated");
    assert_eq!(totals.malformed, 0);
    assert_eq!(
        sink.trace_ids().len() as u64,
        SPANS / SHAPE.spans_per_trace as u64
    );
}

#[tokio::test]
async fn generator_to_collector_to_sink_over_http() {
    through_collector(Protocol::Http).await;
}

#[tokio::test]
async fn generator_to_collector_to_sink_over_grpc() {
    through_collector(Protocol::Grpc).await;
}

#[test]
fn patched_requests_are_valid_otlp_with_fresh_trace_ids() {
    let t = Template::new(SHAPE, 7);
    let mut seen = HashSet::new();
    for n in 0..20 {
        let req =
            ExportTraceServiceRequest::decode(t.request(n, 1_900_000_000_000_000_000).as_slice())
                .expect("valid protobuf");
        let spans = &req.resource_spans[0].scope_spans[0].spans;
        assert_eq!(spans.len(), SHAPE.spans_per_request);
        let ids: HashSet<&Vec<u8>> = spans.iter().map(|s| &s.trace_id).collect();
        assert_eq!(ids.len(), SHAPE.spans_per_request / SHAPE.spans_per_trace);
        for id in ids {
            assert_eq!(id.len(), 16);
            assert!(
                seen.insert(id.clone()),
                "a trace id came back in request {n}"
            );
        }
        assert!(spans.iter().all(|s| s.attributes.len() == SHAPE.attributes));
    }
}
