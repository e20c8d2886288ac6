//! Trace store bench: inserts N spans (default 1,000,000; `STORE_BENCH_SPANS`) as 10-span
//! checkout-like traces across 4 services in batches of 1000 (what the batch processor hands the
//! exporter), then measures search latency, whole-trace and windowed reads (one 100k-span trace),
//! RSS and database size. The insert phase prints spans per second of wall time and per
//! CPU-second: user + system time of this whole process from `/proc/self/stat` (SQLite's worker
//! thread included, and the bench's own span generation, a small share).
//! Run: `cargo bench -p collector --bench store`.

use std::time::{Duration, Instant};

use collector::store::{StoreConfig, TraceQuery, TraceStore};

mod common;

use common::{batch_of, checkout_trace, trace_id};
use opentelemetry_proto::tonic::trace::v1::Span;

/// What memory_limiter's `measure: heap` reads (jemalloc `stats.allocated`; 0 without jemalloc).
fn heap_mib() -> u64 {
    collector::alloc::allocated_bytes().unwrap_or(0) / 1048576
}

/// Pages jemalloc holds (allocated or not yet returned to the kernel).
fn jemalloc_resident_mib() -> u64 {
    collector::alloc::resident_bytes().unwrap_or(0) / 1048576
}

fn rss_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse().ok()))
        })
        .unwrap_or(0)
}

