//! JSON log lines on stdout carry the trace id and span id of the span they were
//! emitted in. The test re-runs itself as a child process (stdout is the real stdout
//! there, and `init` installs its global subscriber in a fresh process).

use std::process::Command;

use serde_json::Value;

const CHILD: &str = "TELEMETRY_JSON_LOGS_CHILD";

#[test]
fn log_lines_carry_the_trace_of_their_span() {
    let output = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_process_logs",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .env("OTEL_SDK_DISABLED", "true")
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let marker = stdout
        .lines()
        .find_map(|l| l.strip_prefix("CHILD_IDS="))
        .expect("child printed its ids");
    let (trace_id, span_id) = marker.split_once(',').unwrap();
    let lines: Vec<Value> = stdout
        .lines()
        // libtest may print `test name ... ` in front of the child's first line.
        .filter_map(|l| l.find('{').map(|i| &l[i..]))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let inside = lines
        .iter()
        .find(|l| l["message"] == "charging card ending 4242")
        .unwrap_or_else(|| panic!("no log line inside the span in:\n{stdout}"));
    assert_eq!(inside["trace_id"], trace_id);
    assert_eq!(inside["span_id"], span_id);
    assert_eq!(inside["level"], "INFO");
    assert_eq!(inside["span"], "charge");
    assert_eq!(inside["amount_cents"], 14999);
    assert!(inside["timestamp"].as_str().unwrap().contains('T'));

    let outside = lines
        .iter()
        .find(|l| l["message"] == "outside any span")
        .unwrap();
    assert!(outside.get("trace_id").is_none(), "{outside}");
    let filtered = lines.iter().any(|l| l["message"] == "debug noise");
    assert!(!filtered, "RUST_LOG=info filters debug lines");
}

#[test]
fn child_process_logs() {
    if std::env::var(CHILD).is_err() {
        return; // only meaningful when started by the test above
    }
    let _guard = telemetry::init("json-logs-test", env!("CARGO_PKG_VERSION")).unwrap();
    tracing::info!("outside any span");
    let span = tracing::info_span!("charge");
    let _entered = span.enter();
    tracing::debug!("debug noise");
    tracing::info!(amount_cents = 14999, "charging card ending 4242");
    let ids = {
        use opentelemetry::trace::TraceContextExt;
        use tracing_opentelemetry::OpenTelemetrySpanExt;
        let cx = span.context();
        let sc = cx.span().span_context().clone();
        format!("{},{}", sc.trace_id(), sc.span_id())
    };
    println!("CHILD_IDS={ids}");
}
