//! Back-pressure against a real OpenTelemetry SDK: opentelemetry-python's OTLP exporters (gRPC
//! and HTTP/protobuf, pinned versions in a venv under the cargo target dir, reused across runs)
//! export one trace to a collector whose memory_limiter refuses the first requests; the SDK
//! retries on its own, and once the refusals end every span is in the store exactly once.
//!
//! Needs `python3` (3.8+) and PyPI the first time (the venv is then reused); fails, never skips,
//! when either is missing.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use collector_api::jaeger::{JaegerResponse, Trace};
use common::*;

/// Pinned: `opentelemetry-sdk` and both OTLP exporters are released together.
const OTEL_PYTHON: &str = "1.39.1";
const PACKAGES: [&str; 3] = [
    "opentelemetry-sdk",
    "opentelemetry-exporter-otlp-proto-grpc",
    "opentelemetry-exporter-otlp-proto-http",
];
/// Spans in the exported trace.
const SPANS: usize = 5;
/// Requests the collector refuses before accepting again (the SDKs retry 5 times).
const REFUSALS: u64 = 2;

static VENV: Mutex<Option<PathBuf>> = Mutex::new(None);

fn run(cmd: &mut Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}): {cmd:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The venv's python, creating the venv (pip install from PyPI) when it is missing.
fn python() -> PathBuf {
    let mut guard = VENV.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(p) = guard.as_ref() {
        return p.clone();
    }
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("python-otel-{OTEL_PYTHON}"));
    let marker = dir.join(".installed");
    let py = dir.join("bin").join("python");
    if !marker.exists() {
        let _ = std::fs::remove_dir_all(&dir);
        run(
            Command::new("python3").arg("-m").arg("venv").arg(&dir),
            "creating the Python venv (python3 -m venv)",
        );
        let mut pip = Command::new("timeout");
        pip.arg("600")
            .arg(dir.join("bin").join("pip"))
            .args([
                "install",
                "--disable-pip-version-check",
                "--no-input",
                "--quiet",
            ])
            .args(PACKAGES.iter().map(|p| format!("{p}=={OTEL_PYTHON}")));
        run(
            &mut pip,
            "pip install of the OpenTelemetry Python SDK (needs PyPI)",
        );
        std::fs::write(&marker, OTEL_PYTHON).unwrap();
    }
    *guard = Some(py.clone());
    py
}

/// Creates one trace of `SPANS` spans and exports it with the SDK's own OTLP exporter (and its
/// own retry logic); prints the trace id and the export result, exits 0 on SUCCESS.
const SCRIPT: &str = r#"
import sys, time
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

proto, endpoint, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
if proto == "grpc":
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    exporter = OTLPSpanExporter(endpoint=endpoint, insecure=True, timeout=25)
else:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    exporter = OTLPSpanExporter(endpoint=endpoint, timeout=25)
memory = InMemorySpanExporter()
provider = TracerProvider(resource=Resource.create({"service.name": "python-" + proto}))
provider.add_span_processor(SimpleSpanProcessor(memory))
tracer = provider.get_tracer("tracelab.retry-test")
with tracer.start_as_current_span("root"):
    for i in range(n - 1):
        with tracer.start_as_current_span("child-%d" % i):
            pass
spans = memory.get_finished_spans()
print("TRACE", format(spans[0].context.trace_id, "032x"), flush=True)
t0 = time.time()
result = exporter.export(spans)
print("RESULT", result.name, "%.2fs" % (time.time() - t0), flush=True)
exporter.shutdown()
sys.exit(0 if result == SpanExportResult.SUCCESS else 1)
"#;

fn config(dir: &Path) -> String {
    format!(
        "receivers:
  otlp:
    protocols:
      grpc: {{endpoint: 127.0.0.1:0}}
      http: {{endpoint: 127.0.0.1:0}}
processors:
  memory_limiter:
    check_interval: 10ms
    limit_mib: 100
    spike_limit_mib: 20
  batch: {{timeout: 50ms}}
exporters:
  tracelab:
    storage: {{directory: {}}}
    query: {{endpoint: 127.0.0.1:0}}
service:
  pipelines:
    traces: {{receivers: [otlp], processors: [memory_limiter, batch], exporters: [tracelab]}}
",
        dir.display()
    )
}

