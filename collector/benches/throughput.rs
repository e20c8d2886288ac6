//! Throughput benchmark (not a test): spans per CPU-second of the `collector` binary for
//! receive → blackhole (`nop`) and receive → batch → OTLP/HTTP export (to a second collector).
//!
//! Run: `cargo bench -p collector --bench throughput` (env: BENCH_SECONDS, default 10;
//! BENCH_SPANS_PER_REQUEST, default 100; BENCH_CONCURRENCY, default 4).
//! The collector runs as a child process; its CPU time (utime + stime from /proc/PID/stat) is
//! read before and after the load, so the load generator's own CPU does not count.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

/// A request of `n` spans shaped like the checkout trace (HTTP attributes, parent links).
fn request(seed: u64, n: usize) -> Vec<u8> {
    let mut trace_id = [0u8; 16];
    trace_id[..8].copy_from_slice(&seed.to_be_bytes());
    trace_id[8] = 1;
    let spans = (0..n)
        .map(|i| Span {
            trace_id: trace_id.to_vec(),
            span_id: ((i as u64 + 1) | (seed << 20)).to_be_bytes().to_vec(),
            parent_span_id: if i == 0 {
                Vec::new()
            } else {
                (seed << 20).to_be_bytes().to_vec()
            },
            name: format!("GET /api/items/{}", i % 10),
            kind: 2,
            start_time_unix_nano: 1_700_000_000_000_000_000 + i as u64 * 1000,
            end_time_unix_nano: 1_700_000_000_000_000_000 + i as u64 * 1000 + 2_500_000,
            attributes: vec![
                kv("http.request.method", "GET"),
                kv("url.path", "/api/items"),
                kv("http.response.status_code", "200"),
                kv("server.address", "inventory-service"),
            ],
            status: Some(Status::default()),
            ..Default::default()
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", "bench-service"),
                    kv("service.version", "1.0.0"),
                ],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            schema_url: String::new(),
        }],
    }
    .encode_to_vec()
}

struct Proc {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_collector(yaml: &str) -> Proc {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bench.yaml");
    std::fs::write(&path, yaml).expect("write config");
    let child = Command::new(env!("CARGO_BIN_EXE_collector"))
        .arg("--config")
        .arg(&path)
        .env("RUST_LOG", "warn")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn collector");
    Proc { child, _dir: dir }
}

/// utime + stime of a process in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the `(comm)`; utime and stime are the 14th and 15th fields overall.
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    ticks / 100.0 // CLK_TCK is 100 on Linux
}

fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/statm"))
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map(|p| p * 4096.0 / 1048576.0)
        .unwrap_or(0.0)
}

async fn wait_healthy(port: u16) {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(r) = client.get(format!("http://127.0.0.1:{port}/")).send().await
            && r.status().is_success()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("collector on health port {port} did not become healthy");
}

struct Outcome {
    spans: u64,
    cpu: f64,
    wall: f64,
    rss: f64,
    errors: u64,
}

