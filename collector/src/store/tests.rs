//! The store against real SQLite files in temp dirs: Jaeger-shaped reads, search filters, windowed
//! reads, size/age bounds, persistence across a reopen, logs by span, decisions, dependencies.

use std::time::Duration;

use collector_api::jaeger::RefType;
use collector_api::v1::{Decision, DecisionTrigger, SamplingDecision};
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, InstrumentationScope, KeyValue, any_value::Value,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};

use super::{StoreConfig, TraceQuery, TraceStore};

/// Recent enough that the default 24h retention keeps it.
fn base_ns() -> u64 {
    (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 600)
        * 1_000_000_000
}

fn kv(key: &str, v: Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    }
}

fn s(v: &str) -> Value {
    Value::StringValue(v.into())
}

fn tid(n: u32) -> [u8; 16] {
    let mut t = [0x5au8; 16];
    t[12..].copy_from_slice(&n.to_be_bytes());
    t
}

fn sid(t: u32, n: u32) -> [u8; 8] {
    let mut b = [0u8; 8];
    b[..4].copy_from_slice(&t.to_be_bytes());
    b[4..].copy_from_slice(&(n + 1).to_be_bytes());
    b
}

struct SpanSpec {
    trace: u32,
    id: u32,
    parent: Option<u32>,
    name: &'static str,
    kind: i32,
    start_ms: u64,
    dur_ms: u64,
    error: bool,
    attrs: Vec<KeyValue>,
}

fn spec(
    trace: u32,
    id: u32,
    parent: Option<u32>,
    name: &'static str,
    start_ms: u64,
    dur_ms: u64,
) -> SpanSpec {
    SpanSpec {
        trace,
        id,
        parent,
        name,
        kind: 1,
        start_ms,
        dur_ms,
        error: false,
        attrs: vec![],
    }
}

fn otlp(base: u64, sp: &SpanSpec) -> Span {
    Span {
        trace_id: tid(sp.trace).to_vec(),
        span_id: sid(sp.trace, sp.id).to_vec(),
        parent_span_id: sp
            .parent
            .map(|p| sid(sp.trace, p).to_vec())
            .unwrap_or_default(),
        name: sp.name.into(),
        kind: sp.kind,
        start_time_unix_nano: base + sp.start_ms * 1_000_000,
        end_time_unix_nano: base + (sp.start_ms + sp.dur_ms) * 1_000_000,
        attributes: sp.attrs.clone(),
        status: sp.error.then(|| Status {
            code: 2,
            message: "card declined".into(),
        }),
        ..Default::default()
    }
}

