//! The service map's aggregate against real SQLite files: edges, kinds, counts, errors and
//! percentiles for a constructed set of checkout traces sent service by service (parents after
//! their children as well as before), the Kafka producer → topic → consumer chain, a consumer
//! found only through its span link, retried batches, a child waiting across a reopen, and a file
//! without the aggregate backfilled when opened. Jaeger's `/api/dependencies` answer is checked
//! against the join over the stored spans it replaced.

use collector_api::dependencies::{DependenciesResponse, EdgeKind, NodeKind};
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, InstrumentationScope, KeyValue, any_value::Value,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::Link;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};

use super::{StoreConfig, TraceStore};

const GW: &str = "api-gateway";
const ORDER: &str = "order-service";
const PAY: &str = "payment-service";
const INV: &str = "inventory-service";

/// Ten minutes ago, on a whole minute (so a trace's spans share the minute bucket).
fn base_ns() -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    (now / 60 * 60 - 600) * 1_000_000_000
}

fn kv(key: &str, v: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

fn tid(t: u32) -> Vec<u8> {
    let mut v = vec![0x6du8; 16];
    v[12..].copy_from_slice(&t.to_be_bytes());
    v
}

fn sid(t: u32, n: u32) -> Vec<u8> {
    let mut b = vec![0u8; 8];
    b[..4].copy_from_slice(&t.to_be_bytes());
    b[4..].copy_from_slice(&(n + 1).to_be_bytes());
    b
}

/// Span `n` of trace `t`, starting `start_ms` after `base` and lasting `dur_us`.
#[allow(clippy::too_many_arguments)]
fn span(
    base: u64,
    t: u32,
    n: u32,
    parent: Option<u32>,
    name: &str,
    kind: i32,
    start_ms: u64,
    dur_us: u64,
) -> Span {
    let start = base + start_ms * 1_000_000;
    Span {
        trace_id: tid(t),
        span_id: sid(t, n),
        parent_span_id: parent.map(|p| sid(t, p)).unwrap_or_default(),
        name: name.into(),
        kind,
        start_time_unix_nano: start,
        end_time_unix_nano: start + dur_us * 1000,
        ..Default::default()
    }
}

fn batch(service: &str, spans: Vec<Span>) -> ResourceSpans {
    ResourceSpans {
        resource: Some(Resource {
            attributes: vec![kv("service.name", service)],
            ..Default::default()
        }),
        scope_spans: vec![ScopeSpans {
            scope: Some(InstrumentationScope {
                name: "map-test".into(),
                ..Default::default()
            }),
            spans,
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// Checkout trace `t`, per service: the gateway's SERVER root and CLIENT; order-service's SERVER,
/// two CLIENTs and a PRODUCER into `orders`; payment-service's SERVER (lasting `pay_us`, ERROR
/// when `pay_error`); inventory-service's SERVER (`rpc.system`: an rpc edge) and the CONSUMER of
/// `orders`, a child of the producer with a link to it.
fn checkout(base: u64, t: u32, pay_us: u64, pay_error: bool) -> [(&'static str, Vec<Span>); 4] {
    let off = t as u64 * 10; // ten ms apart, all in the same minute
    let gw = vec![
        span(base, t, 0, None, "POST /orders", 2, off, 300_000),
        span(base, t, 1, Some(0), "POST", 3, off + 1, 290_000),
    ];
    let mut producer = span(base, t, 5, Some(2), "send orders", 4, off + 8, 2_000);
    producer.attributes = vec![
        kv("messaging.system", "kafka"),
        kv("messaging.destination.name", "orders"),
    ];
    let order = vec![
        span(base, t, 2, Some(1), "POST /orders", 2, off + 2, 280_000),
        span(base, t, 3, Some(2), "POST", 3, off + 3, pay_us + 100),
        span(base, t, 4, Some(2), "POST", 3, off + 5, 20_000),
        producer,
    ];
    let mut pay = span(base, t, 6, Some(3), "POST /charges", 2, off + 3, pay_us);
    if pay_error {
        pay.status = Some(Status {
            code: 2,
            message: "card declined".into(),
        });
    }
    let mut reserve = span(base, t, 7, Some(4), "Reserve", 2, off + 5, 15_000);
    reserve.attributes = vec![kv("rpc.system", "grpc")];
    let mut consumer = span(base, t, 8, Some(5), "process orders", 5, off + 9, 4_000);
    consumer.attributes = vec![
        kv("messaging.system", "kafka"),
        kv("messaging.destination.name", "orders"),
    ];
    consumer.links = vec![Link {
        trace_id: tid(t),
        span_id: sid(t, 5),
        ..Default::default()
    }];
    [
        (GW, gw),
        (ORDER, order),
        (PAY, vec![pay]),
        (INV, vec![reserve, consumer]),
    ]
}

fn cfg(dir: &std::path::Path) -> StoreConfig {
    StoreConfig {
        directory: dir.to_path_buf(),
        ..Default::default()
    }
}

/// 100 checkouts (payment 1..=100 ms, every tenth declined), each service its own batch of ten
/// traces: the first half callees first (every parent arrives after its child, in a later
/// batch), the second half callers first.
async fn fill(store: &TraceStore, base: u64) {
    for group in 0..10u32 {
        let mut per: Vec<(&str, Vec<Span>)> =
            vec![(GW, vec![]), (ORDER, vec![]), (PAY, vec![]), (INV, vec![])];
        for t in group * 10..group * 10 + 10 {
            for (i, (_, spans)) in checkout(base, t, (t as u64 + 1) * 1000, t % 10 == 3)
                .into_iter()
                .enumerate()
            {
                per[i].1.extend(spans);
            }
        }
        if group < 5 {
            per.reverse();
        }
        for (svc, spans) in per {
            store.insert_spans(&[batch(svc, spans)]).await.unwrap();
        }
    }
}

fn window(base: u64) -> (u64, u64) {
    (base / 1000 + 5 * 60_000_000, 3_600_000_000)
}

async fn map(store: &TraceStore, base: u64) -> DependenciesResponse {
    let (end, lookback) = window(base);
    store.service_map(end, lookback).await.unwrap()
}

async fn pending_rows(store: &TraceStore) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM map_pending")
        .fetch_one(&store.read)
        .await
        .unwrap()
}

fn within(got: u64, want: f64) -> bool {
    (got as f64 - want).abs() <= want * 0.0625 + 1.0
}

/// What the constructed 100 checkouts must give.
fn assert_checkout_map(m: &DependenciesResponse) {
    let secs = (m.end_us - m.start_us) as f64 / 1e6;
    let svc = |n: &str| format!("service:{n}");
    let edge = |a: &str, b: &str, k| {
        m.edge(a, b, k)
            .unwrap_or_else(|| panic!("no {k:?} edge {a} → {b} in {:#?}", m.edges))
    };
    let e = edge(&svc(GW), &svc(ORDER), EdgeKind::Http);
    assert_eq!((e.calls, e.errors), (100, 0));
    assert!((e.rate - 100.0 / secs).abs() < 1e-9, "rate {}", e.rate);
    assert!(within(e.latency.p95_us, 280_000.0), "{:?}", e.latency);
    let e = edge(&svc(ORDER), &svc(PAY), EdgeKind::Http);
    assert_eq!(
        (e.calls, e.errors),
        (100, 10),
        "every tenth charge declined"
    );
    assert!((e.error_rate - 0.1).abs() < 1e-9);
    assert!(within(e.latency.p50_us, 50_000.0), "{:?}", e.latency);
    assert!(within(e.latency.p95_us, 95_000.0), "{:?}", e.latency);
    assert!(within(e.latency.p99_us, 99_000.0), "{:?}", e.latency);
    let e = edge(&svc(ORDER), &svc(INV), EdgeKind::Rpc);
    assert_eq!(
        (e.calls, e.errors),
        (100, 0),
        "the SERVER span has rpc.system"
    );
    assert!(within(e.latency.p50_us, 15_000.0));
    let e = edge(&svc(ORDER), "topic:orders", EdgeKind::Kafka);
    assert_eq!(e.calls, 100);
    assert!(
        within(e.latency.p50_us, 2_000.0),
        "the producer span's duration"
    );
    let e = edge("topic:orders", &svc(INV), EdgeKind::Kafka);
    assert_eq!(e.calls, 100);
    assert!(
        within(e.latency.p50_us, 4_000.0),
        "the consumer span's duration"
    );
    assert_eq!(
        m.edges.len(),
        5,
        "no direct order → inventory kafka edge beside the topic: {:#?}",
        m.edges
    );
    let ids: Vec<&str> = m.nodes.iter().map(|n| n.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "service:api-gateway",
            "service:inventory-service",
            "service:order-service",
            "service:payment-service",
            "topic:orders"
        ]
    );
    let pay = m.node(&svc(PAY)).unwrap();
    assert_eq!((pay.calls, pay.errors), (100, 10));
    assert!((pay.rate - 100.0 / secs).abs() < 1e-9);
    assert!(within(pay.latency.unwrap().p95_us, 95_000.0));
    let inv = m.node(&svc(INV)).unwrap();
    assert_eq!(inv.calls, 200, "its SERVER and its CONSUMER spans");
    let topic = m.node("topic:orders").unwrap();
    assert_eq!((topic.kind, topic.calls), (NodeKind::Topic, 100));
}

#[tokio::test]
async fn checkout_traces_give_edges_kinds_counts_errors_and_percentiles() {
    let dir = tempfile::tempdir().unwrap();
    let store = TraceStore::open(cfg(dir.path())).await.unwrap();
    let base = base_ns();
    fill(&store, base).await;
    assert_eq!(store.span_count(), 900);
    let m = map(&store, base).await;
    assert_checkout_map(&m);
    assert_eq!(
        pending_rows(&store).await,
        0,
        "every waiting child found its parent"
    );
    assert_eq!(m.start_us % 60_000_000, 0, "whole minutes");

    // Jaeger's pairs, and the same as the join over the stored spans.
    let (end, lookback) = window(base);
    let deps = store.dependencies(end, lookback).await.unwrap();
    let pairs: Vec<(&str, &str, u64)> = deps
        .iter()
        .map(|d| (d.parent.as_str(), d.child.as_str(), d.call_count))
        .collect();
    assert_eq!(
        pairs,
        [(GW, ORDER, 100), (ORDER, INV, 200), (ORDER, PAY, 100)],
        "inventory: its SERVER and the Kafka hand-off"
    );
    assert_eq!(deps, store.dependencies_scan(end, lookback).await.unwrap());

    // A retried batch is stored once and counted once.
    for (svc, spans) in checkout(base, 7, 8000, false) {
        store.insert_spans(&[batch(svc, spans)]).await.unwrap();
    }
    assert_eq!(store.span_count(), 900);
    assert_checkout_map(&map(&store, base).await);

    // Outside the window: nothing.
    let empty = store
        .service_map(base / 1000 - 3_600_000_000, 60_000_000)
        .await
        .unwrap();
    assert!(empty.nodes.is_empty() && empty.edges.is_empty());
}

#[tokio::test]
async fn a_child_waits_for_its_parent_across_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let base = base_ns();
    let [gw, order, pay, _] = checkout(base, 1, 5000, true);
    {
        let store = TraceStore::open(cfg(dir.path())).await.unwrap();
        store.insert_spans(&[batch(pay.0, pay.1)]).await.unwrap();
        store.insert_spans(&[batch(gw.0, gw.1)]).await.unwrap();
        assert_eq!(
            pending_rows(&store).await,
            1,
            "payment's SERVER waits for order's CLIENT"
        );
        let m = map(&store, base).await;
        assert!(m.edges.is_empty(), "{:?}", m.edges);
        assert_eq!(m.node("service:payment-service").unwrap().errors, 1);
        store.close().await;
    }
    let store = TraceStore::open(cfg(dir.path())).await.unwrap();
    store
        .insert_spans(&[batch(order.0, order.1)])
        .await
        .unwrap();
    let m = map(&store, base).await;
    let e = m
        .edge(
            "service:order-service",
            "service:payment-service",
            EdgeKind::Http,
        )
        .expect("resolved after the reopen");
    assert_eq!((e.calls, e.errors), (1, 1));
    assert!(
        m.edge(
            "service:api-gateway",
            "service:order-service",
            EdgeKind::Http
        )
        .is_some()
    );
    assert_eq!(pending_rows(&store).await, 0);
}

#[tokio::test]
async fn a_consumer_without_parent_or_topic_is_joined_through_its_link() {
    let dir = tempfile::tempdir().unwrap();
    let store = TraceStore::open(cfg(dir.path())).await.unwrap();
    let base = base_ns();
    let mut producer = span(base, 1, 0, None, "send", 4, 0, 1000);
    producer.attributes = vec![kv("messaging.system", "kafka")];
    // The consumer starts a trace of its own and links to the producer.
    let mut consumer = span(base, 2, 0, None, "process", 5, 5, 3000);
    consumer.links = vec![Link {
        trace_id: tid(1),
        span_id: sid(1, 0),
        ..Default::default()
    }];
    store
        .insert_spans(&[batch("mailer", vec![consumer])])
        .await
        .unwrap();
    store
        .insert_spans(&[batch(ORDER, vec![producer])])
        .await
        .unwrap();
    let m = map(&store, base).await;
    let e = m
        .edge("service:order-service", "service:mailer", EdgeKind::Kafka)
        .expect("a direct kafka edge when no topic is named");
    assert_eq!(e.calls, 1);
    assert!(m.nodes.iter().all(|n| n.kind == NodeKind::Service));
}

#[tokio::test]
async fn a_file_without_the_aggregate_is_backfilled_when_opened() {
    let dir = tempfile::tempdir().unwrap();
    let base = base_ns();
    {
        let store = TraceStore::open(cfg(dir.path())).await.unwrap();
        fill(&store, base).await;
        // What a file of a collector from before the service map looks like.
        for t in ["service_map", "map_pending", "map_state"] {
            sqlx::query(sqlx::AssertSqlSafe(format!("DROP TABLE {t}")))
                .execute(&store.write)
                .await
                .unwrap();
        }
        store.close().await;
    }
    let store = TraceStore::open(cfg(dir.path())).await.unwrap();
    let m = map(&store, base).await;
    assert_checkout_map(&m);
    let (end, lookback) = window(base);
    assert_eq!(
        store.dependencies(end, lookback).await.unwrap(),
        store.dependencies_scan(end, lookback).await.unwrap()
    );
    // Marked done: the next open does not count the spans twice.
    store.close().await;
    let store = TraceStore::open(cfg(dir.path())).await.unwrap();
    assert_checkout_map(&map(&store, base).await);
}

#[tokio::test]
async fn pruning_the_oldest_traces_trims_the_map() {
    let dir = tempfile::tempdir().unwrap();
    let store = TraceStore::open(cfg(dir.path())).await.unwrap();
    let base = base_ns();
    fill(&store, base).await;
    // A newer checkout two minutes later, then age out everything before it.
    let later = base + 120_000_000_000;
    for (svc, spans) in checkout(later, 500, 1000, false) {
        store.insert_spans(&[batch(svc, spans)]).await.unwrap();
    }
    let now_us = (later / 1000) + 24 * 3_600_000_000 - 60_000_000;
    store.prune_at(now_us).await.unwrap();
    assert_eq!(store.span_count(), 9);
    let m = store
        .service_map(later / 1000 + 60_000_000, 3_600_000_000)
        .await
        .unwrap();
    let e = m
        .edge(
            "service:api-gateway",
            "service:order-service",
            EdgeKind::Http,
        )
        .unwrap();
    assert_eq!(e.calls, 1, "only the remaining trace");
}
