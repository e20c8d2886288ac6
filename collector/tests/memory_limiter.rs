//! memory_limiter measures the heap it limits (jemalloc's `stats.allocated`, this test binary
//! links the collector lib whose default `jemalloc` feature makes it the global allocator): after
//! a 100,000-span trace is stored and read back whole through `/api/traces/{id}`, ingest is
//! accepted again within one `check_interval`, although the process RSS (what the limiter used
//! to measure) stays above the soft limit.
//!
//! `cargo test -p collector --test memory_limiter -- --nocapture` prints heap and RSS per stage.
//! Without the `jemalloc` feature there is no heap to measure (the unit tests check that the
//! collector then refuses to start with `measure: heap`).
#![cfg(feature = "jemalloc")]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use collector::processors::memory_limiter::measure::{heap_allocated_bytes, process_rss_bytes};
use common::*;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;

const SPANS: usize = 100_000;
const PER_REQUEST: usize = 5_000;
const CHECK_INTERVAL: Duration = Duration::from_millis(500);
/// limit_mib 80, spike_limit_mib 16: soft limit 64 MiB.
const SOFT_LIMIT: u64 = 64 * 1024 * 1024;
const MIB: u64 = 1024 * 1024;

fn config(dir: &std::path::Path) -> String {
    format!(
        "receivers:
  otlp:
    protocols:
      http: {{endpoint: 127.0.0.1:0}}
processors:
  memory_limiter:
    check_interval: {}ms
    limit_mib: 80
    spike_limit_mib: 16
  batch: {{timeout: 50ms}}
exporters:
  tracelab:
    storage: {{directory: {}, retention: 8760h{}}}
    query: {{endpoint: 127.0.0.1:0}}
service:
  pipelines:
    traces: {{receivers: [otlp], processors: [memory_limiter, batch], exporters: [tracelab]}}
",
        CHECK_INTERVAL.as_millis(),
        dir.display(),
        // For comparing page-cache bounds by hand: ML_TEST_CACHE_MIB=64 (the old fixed size).
        std::env::var("ML_TEST_CACHE_MIB")
            .map(|m| format!(", cache_size_mib: {m}"))
            .unwrap_or_default()
    )
}