fn batch(service: &str, spans: Vec<Span>) -> ResourceSpans {
    ResourceSpans {
        resource: Some(Resource {
            attributes: vec![
                kv("service.name", s(service)),
                kv("deployment.environment", s("lab")),
            ],
            ..Default::default()
        }),
        scope_spans: vec![ScopeSpans {
            scope: Some(InstrumentationScope {
                name: "tracelab".into(),
                version: "0.1".into(),
                ..Default::default()
            }),
            spans,
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn cfg(dir: &std::path::Path) -> StoreConfig {
    StoreConfig {
        directory: dir.to_path_buf(),
        ..Default::default()
    }
}

/// The checkout trace shape: gateway → order → payment (error, with an event) plus a consumer
/// span linked to its producer.
async fn checkout(store: &TraceStore, base: u64, t: u32, error: bool) {
    let mut root = spec(t, 0, None, "POST /orders", 0, 1300);
    root.kind = 2;
    root.attrs = vec![
        kv("http.route", s("/orders")),
        kv("http.response.status_code", Value::IntValue(201)),
    ];
    let mut client = spec(t, 1, Some(0), "POST", 5, 1290);
    client.kind = 3;
    let mut order = spec(t, 2, Some(1), "POST /orders", 10, 1280);
    order.kind = 2;
    // A SERVER span: where the call from order-service arrives (what dependencies count).
    let mut charge = spec(t, 3, Some(2), "charge", 20, 1200);
    charge.kind = 2;
    charge.error = error;
    charge.attrs = vec![kv("payment.method", s("card"))];
    let mut charge_span = otlp(base, &charge);
    charge_span.events = vec![Event {
        time_unix_nano: base + 25_000_000,
        name: "payment_started".into(),
        attributes: vec![kv("amount_cents", Value::IntValue(14999))],
        ..Default::default()
    }];
    let mut producer = spec(t, 4, Some(2), "send orders", 1250, 5);
    producer.kind = 4;
    let mut consumer = otlp(
        base,
        &SpanSpec {
            kind: 5,
            ..spec(t, 5, Some(4), "process orders", 1260, 20)
        },
    );
    consumer.links = vec![Link {
        trace_id: tid(t).to_vec(),
        span_id: sid(t, 4).to_vec(),
        ..Default::default()
    }];
    store
        .insert_spans(&[
            batch("api-gateway", vec![otlp(base, &root), otlp(base, &client)]),
            batch(
                "order-service",
                vec![otlp(base, &order), otlp(base, &producer), consumer],
            ),
            batch("payment-service", vec![charge_span]),
        ])
        .await
        .unwrap();
}

#[tokio::test]
async fn a_stored_trace_reads_back_in_jaeger_shape() {
    let dir = tempfile::tempdir().unwrap();
    let store = TraceStore::open(cfg(dir.path())).await.unwrap();
    let base = base_ns();
    checkout(&store, base, 1, true).await;

    let t = store
        .get_trace(&tid(1))
        .await
        .unwrap()
        .expect("trace stored");
    assert_eq!(t.trace_id, collector_api::ids::hex_id(&tid(1)));
    assert_eq!(t.spans.len(), 6);
    assert_eq!(
        t.services(),
        vec!["api-gateway", "order-service", "payment-service"]
    );
    assert_eq!(t.root_spans().len(), 1);
    assert_eq!(t.spans[0].start_time, base / 1000, "µs, ordered by start");
    assert_eq!(t.spans[0].duration, 1_300_000);
    assert_eq!(t.spans[0].kind(), Some("server"));
    let charge = t.spans_named("charge").next().unwrap();
    assert!(charge.is_error());
    assert_eq!(
        charge.tag_str("otel.status_description"),
        Some("card declined")
    );
    assert_eq!(charge.tag_str("otel.scope.name"), Some("tracelab"));
    assert_eq!(charge.logs[0].event_name(), Some("payment_started"));
    assert_eq!(charge.logs[0].timestamp, (base + 25_000_000) / 1000);
    assert_eq!(t.service_of(charge), Some("payment-service"));
    let p = &t.processes[&charge.process_id];
    assert!(p.tags.iter().any(|k| k.key == "deployment.environment"));
    assert!(
        !p.tags.iter().any(|k| k.key == "service.name"),
        "service.name is serviceName"
    );
    let consumer = t.spans_named("process orders").next().unwrap();
    assert_eq!(consumer.references.len(), 2);
    assert_eq!(consumer.references[1].ref_type, RefType::FollowsFrom);
    let root = t
        .spans_named("POST /orders")
        .find(|s| s.parent_span_id().is_none())
        .unwrap();
    assert_eq!(
        root.tag("http.response.status_code").unwrap().value,
        serde_json::json!(201)
    );

    assert!(store.get_trace(&tid(99)).await.unwrap().is_none());
    assert_eq!(
        store.services().await.unwrap(),
        vec!["api-gateway", "order-service", "payment-service"]
    );
    let ops = store.operations("order-service", None).await.unwrap();
    assert_eq!(ops.len(), 3);
    let servers = store.operations("order-service", Some(2)).await.unwrap();
    assert_eq!(servers.len(), 1);
    assert_eq!(
        (servers[0].name.as_str(), servers[0].span_kind.as_str()),
        ("POST /orders", "server")
    );

    let summary = store.trace_summary(&tid(1)).await.unwrap().unwrap();
    assert_eq!(
        (
            summary.root_service.as_str(),
            summary.root_operation.as_str()
        ),
        ("api-gateway", "POST /orders")
    );
    assert_eq!(
        (summary.span_count, summary.error_count, summary.duration),
        (6, 1, 1_300_000)
    );

    let deps = store
        .dependencies(base / 1000 + 10_000_000, 3_600_000_000)
        .await
        .unwrap();
    let pairs: Vec<(&str, &str, u64)> = deps
        .iter()
        .map(|d| (d.parent.as_str(), d.child.as_str(), d.call_count))
        .collect();
    assert_eq!(
        pairs,
        vec![
            ("api-gateway", "order-service", 1),
            ("order-service", "payment-service", 1)
        ]
    );
}

#[tokio::test]
async fn searches_filter_by_service_operation_tags_duration_status_and_time() {
    let dir = tempfile::tempdir().unwrap();
    let store = TraceStore::open(cfg(dir.path())).await.unwrap();
    let base = base_ns();
    for t in 0..40u32 {
        let mut sp = spec(
            t,
            0,
            None,
            if t % 2 == 0 { "GET /a" } else { "GET /b" },
            t as u64 * 1000,
            10 + t as u64 * 10,
        );
        sp.error = t % 5 == 0;
        sp.attrs = vec![
            kv(
                "customer.tier",
                s(if t % 4 == 0 { "gold" } else { "basic" }),
            ),
            kv("t", Value::IntValue(t as i64)),
        ];
        let svc = if t < 20 { "svc-a" } else { "svc-b" };
        store
            .insert_spans(&[batch(svc, vec![otlp(base, &sp)])])
            .await
            .unwrap();
    }
    let ids = |v: Vec<[u8; 16]>| {
        v.iter()
            .map(|t| u32::from_be_bytes(t[12..].try_into().unwrap()))
            .collect::<Vec<_>>()
    };
    let q = |f: fn(&mut TraceQuery)| {
        let mut q = TraceQuery {
            limit: 100,
            ..Default::default()
        };
        f(&mut q);
        q
    };
    let all = ids(store.find_trace_ids(&q(|_| {})).await.unwrap());
    assert_eq!(all.len(), 40);
    assert_eq!(all[0], 39, "newest first");
    let r = ids(store
        .find_trace_ids(&q(|q| q.service = Some("svc-a".into())))
        .await
        .unwrap());
    assert_eq!(r.len(), 20);
    assert!(r.iter().all(|t| *t < 20));
    let r = ids(store
        .find_trace_ids(&q(|q| {
            q.service = Some("svc-a".into());
            q.operation = Some("GET /b".into());
        }))
        .await
        .unwrap());
    assert_eq!(r, vec![19, 17, 15, 13, 11, 9, 7, 5, 3, 1]);
    let r = ids(store
        .find_trace_ids(&q(|q| {
            q.tags = vec![("customer.tier".into(), "gold".into())]
        }))
        .await
        .unwrap());
    assert_eq!(r, vec![36, 32, 28, 24, 20, 16, 12, 8, 4, 0]);
    let r = ids(store
        .find_trace_ids(&q(|q| {
            q.tags = vec![
                ("customer.tier".into(), "gold".into()),
                ("error".into(), "true".into()),
            ]
        }))
        .await
        .unwrap());
    assert_eq!(
        r,
        vec![20, 0],
        "tags AND together; error=true is searchable"
    );
    let r = ids(store
        .find_trace_ids(&q(|q| q.tags = vec![("t".into(), "7".into())]))
        .await
        .unwrap());
    assert_eq!(r, vec![7], "int tags match their text");
    let r = ids(store
        .find_trace_ids(&q(|q| {
            q.tags = vec![("deployment.environment".into(), "lab".into())]
        }))
        .await
        .unwrap());
    assert_eq!(r.len(), 40, "process (resource) tags are searchable");
    let r = ids(store
        .find_trace_ids(&q(|q| {
            q.min_duration_us = Some(300_000);
            q.max_duration_us = Some(320_000);
        }))
        .await
        .unwrap());
    assert_eq!(r, vec![31, 30, 29]);
    let r = ids(store
        .find_trace_ids(&q(|q| q.errors_only = true))
        .await
        .unwrap());
    assert_eq!(r, vec![35, 30, 25, 20, 15, 10, 5, 0]);
    let b = base / 1000;
    let mut tq = q(|_| {});
    tq.start_us = Some(b + 10_000_000);
    tq.end_us = Some(b + 12_000_000);
    assert_eq!(
        ids(store.find_trace_ids(&tq).await.unwrap()),
        vec![12, 11, 10]
    );
    let r = ids(store
        .find_trace_ids(&TraceQuery {
            limit: 3,
            ..Default::default()
        })
        .await
        .unwrap());
    assert_eq!(r, vec![39, 38, 37], "limit");
    let traces = store
        .find_traces(&TraceQuery {
            limit: 2,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(traces.len(), 2);
    let sums = store
        .find_trace_summaries(&q(|q| q.errors_only = true))
        .await
        .unwrap();
    assert_eq!(sums.len(), 8);
    assert!(sums.iter().all(|s| s.error_count == 1));
}

#[tokio::test]
async fn a_huge_trace_reads_in_windows_ordered_by_start() {
    let dir = tempfile::tempdir().unwrap();
    let store = TraceStore::open(cfg(dir.path())).await.unwrap();
    let base = base_ns();
    // 5000 spans, inserted in reverse start order across batches.
    for chunk in (0..5000u32).rev().collect::<Vec<_>>().chunks(1000) {
        let spans = chunk
            .iter()
            .map(|i| {
                otlp(
                    base,
                    &spec(7, *i, Some(0).filter(|_| *i > 0), "work", *i as u64, 2),
                )
            })
            .collect();
        store.insert_spans(&[batch("big", spans)]).await.unwrap();
    }
    let w = store
        .get_span_window(&tid(7), 1000, 50)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (w.total, w.offset, w.limit, w.spans.len()),
        (5000, 1000, 50, 50)
    );
    assert_eq!(w.spans[0].start_time, base / 1000 + 1_000_000);
    assert!(
        w.spans
            .windows(2)
            .all(|p| p[0].start_time <= p[1].start_time)
    );
    assert_eq!(w.trace_start_time, base / 1000);
    assert_eq!(w.trace_end_time, base / 1000 + 5_001_000);
    assert_eq!(w.processes.len(), 1);
    let last = store
        .get_span_window(&tid(7), 4990, 50)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(last.spans.len(), 10);
    assert!(
        store
            .get_span_window(&tid(8), 0, 10)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn span_count_bound_removes_whole_oldest_traces() {
    let dir = tempfile::tempdir().unwrap();
    let store = TraceStore::open(StoreConfig {
        max_spans: 100,
        ..cfg(dir.path())
    })
    .await
    .unwrap();
    let base = base_ns();
    for t in 0..30u32 {
        let spans = (0..5)
            .map(|i| otlp(base, &spec(t, i, None, "op", t as u64 * 100 + i as u64, 1)))
            .collect();
        store.insert_spans(&[batch("svc", spans)]).await.unwrap();
    }
    let n = store.span_count();
    assert!((90..=100).contains(&n), "kept {n} spans");
    let kept = store
        .find_trace_ids(&TraceQuery {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(kept.len() as u64 * 5, n, "only whole traces remain");
    assert_eq!(
        store.trace_count(),
        kept.len() as u64,
        "trace count follows pruning"
    );
    assert!(
        store.get_trace(&tid(0)).await.unwrap().is_none(),
        "the oldest went first"
    );
    assert!(store.get_trace(&tid(29)).await.unwrap().is_some());
    // Tag index rows of removed traces are gone too.
    let tagged = store
        .find_trace_ids(&TraceQuery {
            tags: vec![("span.kind".into(), "internal".into())],
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(tagged.len(), kept.len());
}

#[tokio::test]
async fn retention_and_size_bounds_prune() {
    let dir = tempfile::tempdir().unwrap();
    let store = TraceStore::open(StoreConfig {
        retention: Duration::from_secs(3600),
        max_size_mib: 1,
        ..cfg(dir.path())
    })
    .await
    .unwrap();
    let base = base_ns();
    // ~3 MB of spans (big attributes) in 200 traces.
    for t in 0..200u32 {
        let mut sp = spec(t, 0, None, "op", t as u64, 1);
        sp.attrs = vec![kv("payload", s(&"x".repeat(15_000)))];
        store
            .insert_spans(&[batch("svc", vec![otlp(base, &sp)])])
            .await
            .unwrap();
    }
    let before = store.stats().await.unwrap();
    assert!(
        before.used_bytes > 2 * 1024 * 1024,
        "test data is over the size bound: {before:?}"
    );
    let r = store.prune().await.unwrap();
    let after = store.stats().await.unwrap();
    assert!(
        after.used_bytes <= 1024 * 1024,
        "size bound enforced: {after:?}"
    );
    assert!(r.spans > 0 && after.spans > 0, "{r:?} {after:?}");
    assert!(
        store.get_trace(&tid(199)).await.unwrap().is_some(),
        "newest kept"
    );

    // Retention: two hours later everything is older than an hour.
    let later = base / 1000 + 2 * 3600 * 1_000_000;
    store.prune_at(later).await.unwrap();
    assert_eq!(store.span_count(), 0);
    assert_eq!(store.trace_count(), 0);
    assert!(
        store.services().await.unwrap().is_empty(),
        "operations of removed spans leave the lists"
    );
}

#[tokio::test]
async fn a_reopened_store_keeps_what_was_stored() {
    let dir = tempfile::tempdir().unwrap();
    let base = base_ns();
    {
        let store = TraceStore::open(cfg(dir.path())).await.unwrap();
        checkout(&store, base, 3, false).await;
        store
            .insert_decisions(&[SamplingDecision {
                trace_id: collector_api::ids::hex_id(&tid(3)),
                decision: Decision::Sampled,
                policy: Some("errors".into()),
                trigger: DecisionTrigger::DecisionWait,
                span_count: 6,
                decided_at_ms: (base / 1_000_000) as i64,
                error: false,
                duration_us: 1_300_000,
                processor: "tail_sampling/tail".into(),
            }])
            .await
            .unwrap();
        store.close().await;
    }
    let store = TraceStore::open(cfg(dir.path())).await.unwrap();
    assert_eq!(store.span_count(), 6);
    assert_eq!(store.trace_count(), 1, "counted again at open");
    let t = store
        .get_trace(&tid(3))
        .await
        .unwrap()
        .expect("trace survived the restart");
    assert_eq!(t.spans.len(), 6);
    assert_eq!(store.services().await.unwrap().len(), 3);
    let d = store.decisions(None, 10).await.unwrap();
    assert_eq!(d.len(), 1);
    assert_eq!(
        (d[0].decision, d[0].policy.as_deref()),
        (Decision::Sampled, Some("errors"))
    );
    assert_eq!(
        (d[0].error, d[0].duration_us, d[0].processor.as_str()),
        (false, 1_300_000, "tail_sampling/tail")
    );
    // New writes after the reopen work and reuse the stored resources.
    checkout(&store, base, 4, false).await;
    assert_eq!(store.span_count(), 12);
    assert_eq!(store.trace_count(), 2);
}

#[tokio::test]
async fn trace_facts_answer_many_ids_at_once_and_name_the_missing() {
    let dir = tempfile::tempdir().unwrap();
    let store = TraceStore::open(cfg(dir.path())).await.unwrap();
    let base = base_ns();
    checkout(&store, base, 1, true).await;
    checkout(&store, base, 2, false).await;
    // A late span of trace 1 in another batch: counted in the same trace, stretching it.
    store
        .insert_spans(&[batch(
            "refund-service",
            vec![otlp(base, &spec(1, 9, Some(0), "refund", 1400, 100))],
        )])
        .await
        .unwrap();
    assert_eq!(store.trace_count(), 2, "a known trace is not counted again");
    // Many unknown ids around the two known ones: more than one IN (...) chunk.
    let mut ids: Vec<[u8; 16]> = (100..1300u32).map(tid).collect();
    ids.insert(0, tid(2));
    ids.push(tid(1));
    ids.push(tid(2));
    let (facts, missing) = store.trace_facts(&ids).await.unwrap();
    assert_eq!(missing.len(), 1200, "every unknown id, once");
    assert_eq!(missing[0], tid(100), "in request order");
    let hex = |n| collector_api::ids::hex_id(&tid(n));
    assert_eq!(
        facts.iter().map(|f| f.trace_id.clone()).collect::<Vec<_>>(),
        [hex(2), hex(1)],
        "in request order, duplicates once"
    );
    let (two, one) = (&facts[0], &facts[1]);
    assert_eq!(
        (two.spans, two.error, two.duration_us),
        (6, false, 1_300_000)
    );
    assert_eq!(
        two.services,
        ["api-gateway", "order-service", "payment-service"]
    );
    assert_eq!(
        (one.spans, one.error, one.duration_us),
        (7, true, 1_500_000)
    );
    assert_eq!(one.services.len(), 4);
    let (facts, missing) = store.trace_facts(&[]).await.unwrap();
    assert!(facts.is_empty() && missing.is_empty());
}

#[tokio::test]
async fn logs_are_found_by_trace_and_span() {
    let dir = tempfile::tempdir().unwrap();
    let store = TraceStore::open(cfg(dir.path())).await.unwrap();
    let base = base_ns();
    let rec = |span: u32, msg: &str, t: u64| LogRecord {
        time_unix_nano: base + t * 1_000_000,
        severity_number: 9,
        severity_text: "INFO".into(),
        body: Some(AnyValue {
            value: Some(s(msg)),
        }),
        attributes: vec![kv("order.id", s("ORD-789"))],
        trace_id: tid(5).to_vec(),
        span_id: sid(5, span).to_vec(),
        ..Default::default()
    };
    let batch = ResourceLogs {
        resource: Some(Resource {
            attributes: vec![kv("service.name", s("payment-service"))],
            ..Default::default()
        }),
        scope_logs: vec![ScopeLogs {
            log_records: vec![
                rec(3, "Charging card ending 4242", 2),
                rec(3, "charged", 3),
                rec(1, "other span", 1),
                LogRecord {
                    body: Some(AnyValue {
                        value: Some(s("no trace")),
                    }),
                    ..Default::default()
                },
            ],
            ..Default::default()
        }],
        ..Default::default()
    };
    assert_eq!(store.insert_logs(&[batch]).await.unwrap(), 4);
    let all = store.logs(&tid(5), None).await.unwrap();
    assert_eq!(all.len(), 3);
    assert_eq!(all[0].body, "other span", "oldest first");
    let of_span = store.logs(&tid(5), Some(&sid(5, 3))).await.unwrap();
    assert_eq!(
        of_span.iter().map(|l| l.body.as_str()).collect::<Vec<_>>(),
        vec!["Charging card ending 4242", "charged"]
    );
    assert_eq!(of_span[0].service_name, "payment-service");
    assert_eq!(of_span[0].span_id, collector_api::ids::hex_id(&sid(5, 3)));
    assert_eq!(of_span[0].attributes[0].key, "order.id");
}

#[tokio::test]
async fn a_span_exported_twice_is_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = TraceStore::open(cfg(dir.path())).await.unwrap();
    let base = base_ns();
    checkout(&store, base, 7, false).await;
    assert_eq!(store.span_count(), 6);
    // The same export again (a client retrying after a lost answer): nothing new.
    checkout(&store, base, 7, false).await;
    // A batch repeating one span inside itself, plus one new span.
    let dup = otlp(base, &spec(7, 0, None, "POST /orders", 0, 1300));
    let new = otlp(base, &spec(7, 9, Some(0), "new", 1, 2));
    let stored = store
        .insert_spans(&[batch("api-gateway", vec![dup.clone(), dup, new])])
        .await
        .unwrap();
    assert_eq!(stored, 1, "only the new span is stored");
    assert_eq!(store.span_count(), 7);
    assert_eq!(store.trace_count(), 1);
    let t = store.get_trace(&tid(7)).await.unwrap().unwrap();
    assert_eq!(t.spans.len(), 7);
    let mut ids: Vec<_> = t.spans.iter().map(|s| s.span_id.clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 7, "every span id once");
}

#[tokio::test]
async fn a_version_1_store_with_duplicate_spans_is_upgraded() {
    let dir = tempfile::tempdir().unwrap();
    let base = base_ns();
    {
        let store = TraceStore::open(cfg(dir.path())).await.unwrap();
        checkout(&store, base, 3, true).await;
        store.close().await;
    }
    // Turn the file into what version 1 wrote: no unique index, a span stored twice.
    {
        let url = format!("sqlite:{}", dir.path().join("traces.db").display());
        let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
        let mut steps = vec![
            "DROP INDEX spans_span_trace",
            "CREATE INDEX spans_span_id ON spans(span_id)",
            "INSERT INTO spans (trace_id, span_id, parent_id, service, name, kind, start_us, \
             duration_us, status, resource_id, scope_name, scope_version, body) \
             SELECT trace_id, span_id, parent_id, service, name, kind, start_us, duration_us, \
             status, resource_id, scope_name, scope_version, body FROM spans",
        ];
        // Versions 1 and 2 had the same decisions table.
        steps.extend(DECISIONS_V2);
        steps.push("PRAGMA user_version = 1");
        for q in steps {
            sqlx::query(q).execute(&pool).await.unwrap();
        }
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM spans")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(n, 12);
        pool.close().await;
    }
    let store = TraceStore::open(cfg(dir.path())).await.unwrap();
    assert_eq!(store.span_count(), 6, "duplicates removed on upgrade");
    assert_eq!(
        store.get_trace(&tid(3)).await.unwrap().unwrap().spans.len(),
        6
    );
    checkout(&store, base, 3, true).await;
    assert_eq!(
        store.span_count(),
        6,
        "the unique index holds after the upgrade"
    );
    assert_eq!(
        store
            .dependencies(base / 1000 + 10_000_000, 3_600_000_000)
            .await
            .unwrap()
            .len(),
        2
    );
    store.close().await;
    // Reopening an upgraded file changes nothing.
    let store = TraceStore::open(cfg(dir.path())).await.unwrap();
    assert_eq!(store.span_count(), 6);
}

/// Jaeger's semantics: every condition, tags included, holds on ONE span of the trace.
#[tokio::test]
async fn search_conditions_hold_on_one_span() {
    let dir = tempfile::tempdir().unwrap();
    let store = TraceStore::open(cfg(dir.path())).await.unwrap();
    let base = base_ns();
    // Trace 1: the tag on a short span, the long duration on another span.
    let mut a = spec(1, 0, None, "GET /cart", 0, 10);
    a.attrs = vec![kv("customer.tier", s("gold"))];
    let b = spec(1, 1, Some(0), "SELECT", 1, 500);
    // Trace 2: both on one span.
    let mut c = spec(2, 0, None, "GET /cart", 0, 500);
    c.attrs = vec![kv("customer.tier", s("gold"))];
    store
        .insert_spans(&[batch(
            "shop",
            vec![otlp(base, &a), otlp(base, &b), otlp(base, &c)],
        )])
        .await
        .unwrap();
    let find = |tags: Vec<(&str, &str)>, min_ms: Option<u64>, op: Option<&str>| TraceQuery {
        tags: tags
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        min_duration_us: min_ms.map(|m| m * 1000),
        operation: op.map(str::to_string),
        limit: 20,
        ..Default::default()
    };
    let ids = |v: Vec<[u8; 16]>| {
        v.iter()
            .map(|t| u32::from_be_bytes(t[12..].try_into().unwrap()))
            .collect::<Vec<_>>()
    };
    let r = store
        .find_trace_ids(&find(vec![("customer.tier", "gold")], Some(100), None))
        .await
        .unwrap();
    assert_eq!(
        ids(r),
        [2],
        "tag on span A + duration on span B must not match"
    );
    let r = store
        .find_trace_ids(&find(vec![("customer.tier", "gold")], None, None))
        .await
        .unwrap();
    assert_eq!(ids(r).len(), 2);
    let r = store
        .find_trace_ids(&find(vec![("customer.tier", "gold")], None, Some("SELECT")))
        .await
        .unwrap();
    assert!(r.is_empty(), "operation and tag on different spans");
    // Two tags on two different spans of trace 1 do not match together either.
    let mut d = spec(3, 0, None, "x", 0, 10);
    d.attrs = vec![kv("k1", s("v1"))];
    let mut e = spec(3, 1, Some(0), "y", 1, 10);
    e.attrs = vec![kv("k2", s("v2"))];
    store
        .insert_spans(&[batch("shop", vec![otlp(base, &d), otlp(base, &e)])])
        .await
        .unwrap();
    let r = store
        .find_trace_ids(&find(vec![("k1", "v1"), ("k2", "v2")], None, None))
        .await
        .unwrap();
    assert!(r.is_empty());
}

/// Tags are found in span, event, link, resource and scope attributes, on the span that also
/// satisfies the other conditions; text values match int, double and bool attributes.
#[tokio::test]
async fn tags_match_every_attribute_source_and_typed_values() {
    let dir = tempfile::tempdir().unwrap();
    let store = TraceStore::open(cfg(dir.path())).await.unwrap();
    let base = base_ns();
    let mut sp = spec(10, 0, None, "typed", 0, 300);
    sp.attrs = vec![
        kv("n", Value::IntValue(123)),
        kv("ratio", Value::DoubleValue(72.5)),
        kv("flag", Value::BoolValue(true)),
        kv("text", s("123")),
    ];
    let mut span = otlp(base, &sp);
    span.events = vec![Event {
        name: "retry".into(),
        attributes: vec![kv("attempt", Value::IntValue(3))],
        ..Default::default()
    }];
    span.links = vec![Link {
        trace_id: tid(99).to_vec(),
        span_id: sid(99, 0).to_vec(),
        attributes: vec![kv("link.kind", s("batch"))],
        ..Default::default()
    }];
    let short = otlp(base, &spec(10, 1, Some(0), "short", 1, 5));
    let mut rs = batch("typed-svc", vec![span]);
    rs.resource
        .as_mut()
        .unwrap()
        .attributes
        .push(kv("k8s.pod.name", s("pod-1")));
    // A second scope in the same resource: its attribute lives on the short span only.
    rs.scope_spans[0].scope.as_mut().unwrap().attributes = vec![kv("lib.flavour", s("long"))];
    rs.scope_spans.push(ScopeSpans {
        scope: Some(InstrumentationScope {
            name: "other".into(),
            version: "2".into(),
            attributes: vec![kv("lib.flavour", s("short"))],
            ..Default::default()
        }),
        spans: vec![short],
        ..Default::default()
    });
    store.insert_spans(&[rs]).await.unwrap();
    let hit = async |k: &str, v: &str, min_ms: u64| {
        !store
            .find_trace_ids(&TraceQuery {
                tags: vec![(k.into(), v.into())],
                min_duration_us: Some(min_ms * 1000),
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap()
            .is_empty()
    };
    for (k, v) in [
        ("n", "123"),
        ("n", "123.0"),
        ("ratio", "72.5"),
        ("ratio", "72.50"),
        ("flag", "true"),
        ("flag", "TRUE"),
        ("text", "123"),
        ("attempt", "3"),
        ("link.kind", "batch"),
        ("k8s.pod.name", "pod-1"),
        ("service.name", "typed-svc"),
        ("lib.flavour", "long"),
        ("span.kind", "internal"),
    ] {
        assert!(hit(k, v, 100).await, "{k}={v} on the long span");
    }
    for (k, v) in [
        ("n", "124"),
        ("ratio", "72"),
        ("flag", "false"),
        ("text", "123.0"),
        // On the short span's scope only: not together with minDuration.
        ("lib.flavour", "short"),
    ] {
        assert!(!hit(k, v, 100).await, "{k}={v} must not match");
    }
    assert!(
        hit("lib.flavour", "short", 1).await,
        "the short span's scope"
    );
}

#[tokio::test]
async fn a_search_stopped_by_its_scan_bound_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let store = TraceStore::open(cfg(dir.path())).await.unwrap();
    let base = base_ns();
    let spans: Vec<Span> = (0..20u32)
        .map(|t| otlp(base, &spec(100 + t, 0, None, "op", t as u64, 10)))
        .collect();
    store.insert_spans(&[batch("many", spans)]).await.unwrap();
    store.set_search_scan_bound(5);
    let q = |limit| TraceQuery {
        limit,
        ..Default::default()
    };
    let out = store.search_trace_ids(&q(100)).await.unwrap();
    assert_eq!(out.ids.len(), 5);
    assert!(out.scan_bound_hit);
    let w = out.warnings();
    assert_eq!(w.len(), 1);
    assert!(w[0].contains("scan bound"), "{w:?}");
    let (traces, warnings) = store.search_traces(&q(100)).await.unwrap();
    assert_eq!((traces.len(), warnings.len()), (5, 1));
    // The limit reached first: nothing to warn about.
    let out = store.search_trace_ids(&q(3)).await.unwrap();
    assert_eq!(out.ids.len(), 3);
    assert!(!out.scan_bound_hit && out.warnings().is_empty());
    // Exactly at the bound with nothing left: complete.
    store.set_search_scan_bound(20);
    let out = store.search_trace_ids(&q(100)).await.unwrap();
    assert_eq!(out.ids.len(), 20);
    assert!(!out.scan_bound_hit);
}

/// The decisions table as schema versions 1 and 2 had it (no error, duration or processor).
const DECISIONS_V2: [&str; 3] = [
    "DROP TABLE decisions",
    "CREATE TABLE decisions (
        id INTEGER PRIMARY KEY,
        trace_id TEXT NOT NULL,
        decision TEXT NOT NULL,
        policy TEXT,
        trigger TEXT NOT NULL,
        span_count INTEGER NOT NULL,
        decided_at_ms INTEGER NOT NULL
    )",
    "CREATE INDEX decisions_trace ON decisions(trace_id)",
];

fn decision(
    processor: &str,
    policy: Option<&str>,
    kept: bool,
    error: bool,
    duration_ms: u64,
    at_ms: i64,
) -> SamplingDecision {
    SamplingDecision {
        trace_id: format!("{at_ms:032x}"),
        decision: if kept {
            Decision::Sampled
        } else {
            Decision::NotSampled
        },
        policy: policy.map(str::to_string),
        trigger: DecisionTrigger::DecisionWait,
        span_count: 5,
        decided_at_ms: at_ms,
        error,
        duration_us: duration_ms * 1000,
        processor: processor.into(),
    }
}

#[tokio::test]
async fn a_version_2_store_gains_the_decision_columns_and_keeps_its_decisions() {
    let dir = tempfile::tempdir().unwrap();
    let base = base_ns();
    let at = (base / 1_000_000) as i64;
    {
        let store = TraceStore::open(cfg(dir.path())).await.unwrap();
        checkout(&store, base, 3, true).await;
        store.close().await;
    }
    // Turn the file into what version 2 wrote, with one decision in it.
    {
        let url = format!("sqlite:{}", dir.path().join("traces.db").display());
        let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
        for q in DECISIONS_V2 {
            sqlx::query(q).execute(&pool).await.unwrap();
        }
        sqlx::query(
            "INSERT INTO decisions (trace_id, decision, policy, trigger, span_count, decided_at_ms) \
             VALUES ($1, 'sampled', 'errors', 'decision_wait', 6, $2)",
        )
        .bind(collector_api::ids::hex_id(&tid(3)))
        .bind(at)
        .execute(&pool)
        .await
        .unwrap();
        sqlx::query("PRAGMA user_version = 2")
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
    }
    let store = TraceStore::open(cfg(dir.path())).await.unwrap();
    let d = store.decisions(None, 10).await.unwrap();
    assert_eq!(d.len(), 1, "the version 2 decision survived the upgrade");
    assert_eq!(
        (
            d[0].policy.as_deref(),
            d[0].span_count,
            d[0].error,
            d[0].duration_us,
            d[0].processor.as_str()
        ),
        (Some("errors"), 6, false, 0, "")
    );
    // New decisions carry the new columns beside it.
    store
        .insert_decisions(&[decision(
            "tail_sampling",
            Some("errors"),
            true,
            true,
            1500,
            at + 1,
        )])
        .await
        .unwrap();
    let d = store.decisions(None, 10).await.unwrap();
    assert_eq!(
        (d[0].error, d[0].duration_us, d[0].processor.as_str()),
        (true, 1_500_000, "tail_sampling")
    );
    // The old decision counts as kept, but not among error or slow traces: it never said.
    let rows = store
        .decision_timeline(at - 1000, 10_000, 1, &[], 1_000_000)
        .await
        .unwrap();
    let old = rows.iter().find(|r| r.processor.is_empty()).unwrap();
    assert_eq!(
        (
            old.counts.kept,
            old.counts.error_traces,
            old.counts.slow_traces
        ),
        (1, 0, 0)
    );
    let new = rows
        .iter()
        .find(|r| r.processor == "tail_sampling")
        .unwrap();
    assert_eq!(
        (new.counts.kept, new.counts.error_kept, new.counts.slow_kept),
        (1, 1, 1)
    );
    store.close().await;
    let version: i64 = {
        let url = format!("sqlite:{}", dir.path().join("traces.db").display());
        let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
        let v = sqlx::query_scalar("PRAGMA user_version")
            .fetch_one(&pool)
            .await
            .unwrap();
        pool.close().await;
        v
    };
    assert_eq!(version, super::schema::SCHEMA_VERSION);
    assert_eq!(version, 4);
}

#[tokio::test]
async fn the_decision_timeline_buckets_per_processor_and_policy_with_error_and_slow_counts() {
    let dir = tempfile::tempdir().unwrap();
    let store = TraceStore::open(cfg(dir.path())).await.unwrap();
    let t0: i64 = 1_700_000_000_000;
    let a = "tail_sampling/a";
    let b = "tail_sampling/b";
    store
        .insert_decisions(&[
            decision(a, Some("errors"), true, true, 500, t0 + 1_000),
            decision(a, Some("slow"), true, false, 2_500, t0 + 2_000),
            decision(a, Some("errors"), true, true, 3_000, t0 + 3_000),
            // Slow by the default 1 s, not by a's 2 s latency threshold.
            decision(a, None, false, false, 1_500, t0 + 12_000),
            decision(b, None, false, true, 1_500, t0 + 25_000),
            // Outside [t0, t0 + 30 s): left out.
            decision(a, Some("errors"), true, true, 500, t0 - 1),
            decision(a, Some("errors"), true, true, 500, t0 + 30_000),
        ])
        .await
        .unwrap();
    let rows = store
        .decision_timeline(t0, 10_000, 3, &[(a.to_string(), 2_000_000)], 1_000_000)
        .await
        .unwrap();
    let get = |p: &str, policy: Option<&str>, bucket: i64| {
        rows.iter()
            .find(|r| r.processor == p && r.policy.as_deref() == policy && r.bucket == bucket)
            .map(|r| r.counts)
            .unwrap_or_else(|| panic!("no row {p} {policy:?} {bucket} in {rows:?}"))
    };
    assert_eq!(rows.len(), 4, "{rows:?}");
    let errors = get(a, Some("errors"), 0);
    assert_eq!(
        (
            errors.kept,
            errors.dropped,
            errors.error_traces,
            errors.error_kept,
            errors.slow_traces,
            errors.slow_kept
        ),
        (2, 0, 2, 2, 1, 1),
        "two error traces kept, one of them over a's 2 s"
    );
    let slow = get(a, Some("slow"), 0);
    assert_eq!((slow.kept, slow.slow_traces, slow.slow_kept), (1, 1, 1));
    let none = get(a, None, 1);
    assert_eq!(
        (none.kept, none.dropped, none.slow_traces),
        (0, 1, 0),
        "1.5 s is not slow for a processor whose latency policy says 2 s"
    );
    let other = get(b, None, 2);
    assert_eq!(
        (
            other.dropped,
            other.error_traces,
            other.error_kept,
            other.slow_traces,
            other.slow_kept
        ),
        (1, 1, 0, 1, 0),
        "b has no threshold of its own: 1.5 s ≥ the default 1 s"
    );
    // Without per-processor thresholds everything uses the default.
    let rows = store
        .decision_timeline(t0, 30_000, 1, &[], 1_000_000)
        .await
        .unwrap();
    let slow_a: u64 = rows
        .iter()
        .filter(|r| r.processor == a)
        .map(|r| r.counts.slow_traces)
        .sum();
    assert_eq!(slow_a, 3, "{rows:?}");
}

#[tokio::test]
async fn the_latest_sampling_lab_result_survives_a_reopen() {
    use collector_api::sampling::{LabTruth, SamplingLabResult, StrategyResult};
    let dir = tempfile::tempdir().unwrap();
    let result = |requests: u64| SamplingLabResult {
        finished_at_ms: 1_700_000_000_000 + requests as i64,
        requests,
        rate: 20.0,
        seed: 11,
        mix: [("checkout".to_string(), 70u32)].into_iter().collect(),
        slow_ms: 1000,
        truth: LabTruth {
            traced_requests: requests,
            traces: requests,
            spans: requests * 37,
            error_traces: 3,
            slow_traces: 4,
        },
        strategies: vec![StrategyResult {
            name: "tail".into(),
            store: "tracelab/tail".into(),
            description: "tail".into(),
            traces_kept: 9,
            traces_kept_pct: 9.0 / requests as f64 * 100.0,
            spans_kept: 300,
            spans_kept_pct: 7.5,
            error_traces_kept: 3,
            error_traces_kept_pct: 100.0,
            slow_traces_kept: 4,
            slow_traces_kept_pct: 100.0,
            partial_traces: 0,
            bytes_stored: 123_456,
            bytes_per_million_requests: 1.0e9,
        }],
    };
    {
        let store = TraceStore::open(cfg(dir.path())).await.unwrap();
        assert_eq!(store.latest_lab_result().await.unwrap(), None);
        for n in 1..=12 {
            store.insert_lab_result(&result(100 + n)).await.unwrap();
        }
        store.close().await;
    }
    let store = TraceStore::open(cfg(dir.path())).await.unwrap();
    assert_eq!(
        store.latest_lab_result().await.unwrap(),
        Some(result(112)),
        "the last one stored, after a restart"
    );
    let url = format!("sqlite:{}", dir.path().join("traces.db").display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let kept: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM lab_results")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(kept, 10, "only the latest few are kept");
}
