//! Service-map bench: fills a store with N spans (default 1,000,000; `MAP_BENCH_SPANS`) of
//! 16-span checkout traces spread over the last hour (`MAP_BENCH_HOURS`), each service exporting its own batches of
//! ~1000 spans in a rotating order (so parents arrive after their children as often as before),
//! then serves the query API on 127.0.0.1:0 and times `GET /api/v1/dependencies` and Jaeger's
//! `GET /api/dependencies` (both read the per-minute aggregate) for 5 m, 1 h and 24 h, against the
//! join over the stored spans that `/api/dependencies` ran before (`dependencies_scan`).
//! Run: `cargo bench -p collector --bench service_map`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use collector::connectors::spanmetrics::red::RedRegistry;
use collector::query::{StoreRegistry, router};
use collector::sampling::SamplingRegistry;
use collector::store::{StoreConfig, TraceStore};
use collector_api::dependencies::DependenciesResponse;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::Link;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};

const SERVICES: [&str; 4] = [
    "api-gateway",
    "order-service",
    "payment-service",
    "inventory-service",
];

/// (service, parent index, name, kind, start offset ms, duration ms) of one span.
type SpanShape = (usize, Option<usize>, &'static str, i32, u64, u64);

/// The checkout's spans.
const SHAPE: [SpanShape; 16] = [
    (0, None, "POST /orders", 2, 0, 60),
    (0, Some(0), "authenticate", 1, 1, 2),
    (0, Some(0), "POST", 3, 3, 55),
    (1, Some(2), "POST /orders", 2, 4, 52),
    (1, Some(3), "process_order", 1, 5, 50),
    (1, Some(4), "INSERT orders", 3, 6, 3),
    (1, Some(4), "POST", 3, 10, 25),
    (2, Some(6), "POST /charges", 2, 11, 23),
    (2, Some(7), "charge", 1, 12, 21),
    (2, Some(8), "stripe.create_charge", 3, 13, 18),
    (1, Some(4), "POST", 3, 36, 12),
    (3, Some(10), "POST /reservations", 2, 37, 10),
    (3, Some(11), "UPDATE stock", 3, 38, 6),
    (1, Some(4), "send orders", 4, 50, 2),
    (3, Some(13), "process orders", 5, 53, 5),
    (3, Some(14), "send_confirmation_email", 1, 54, 3),
];

fn kv(key: &str, v: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

fn span_id(n: u64, i: usize) -> Vec<u8> {
    (n * 32 + i as u64 + 1).to_be_bytes().to_vec()
}

/// Trace `n` starting at `start_ns`, spans per service (every 50th declined, durations jittered).
fn checkout(n: u64, start_ns: u64) -> [Vec<Span>; 4] {
    let mut trace_id = vec![0u8; 16];
    trace_id[..8].copy_from_slice(&0x6d61_7062_656e_6368u64.to_be_bytes());
    trace_id[8..].copy_from_slice(&n.to_be_bytes());
    let jitter = 1.0 + (n % 17) as f64 / 10.0;
    let mut out: [Vec<Span>; 4] = Default::default();
    for (i, (svc, parent, name, kind, off, dur)) in SHAPE.iter().enumerate() {
        let start = start_ns + off * 1_000_000;
        let mut s = Span {
            trace_id: trace_id.clone(),
            span_id: span_id(n, i),
            parent_span_id: parent.map(|p| span_id(n, p)).unwrap_or_default(),
            name: (*name).into(),
            kind: *kind,
            start_time_unix_nano: start,
            end_time_unix_nano: start + (*dur as f64 * jitter * 1e6) as u64,
            attributes: vec![kv("http.request.method", "POST")],
            status: (n.is_multiple_of(50) && (7..=9).contains(&i)).then(|| Status {
                code: 2,
                message: "card declined".into(),
            }),
            ..Default::default()
        };
        if matches!(kind, 4 | 5) {
            s.attributes = vec![
                kv("messaging.system", "kafka"),
                kv("messaging.destination.name", "orders"),
            ];
        }
        if *kind == 5 {
            s.links = vec![Link {
                trace_id: trace_id.clone(),
                span_id: span_id(n, 13),
                ..Default::default()
            }];
        }
        out[*svc].push(s);
    }
    out
}

fn resource_spans(svc: usize, spans: Vec<Span>) -> ResourceSpans {
    ResourceSpans {
        resource: Some(Resource {
            attributes: vec![kv("service.name", SERVICES[svc])],
            ..Default::default()
        }),
        scope_spans: vec![ScopeSpans {
            spans,
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn pct(mut v: Vec<Duration>, p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let n_spans: u64 = std::env::var("MAP_BENCH_SPANS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let hours: u64 = std::env::var("MAP_BENCH_HOURS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .max(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    collector::alloc::tune();
    rt.block_on(async move {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(
            TraceStore::open(StoreConfig {
                directory: dir.path().to_path_buf(),
                max_spans: n_spans * 2,
                max_size_mib: 64 * 1024,
                ..Default::default()
            })
            .await
            .expect("open store"),
        );
        let now_ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        let traces = n_spans.div_ceil(SHAPE.len() as u64);
        // Spread over the hours before now.
        let span_ns = hours * 3_600_000_000_000;
        let step_ns = span_ns / traces;
        let first_ns = now_ns - span_ns;
        let per_batch = 1000 / SHAPE.len() as u64 * SERVICES.len() as u64;
        let t0 = Instant::now();
        for (b, chunk_start) in (0..traces).step_by(per_batch as usize).enumerate() {
            let mut per: [Vec<Span>; 4] = Default::default();
            for n in chunk_start..(chunk_start + per_batch).min(traces) {
                for (svc, spans) in checkout(n, first_ns + n * step_ns).into_iter().enumerate() {
                    per[svc].extend(spans);
                }
            }
            // Rotate which service's batch arrives first.
            for k in 0..SERVICES.len() {
                let svc = (k + b) % SERVICES.len();
                let spans = std::mem::take(&mut per[svc]);
                store
                    .insert_spans(&[resource_spans(svc, spans)])
                    .await
                    .expect("insert");
            }
        }
        let secs = t0.elapsed().as_secs_f64();
        println!(
            "inserted {} spans ({traces} traces over {hours} h) in {secs:.1}s: {:.0} spans/s, service map kept up to date",
            store.span_count(),
            store.span_count() as f64 / secs
        );

        let mut registry = StoreRegistry::default();
        registry.insert("tracelab", store.clone());
        let app = router(
            "tracelab",
            Arc::new(registry),
            Arc::new(SamplingRegistry::default()),
            Arc::new(RedRegistry::default()),
        )
        .expect("router");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        let http = reqwest::Client::new();
        let end_ms = now_ns / 1_000_000;
        for (label, lookback_ms) in [("5m", 300_000u64), ("1h", 3_600_000), ("24h", 86_400_000)] {
            let url = format!("{base}/api/v1/dependencies?endTs={end_ms}&lookback={lookback_ms}");
            let mut samples = Vec::new();
            let mut answer = None;
            for _ in 0..20 {
                let t = Instant::now();
                let r: DependenciesResponse = http
                    .get(&url)
                    .send()
                    .await
                    .expect("GET")
                    .error_for_status()
                    .expect("200")
                    .json()
                    .await
                    .expect("json");
                samples.push(t.elapsed());
                answer = Some(r);
            }
            let a = answer.unwrap();
            let calls: u64 = a.edges.iter().map(|e| e.calls).sum();
            println!(
                "GET /api/v1/dependencies lookback {label:<4} p50 {:>8.2?}  p95 {:>8.2?}  ({} nodes, {} edges, {calls} edge calls)",
                pct(samples.clone(), 0.5),
                pct(samples, 0.95),
                a.nodes.len(),
                a.edges.len()
            );
            let url = format!("{base}/api/dependencies?endTs={end_ms}&lookback={lookback_ms}");
            let mut samples = Vec::new();
            for _ in 0..20 {
                let t = Instant::now();
                http.get(&url)
                    .send()
                    .await
                    .expect("GET")
                    .error_for_status()
                    .expect("200")
                    .bytes()
                    .await
                    .expect("body");
                samples.push(t.elapsed());
            }
            println!(
                "GET /api/dependencies    lookback {label:<4} p50 {:>8.2?}  p95 {:>8.2?}  (from the aggregate)",
                pct(samples.clone(), 0.5),
                pct(samples, 0.95)
            );
            let mut samples = Vec::new();
            let mut links = Vec::new();
            for _ in 0..3 {
                let t = Instant::now();
                links = store
                    .dependencies_scan(end_ms * 1000, lookback_ms * 1000)
                    .await
                    .expect("scan");
                samples.push(t.elapsed());
            }
            let fast = store
                .dependencies(end_ms * 1000, lookback_ms * 1000)
                .await
                .expect("fast");
            println!(
                "old join over the spans  lookback {label:<4} p50 {:>8.2?}  max {:>8.2?}  ({} links; same counts as the aggregate: {})",
                pct(samples.clone(), 0.5),
                pct(samples, 1.0),
                links.len(),
                // The aggregate counts whole minutes, so a window cutting through a minute differs.
                links == fast
            );
        }
        store.close().await;
    });
}