fn request(trace_id: [u8; 16], from: usize, n: usize) -> ExportTraceServiceRequest {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let spans = (from..from + n)
        .map(|i| Span {
            trace_id: trace_id.to_vec(),
            span_id: (i as u64 + 1).to_be_bytes().to_vec(),
            parent_span_id: if i == 0 {
                vec![]
            } else {
                ((i as u64 - 1) / 10 + 1).to_be_bytes().to_vec()
            },
            name: format!("op-{}", i % 50),
            kind: 2,
            start_time_unix_nano: now + i as u64 * 1000,
            end_time_unix_nano: now + i as u64 * 1000 + 500_000,
            attributes: vec![
                kv("http.route", &format!("/api/items/{}", i % 100)),
                kv("tracelab.test", "memory_limiter"),
                kv("span.index", &i.to_string()),
            ],
            ..Default::default()
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![service_spans("big", spans)],
    }
}

fn mib(b: u64) -> u64 {
    b / MIB
}

fn stage(what: &str) -> (u64, u64) {
    let heap = heap_allocated_bytes().expect("jemalloc statistics in this test binary");
    let rss = process_rss_bytes().unwrap();
    let resident = collector::alloc::resident_bytes().unwrap_or(0);
    println!(
        "{what:<40} heap {:>4} MiB  jemalloc resident {:>4} MiB  rss {:>4} MiB",
        mib(heap),
        mib(resident),
        mib(rss)
    );
    (heap, rss)
}

async fn post(http: &reqwest::Client, url: &str, body: Vec<u8>) -> reqwest::StatusCode {
    http.post(url)
        .header("content-type", "application/x-protobuf")
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_is_accepted_again_after_a_100k_span_read() {
    let t0 = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let c = start(&config(dir.path())).await;
    let url = format!("http://{}/v1/traces", c.addr("otlp/http").unwrap());
    let query = c.addr("query").unwrap();
    let http = reqwest::Client::new();
    let trace_id = [0x9a; 16];
    let hex: String = trace_id.iter().map(|b| format!("{b:02x}")).collect();
    stage("started");

    // Ingest: a refused request (503) is retried, as an OTLP sender does.
    let ingest_deadline = Instant::now() + Duration::from_secs(120);
    for from in (0..SPANS).step_by(PER_REQUEST) {
        let body = request(trace_id, from, PER_REQUEST).encode_to_vec();
        loop {
            match post(&http, &url, body.clone()).await {
                s if s.is_success() => break,
                reqwest::StatusCode::SERVICE_UNAVAILABLE => {
                    assert!(Instant::now() < ingest_deadline, "ingest refused for 120 s");
                    // The sender's backoff before it retries.
                    tokio::time::sleep(Duration::from_millis(100)).await
                }
                s => panic!("ingest: {s}"),
            }
        }
    }
    let window = format!("http://{query}/api/v1/traces/{hex}/spans?limit=1");
    eventually("all spans in the store", async || {
        let v: serde_json::Value = reqwest::get(&window).await.ok()?.json().await.ok()?;
        (v["total"].as_u64()? == SPANS as u64).then_some(())
    })
    .await;
    let ingested = t0.elapsed();
    stage(&format!("{SPANS} spans stored ({ingested:.1?})"));

    // The biggest read the API allows: the whole trace.
    let peak = Arc::new(AtomicU64::new(0));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (peak, sampling) = (peak.clone(), sampling.clone());
        tokio::spawn(async move {
            while sampling.load(Ordering::Relaxed) {
                peak.fetch_max(heap_allocated_bytes().unwrap_or(0), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let t_read = Instant::now();
    let resp = http
        .get(format!("http://{query}/api/traces/{hex}"))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
    let body = resp.bytes().await.unwrap();
    let read_took = t_read.elapsed();
    // The peak is the collector's side (plus the response bytes here), not the parse below.
    sampling.store(false, Ordering::Relaxed);
    sampler.await.unwrap();
    let spans = serde_json::from_slice::<serde_json::Value>(&body).unwrap()["data"][0]["spans"]
        .as_array()
        .map(Vec::len);
    assert_eq!(spans, Some(SPANS));
    let json_mib = body.len() as u64 / MIB;
    drop(body);
    let (heap, rss) = stage(&format!(
        "after the read ({json_mib} MiB JSON, {read_took:.1?})"
    ));
    println!(
        "{:<40} heap {:>4} MiB",
        "  heap peak during the read",
        mib(peak.load(Ordering::Relaxed))
    );

    // Within one check_interval the limiter's reading is back under the soft limit.
    let accept_by = Instant::now() + CHECK_INTERVAL + Duration::from_millis(100);
    let status = loop {
        let status = post(&http, &url, request([0x9b; 16], 0, 10).encode_to_vec()).await;
        if status.is_success() || Instant::now() >= accept_by {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let (_, rss_then) = stage("one check_interval later");
    assert!(
        status.is_success(),
        "ingest refused one check_interval after the read: {status} (heap {} MiB, soft limit {} MiB)",
        mib(heap),
        mib(SOFT_LIMIT)
    );
    assert!(heap < SOFT_LIMIT, "heap {} MiB", mib(heap));
    // What the limiter used to measure would still refuse everything.
    assert!(
        rss > SOFT_LIMIT && rss_then > SOFT_LIMIT,
        "RSS {} / {} MiB is not above the soft limit {} MiB: the test no longer shows the difference",
        mib(rss),
        mib(rss_then),
        mib(SOFT_LIMIT)
    );

    // How RSS falls afterwards is the store bench's to show (`cargo bench -p collector --bench store`).
    c.shutdown().await;
    println!("total {:.1?}", t0.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_measurement_that_is_unavailable_refuses_to_start() {
    // measure: cgroup needs cgroup v2; where it is present this starts, elsewhere it must fail
    // with an error naming memory_limiter (never a limiter that limits nothing).
    let yaml = "receivers:
  otlp:
    protocols:
      http: {endpoint: 127.0.0.1:0}
processors:
  memory_limiter: {measure: cgroup, limit_percentage: 80, spike_limit_percentage: 20}
exporters:
  nop:
service:
  pipelines:
    traces: {receivers: [otlp], processors: [memory_limiter], exporters: [nop]}
";
    let cfg = collector::load_str(yaml, "test.yaml").unwrap();
    let available = collector::processors::memory_limiter::measure::Cgroup::current().is_some();
    match collector::Collector::start(cfg).await {
        Ok(c) => {
            assert!(available, "started without cgroup v2");
            c.shutdown().await;
        }
        Err(e) => {
            assert!(!available, "cgroup v2 is here, yet: {e}");
            let msg = e.to_string();
            assert!(
                msg.contains("memory_limiter") && msg.contains("cgroup v2"),
                "{msg}"
            );
        }
    }
}
