//! Criterion micro-benchmarks of the collector's hot paths, bounded to a few minutes in all
//! (2 s of measurement per group): OTLP protobuf decode of a 100-span export request and the
//! receiver's wire scan of the same bytes, the seed
//! tail-sampling policies deciding a trace, a 1000-span store insert, and store queries on a
//! pre-filled store. Run: `cargo bench -p collector --bench micro`.

mod common;

use std::hint::black_box;
use std::time::Duration;

use collector::config::ProcessorConfig;
use collector::processors::tail_sampling::policy::{EvalContext, Evaluator, TraceView, combine};
use collector::store::{StoreConfig, TraceQuery, TraceStore};
use common::{batch_of, checkout_trace, trace_id};
use criterion::measurement::WallTime;
use criterion::{
    BatchSize, BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main,
};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use prost::Message;

/// Base time of the generated spans: an hour ago, so the store's retention keeps them.
fn base_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        - 3_600_000_000_000
}

/// Spans of traces `first..first + n`, 10 per trace.
fn spans_of(first: u64, n: u64, base: u64) -> Vec<ResourceSpans> {
    batch_of(
        (first..first + n)
            .flat_map(|t| checkout_trace(t, base))
            .collect(),
    )
}

fn bounded<'a>(c: &'a mut Criterion, name: &str) -> BenchmarkGroup<'a, WallTime> {
    let mut g = c.benchmark_group(name);
    g.warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(10);
    g
}

fn otlp_decode(c: &mut Criterion) {
    let req = ExportTraceServiceRequest {
        resource_spans: spans_of(0, 10, base_ns()),
    };
    let bytes = req.encode_to_vec();
    let mut g = bounded(c, "otlp_decode");
    g.throughput(Throughput::Elements(100));
    g.bench_function("export_request_100_spans", |b| {
        b.iter(|| ExportTraceServiceRequest::decode(black_box(bytes.as_slice())).expect("decode"))
    });
    // What the receiver does instead for a request it can pass through (pipeline::wire).
    g.bench_function("wire_scan_100_spans", |b| {
        b.iter(|| {
            collector::pipeline::wire::scan_traces(black_box(bytes.as_slice())).expect("scan")
        })
    });
    g.finish();
}

fn tail_sampling(c: &mut Criterion) {
    // The seed's policies (errors-always, slow-traces, probabilistic 10%) from its config file.
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/config/tail-sampling.yaml");
    let loaded = collector::load_file(path).expect("tail-sampling.yaml");
    let cfg = loaded
        .processors
        .values()
        .find_map(|p| match p {
            ProcessorConfig::TailSampling(t) => Some(t.clone()),
            _ => None,
        })
        .expect("a tail_sampling processor");
    let mut evaluators: Vec<Evaluator> = cfg
        .policies
        .iter()
        .map(|p| Evaluator::build(p).expect("policy"))
        .collect();
    let base = base_ns();
    // Trace 1 is neither an error (every 50th) nor slow (every 97th): every policy is evaluated.
    let fragments = spans_of(1, 1, base);
    let id: [u8; 16] = trace_id(1).try_into().unwrap();
    let view = TraceView {
        trace_id: &id,
        fragments: &fragments,
        span_count: 10,
    };
    let cx = EvalContext {
        second: 0,
        elapsed: Duration::ZERO,
    };
    let mut g = bounded(c, "tail_sampling");
    g.throughput(Throughput::Elements(1));
    g.bench_function("seed_policies_10_span_trace", |b| {
        b.iter(|| {
            let votes: Vec<_> = evaluators
                .iter_mut()
                .map(|e| e.evaluate(black_box(&view), cx).0)
                .collect();
            combine(&votes)
        })
    });
    g.finish();
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

async fn open(dir: &tempfile::TempDir) -> TraceStore {
    TraceStore::open(StoreConfig {
        directory: dir.path().to_path_buf(),
        max_spans: 10_000_000,
        max_size_mib: 64 * 1024,
        ..Default::default()
    })
    .await
    .expect("open store")
}

fn store_insert(c: &mut Criterion) {
    let rt = rt();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = rt.block_on(open(&dir));
    let base = base_ns();
    // Each iteration inserts 100 new traces (the store grows by 1000 spans per iteration).
    let mut next = 0u64;
    let mut g = bounded(c, "store_insert");
    g.throughput(Throughput::Elements(1000));
    g.bench_function("batch_1000_spans", |b| {
        b.iter_batched(
            || {
                next += 100;
                spans_of(next, 100, base)
            },
            |batch: Vec<ResourceSpans>| rt.block_on(store.insert_spans(&batch)).expect("insert"),
            BatchSize::PerIteration,
        )
    });
    g.finish();
    rt.block_on(store.close());
}

fn store_query(c: &mut Criterion) {
    let rt = rt();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = rt.block_on(open(&dir));
    let base = base_ns();
    // 100,000 spans (10,000 traces).
    rt.block_on(async {
        for first in (0..10_000u64).step_by(100) {
            store
                .insert_spans(&spans_of(first, 100, base))
                .await
                .expect("fill");
        }
    });
    let by_service = TraceQuery {
        service: Some("payment-service".into()),
        start_us: Some(base / 1000),
        limit: 20,
        ..Default::default()
    };
    let mut g = bounded(c, "store_query");
    g.bench_function("search_by_service_limit_20", |b| {
        b.iter(|| {
            rt.block_on(store.find_traces(black_box(&by_service)))
                .expect("search")
        })
    });
    let mut n = 0u64;
    g.bench_function("trace_by_id_10_spans", |b| {
        b.iter(|| {
            n = (n + 7919) % 10_000;
            let id: [u8; 16] = trace_id(n).try_into().unwrap();
            rt.block_on(store.get_trace(&id))
                .expect("get")
                .expect("stored")
        })
    });
    g.finish();
    rt.block_on(store.close());
}

criterion_group!(micro, otlp_decode, tail_sampling, store_insert, store_query);
criterion_main!(micro);