async fn sdk_retries_until_accepted(proto: &str) {
    let py = tokio::task::spawn_blocking(python).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("export.py");
    std::fs::write(&script, SCRIPT).unwrap();
    // 90 MiB > the 80 MiB soft limit: the memory_limiter refuses until the reading drops.
    let reading = Arc::new(AtomicU64::new(90 * 1024 * 1024));
    let probe = reading.clone();
    let opts = collector::StartOptions {
        memory_probe: Some(Arc::new(move || probe.load(Ordering::Relaxed))),
    };
    let c = start_with(&config(&dir.path().join("store")), opts).await;
    let endpoint = match proto {
        "grpc" => c.addr("otlp/grpc").unwrap().to_string(),
        _ => format!("http://{}/v1/traces", c.addr("otlp/http").unwrap()),
    };
    let limiter = c
        .self_metrics()
        .counters("memory_limiter", "traces")
        .unwrap();
    let store = c.self_metrics().counters("tracelab", "traces").unwrap();
    // (The limiter reads the probe once at start: it refuses from the first request on.)

    let mut child = Command::new(&py)
        .arg(&script)
        .args([proto, &endpoint, &SPANS.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python runs");
    let started = Instant::now();
    let deadline = started + Duration::from_secs(60);
    let mut released = false;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if !released && limiter.refused.load(Ordering::Relaxed) >= REFUSALS * SPANS as u64 {
            // The SDK was refused REFUSALS times (and retried): accept from now on.
            reading.store(10 * 1024 * 1024, Ordering::Relaxed);
            released = true;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            break child.wait().unwrap();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let log = format!(
        "python {proto} exporter ({status}, {:?}):\nstdout:\n{stdout}\nstderr:\n{}",
        started.elapsed(),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{log}");
    assert!(
        released,
        "the collector never refused {REFUSALS} times: {log}"
    );
    assert!(status.success(), "the SDK's export did not succeed: {log}");
    assert!(stdout.contains("RESULT SUCCESS"), "{log}");
    if proto == "grpc" {
        // The SDK waited what the RetryInfo said (its own backoff is 2^n s ± 20 %).
        let stderr = String::from_utf8_lossy(&out.stderr);
        let waits: Vec<&str> = stderr
            .lines()
            .filter_map(|l| l.split("retrying in ").nth(1))
            .collect();
        assert!(
            !waits.is_empty() && waits.iter().all(|w| w.starts_with("1.00s")),
            "{log}"
        );
    }
    let trace_id = stdout
        .lines()
        .find_map(|l| l.strip_prefix("TRACE "))
        .unwrap_or_else(|| panic!("no trace id printed: {log}"))
        .trim()
        .to_string();
    assert_eq!(
        limiter.refused.load(Ordering::Relaxed),
        REFUSALS * SPANS as u64,
        "refused exactly {REFUSALS} times before the release: {log}"
    );

    eventually("the trace in the store", async || {
        (store.received.load(Ordering::Relaxed) >= SPANS as u64).then_some(())
    })
    .await;
    // One accepted request: the store received every span once (no retry got through twice).
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        store.received.load(Ordering::Relaxed),
        SPANS as u64,
        "{log}"
    );
    let url = format!("http://{}/api/traces/{trace_id}", c.addr("query").unwrap());
    let resp: JaegerResponse<Vec<Trace>> = reqwest::get(&url).await.unwrap().json().await.unwrap();
    let spans = &resp.data[0].spans;
    let mut ids: Vec<&str> = spans.iter().map(|s| s.span_id.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!((spans.len(), ids.len()), (SPANS, SPANS), "{spans:?}");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_grpc_exporter_retries_refusals_and_its_spans_arrive_once() {
    sdk_retries_until_accepted("grpc").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_http_exporter_retries_refusals_and_its_spans_arrive_once() {
    sdk_retries_until_accepted("http").await;
}