fn pct(mut v: Vec<Duration>, p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

async fn time_query(store: &TraceStore, name: &str, q: TraceQuery) {
    let mut samples = Vec::new();
    let mut found = 0;
    for _ in 0..20 {
        let t = Instant::now();
        found = store.find_traces(&q).await.expect("search").len();
        samples.push(t.elapsed());
    }
    println!(
        "search {name:<42} {found:>3} traces   p50 {:>8.2?}  p95 {:>8.2?}",
        pct(samples.clone(), 0.5),
        pct(samples, 0.95)
    );
}

fn main() {
    let n_spans: u64 = std::env::var("STORE_BENCH_SPANS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    // As the collector does at start: background purging, 1 s dirty decay.
    collector::alloc::tune();
    rt.block_on(async move {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = TraceStore::open(StoreConfig {
            directory: dir.path().to_path_buf(),
            max_spans: n_spans * 2 + 200_000,
            max_size_mib: 64 * 1024,
            ..Default::default()
        })
        .await
        .expect("open store");
        let base_ns = (std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64)
            - n_spans / 10 * 1_000_000
            - 60_000_000_000;
        let rss0 = rss_kib("VmRSS:");
        let traces = n_spans / 10;
        let t0 = Instant::now();
        let cpu0 = cpu_seconds();
        for chunk_start in (0..traces).step_by(100) {
            let spans: Vec<(usize, Span)> = (chunk_start..(chunk_start + 100).min(traces))
                .flat_map(|n| checkout_trace(n, base_ns))
                .collect();
            store.insert_spans(&batch_of(spans)).await.expect("insert");
        }
        let secs = t0.elapsed().as_secs_f64();
        let cpu = cpu_seconds() - cpu0;
        let st = store.stats().await.expect("stats");
        println!(
            "inserted {} spans in {secs:.1}s: {:.0} spans/s wall, {:.0} spans per CPU-second",
            st.spans,
            st.spans as f64 / secs,
            st.spans as f64 / cpu
        );
        println!(
            "database {:.0} MiB ({:.0} bytes/span); RSS {} MiB (start {} MiB, peak {} MiB)",
            st.file_bytes as f64 / 1048576.0,
            st.file_bytes as f64 / st.spans as f64,
            rss_kib("VmRSS:") / 1024,
            rss0 / 1024,
            rss_kib("VmHWM:") / 1024
        );

        // What the exporter does every prune_interval (bounds, then planner statistics).
        let t = Instant::now();
        store.prune().await.expect("prune");
        println!(
            "prune + PRAGMA optimize                       {:>8.2?}",
            t.elapsed()
        );

        let lookback = Some(base_ns / 1000);
        let q = |f: fn(&mut TraceQuery)| {
            let mut q = TraceQuery {
                limit: 20,
                start_us: lookback,
                ..Default::default()
            };
            f(&mut q);
            q
        };
        time_query(
            &store,
            "service",
            q(|q| q.service = Some("payment-service".into())),
        )
        .await;
        time_query(
            &store,
            "service+operation",
            q(|q| {
                q.service = Some("inventory-service".into());
                q.operation = Some("UPDATE stock".into());
            }),
        )
        .await;
        time_query(
            &store,
            "service+tag order.id (1 match)",
            q(|q| {
                q.service = Some("order-service".into());
                q.tags = vec![("order.id".into(), "ORD-4242".into())];
            }),
        )
        .await;
        time_query(
            &store,
            "service+tag error=true",
            q(|q| {
                q.service = Some("payment-service".into());
                q.tags = vec![("error".into(), "true".into())];
            }),
        )
        .await;
        time_query(
            &store,
            "service+minDuration 2s",
            q(|q| {
                q.service = Some("api-gateway".into());
                q.min_duration_us = Some(2_000_000);
            }),
        )
        .await;
        time_query(
            &store,
            "errors only (no service)",
            q(|q| q.errors_only = true),
        )
        .await;
        time_query(
            &store,
            "service, limit 100",
            q(|q| {
                q.service = Some("api-gateway".into());
                q.limit = 100;
            }),
        )
        .await;

        let mut samples = Vec::new();
        for i in 0..50u64 {
            let id: [u8; 16] = trace_id(i * 997 % traces).try_into().unwrap();
            let t = Instant::now();
            store.get_trace(&id).await.expect("get").expect("exists");
            samples.push(t.elapsed());
        }
        println!(
            "get_trace (10 spans)                          p50 {:>8.2?}  p95 {:>8.2?}",
            pct(samples.clone(), 0.5),
            pct(samples, 0.95)
        );

        // One 100k-span trace, read in windows of 1000.
        let huge = traces + 1;
        let hid: [u8; 16] = trace_id(huge).try_into().unwrap();
        for part in 0..100u64 {
            let spans = (0..1000u64)
                .map(|i| {
                    let k = part * 1000 + i;
                    (
                        k as usize % 4,
                        Span {
                            trace_id: hid.to_vec(),
                            span_id: (k + 1).to_be_bytes().to_vec(),
                            parent_span_id: if k == 0 {
                                vec![]
                            } else {
                                1u64.to_be_bytes().to_vec()
                            },
                            name: "batch.item".into(),
                            kind: 1,
                            start_time_unix_nano: base_ns + k * 1000,
                            end_time_unix_nano: base_ns + k * 1000 + 500,
                            ..Default::default()
                        },
                    )
                })
                .collect();
            store
                .insert_spans(&batch_of(spans))
                .await
                .expect("insert huge");
        }
        let mut samples = Vec::new();
        for off in [0u64, 25_000, 50_000, 99_000] {
            let t = Instant::now();
            let w = store
                .get_span_window(&hid, off, 1000)
                .await
                .expect("window")
                .expect("exists");
            assert_eq!(w.total, 100_000);
            samples.push(t.elapsed());
        }
        println!(
            "window of 1000 from a 100k-span trace        p50 {:>8.2?}  max {:>8.2?}",
            pct(samples.clone(), 0.5),
            pct(samples, 1.0)
        );
        let t = Instant::now();
        let whole = store.get_trace(&hid).await.expect("get").expect("exists");
        println!(
            "whole 100k-span trace read                    {:>8.2?} ({} spans)",
            t.elapsed(),
            whole.spans.len()
        );
        println!(
            "  holding it: heap {} MiB, jemalloc resident {} MiB, RSS {} MiB",
            heap_mib(),
            jemalloc_resident_mib(),
            rss_kib("VmRSS:") / 1024
        );
        drop(whole);
        println!(
            "  dropped: heap {} MiB, jemalloc resident {} MiB, RSS {} MiB",
            heap_mib(),
            jemalloc_resident_mib(),
            rss_kib("VmRSS:") / 1024
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
        println!(
            "  2 s later: heap {} MiB, jemalloc resident {} MiB, RSS {} MiB",
            heap_mib(),
            jemalloc_resident_mib(),
            rss_kib("VmRSS:") / 1024
        );
        let t = Instant::now();
        let deps = store
            .dependencies(base_ns / 1000 + 3_600_000_000, 3_600_000_000)
            .await
            .expect("deps");
        println!(
            "dependencies over all spans                   {:>8.2?} ({} links)",
            t.elapsed(),
            deps.len()
        );
        println!(
            "final RSS {} MiB, peak {} MiB, heap {} MiB",
            rss_kib("VmRSS:") / 1024,
            rss_kib("VmHWM:") / 1024,
            heap_mib()
        );
        store.close().await;
    });
}

/// User + system CPU time of this process (from /proc/self/stat, in clock ticks of 1/100 s).
fn cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some((f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?) / 100.0)
        })
        .unwrap_or(0.0)
}