async fn drive(
    pid: u32,
    http_port: u16,
    seconds: u64,
    spans_per_req: usize,
    concurrency: usize,
) -> Outcome {
    let bodies: Arc<Vec<Vec<u8>>> =
        Arc::new((0..64).map(|s| request(s + 1, spans_per_req)).collect());
    let url = format!("http://127.0.0.1:{http_port}/v1/traces");
    let client = reqwest::Client::builder()
        .tcp_nodelay(true)
        .build()
        .expect("client");
    // Warm-up, not measured.
    for b in bodies.iter().take(8) {
        let _ = client
            .post(&url)
            .header("content-type", "application/x-protobuf")
            .body(b.clone())
            .send()
            .await;
    }
    let sent = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let max_requests = 2_000_000 / spans_per_req as u64 * 10; // bounded in count as well as time
    let cpu0 = cpu_seconds(pid);
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for w in 0..concurrency {
        let (client, url, bodies, sent, errors) = (
            client.clone(),
            url.clone(),
            bodies.clone(),
            sent.clone(),
            errors.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut i = w;
            while Instant::now() < deadline && sent.load(Ordering::Relaxed) < max_requests {
                let body = bodies[i % bodies.len()].clone();
                i += concurrency;
                match client
                    .post(&url)
                    .header("content-type", "application/x-protobuf")
                    .body(body)
                    .send()
                    .await
                {
                    Ok(r) if r.status().is_success() => {
                        sent.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let wall = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds(pid) - cpu0;
    Outcome {
        spans: sent.load(Ordering::Relaxed) * spans_per_req as u64,
        cpu,
        wall,
        rss: rss_mib(pid),
        errors: errors.load(Ordering::Relaxed),
    }
}

fn report(name: &str, o: &Outcome) {
    println!(
        "{name}: {} spans in {:.1}s wall, collector CPU {:.2}s -> {:.0} spans/CPU-second ({:.0} spans/s), RSS {:.0} MiB, {} failed requests",
        o.spans,
        o.wall,
        o.cpu,
        o.spans as f64 / o.cpu.max(0.001),
        o.spans as f64 / o.wall,
        o.rss,
        o.errors
    );
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` would pass nothing useful: run only as a bench.
    if !std::env::args().any(|a| a == "--bench") {
        println!("throughput: run with `cargo bench -p collector --bench throughput`");
        return;
    }
    let seconds = env_or("BENCH_SECONDS", 10);
    let spans_per_req = env_or("BENCH_SPANS_PER_REQUEST", 100) as usize;
    let concurrency = env_or("BENCH_CONCURRENCY", 4) as usize;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        println!("throughput: {spans_per_req} spans/request, {concurrency} connections, {seconds}s per scenario");

        // 1. receive -> blackhole
        let (http, health) = (free_port(), free_port());
        let p = spawn_collector(&format!(
            "receivers:\n  otlp:\n    protocols:\n      http: {{endpoint: 127.0.0.1:{http}}}\nexporters:\n  nop:\nextensions:\n  health_check: {{endpoint: 127.0.0.1:{health}}}\nservice:\n  extensions: [health_check]\n  pipelines:\n    traces: {{receivers: [otlp], exporters: [nop]}}\n"
        ));
        wait_healthy(health).await;
        let o = drive(p.child.id(), http, seconds, spans_per_req, concurrency).await;
        report("receive -> blackhole (OTLP/HTTP protobuf -> nop)", &o);
        drop(p);

        // 2. receive -> batch -> OTLP/HTTP export to a second collector (a blackhole)
        let (b_http, b_health) = (free_port(), free_port());
        let b = spawn_collector(&format!(
            "receivers:\n  otlp:\n    protocols:\n      http: {{endpoint: 127.0.0.1:{b_http}}}\nexporters:\n  nop:\nextensions:\n  health_check: {{endpoint: 127.0.0.1:{b_health}}}\nservice:\n  extensions: [health_check]\n  pipelines:\n    traces: {{receivers: [otlp], exporters: [nop]}}\n"
        ));
        wait_healthy(b_health).await;
        let (a_http, a_health) = (free_port(), free_port());
        let a = spawn_collector(&format!(
            "receivers:\n  otlp:\n    protocols:\n      http: {{endpoint: 127.0.0.1:{a_http}}}\nprocessors:\n  batch: {{timeout: 200ms, send_batch_size: 8192}}\nexporters:\n  otlphttp:\n    endpoint: http://127.0.0.1:{b_http}\n    compression: none\nextensions:\n  health_check: {{endpoint: 127.0.0.1:{a_health}}}\nservice:\n  extensions: [health_check]\n  pipelines:\n    traces: {{receivers: [otlp], processors: [batch], exporters: [otlphttp]}}\n"
        ));
        wait_healthy(a_health).await;
        let o = drive(a.child.id(), a_http, seconds, spans_per_req, concurrency).await;
        report("receive -> batch -> OTLP/HTTP export (collector A's CPU)", &o);
        drop(a);
        drop(b);
    });
}
