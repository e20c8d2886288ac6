//! `loadgen run` against the real stack (the binaries `make test` builds): what the summary
//! says was served must be what the gateway itself counted — its own
//! `http.server.request.duration` histogram and the collector's span metrics, both read from the
//! collector's Prometheus endpoint, as deltas over the run.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use lab::Stack;
use lab::harness::{Shared, bin_dir, require_binaries, start_shared};
use loadgen::RunSummary;

/// The stack whose counters the summary is checked against: nothing else sends to it.
fn counted_stack() -> &'static Stack {
    static S: OnceLock<Result<Shared, String>> = OnceLock::new();
    started(&S, "loadgen-counted")
}

/// A second stack for the other tests, so their requests never reach the counted one.
fn other_stack() -> &'static Stack {
    static S: OnceLock<Result<Shared, String>> = OnceLock::new();
    started(&S, "loadgen-other")
}

fn started(cell: &'static OnceLock<Result<Shared, String>>, name: &str) -> &'static Stack {
    match cell.get_or_init(|| {
        require_binaries(&bin_dir(), &["loadgen"]);
        start_shared(name, |_| {})
    }) {
        Ok(s) => &s.stack,
        Err(e) => panic!("{e}"),
    }
}

/// Runs the `loadgen` binary; returns its summary and its terminal output.
fn loadgen(args: &[&str], dir: &Path, name: &str) -> (RunSummary, String) {
    let summary = dir.join(format!("{name}.json"));
    let out = std::process::Command::new(bin_dir().join("loadgen"))
        .args(args)
        .arg("--summary")
        .arg(&summary)
        .args(["--progress", "lines"])
        .output()
        .expect("run loadgen");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "loadgen failed:\n{text}");
    let s: RunSummary = serde_json::from_str(&std::fs::read_to_string(&summary).unwrap())
        .unwrap_or_else(|e| panic!("summary {}: {e}", summary.display()));
    assert!(
        summary.with_extension("svg").is_file(),
        "the latency plot is written beside the summary"
    );
    (s, text)
}

/// Sum of the samples of `metric` whose labels contain every `(key, value)` of `having`, keyed by
/// the value of label `by` (a tiny reader of the Prometheus text format, enough for counters).
fn scrape(text: &str, metric: &str, having: &[(&str, &str)], by: &str) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(metric) else {
            continue;
        };
        let Some(labels) = rest.strip_prefix('{') else {
            continue;
        };
        let Some((labels, value)) = labels.split_once("} ") else {
            continue;
        };
        let pairs: BTreeMap<&str, &str> = labels
            .split("\",")
            .filter_map(|kv| kv.split_once("=\""))
            .map(|(k, v)| (k, v.trim_end_matches('"')))
            .collect();
        if having.iter().all(|(k, v)| pairs.get(k) == Some(v))
            && let (Some(key), Ok(v)) = (pairs.get(by), value.trim().parse::<f64>())
        {
            *out.entry(key.to_string()).or_default() += v as u64;
        }
    }
    out
}

async fn gateway_counts(stack: &Stack) -> (BTreeMap<String, u64>, u64) {
    let text = reqwest::get(&stack.urls.prometheus)
        .await
        .expect("scrape the collector's Prometheus endpoint")
        .text()
        .await
        .unwrap();
    let by_status = scrape(
        &text,
        "http_server_request_duration_seconds_count",
        &[("job", "api-gateway"), ("http_route", "/orders")],
        "http_response_status_code",
    );
    let spans = scrape(
        &text,
        "traces_span_metrics_calls_total",
        &[
            ("job", "api-gateway"),
            ("span_name", "POST /orders"),
            ("span_kind", "SPAN_KIND_SERVER"),
        ],
        "job",
    );
    (by_status, spans.values().sum())
}

fn delta(after: &BTreeMap<String, u64>, before: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0)))
        .filter(|(_, v)| *v > 0)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_summary_counts_what_the_gateway_served_and_a_seed_repeats_the_run() {
    let stack = counted_stack();
    let dir = tempfile::tempdir().unwrap();
    let (before, spans_before) = gateway_counts(stack).await;
    let args = [
        "run",
        "--target",
        &stack.urls.gateway,
        "--rate",
        "25",
        "--duration",
        "4s",
        "--mix",
        "checkout=80,payment.declined=10,inventory.out_of_stock=10",
        "--seed",
        "7",
    ];
    let (s, text) = loadgen(&args, dir.path(), "first");
    eprintln!("{text}");
    assert_eq!((s.planned, s.sent, s.completed), (100, 100, 100), "{text}");
    assert_eq!(
        s.errors, 0,
        "every answer is one its scenario explains:\n{text}"
    );
    assert!(!s.cap_reached);
    let declined = s
        .scenarios
        .iter()
        .find(|x| x.name == "payment.declined")
        .unwrap();
    assert_eq!(declined.statuses.get("402"), Some(&declined.requests));
    let sold_out = s
        .scenarios
        .iter()
        .find(|x| x.name == "inventory.out_of_stock")
        .unwrap();
    assert_eq!(sold_out.statuses.get("409"), Some(&sold_out.requests));
    assert!(
        text.contains("p99 ms") && text.contains("payment.declined"),
        "{text}"
    );

    // The gateway exports its metrics every 5 s (OTEL_METRIC_EXPORT_INTERVAL in the launcher) and
    // the span metrics flush every 15 s: wait for the counters to catch up, bounded.
    let deadline = Instant::now() + Duration::from_secs(60);
    let (served, spans) = loop {
        let (after, spans_after) = gateway_counts(stack).await;
        let served = delta(&after, &before);
        let spans = spans_after - spans_before;
        if (served == s.statuses && spans == s.completed) || Instant::now() > deadline {
            break (served, spans);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(
        served, s.statuses,
        "the gateway's http.server.request.duration counts by status vs loadgen's summary"
    );
    assert_eq!(
        spans, s.completed,
        "the gateway's POST /orders server spans"
    );

    // Same seed, same flags: the same sequence of scenarios, so the same counts per scenario.
    let (again, _) = loadgen(&args, dir.path(), "again");
    let shape = |s: &RunSummary| {
        s.scenarios
            .iter()
            .map(|x| (x.name.clone(), x.requests, x.statuses.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(shape(&again), shape(&s));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_concurrency_cap_is_warned_and_waiting_counts_as_latency() {
    let stack = other_stack();
    let dir = tempfile::tempdir().unwrap();
    // One request at a time, 200 arrivals a second: the 5 ms between arrivals is shorter than the
    // card provider's simulated 8 ms charge alone, so requests queue behind the cap however fast
    // the rest of the checkout is.
    let (s, text) = loadgen(
        &[
            "run",
            "--target",
            &stack.urls.gateway,
            "--rate",
            "200",
            "--duration",
            "500ms",
            "--mix",
            "checkout=1",
            "--concurrency",
            "1",
        ],
        dir.path(),
        "capped",
    );
    assert!(s.cap_reached, "{text}");
    assert!(text.contains("concurrency cap 1 reached"), "{text}");
    assert!(s.late_starts > 0 && s.max_start_delay_ms > 5.0, "{text}");
    assert!(
        s.latency_ms.max >= s.max_start_delay_ms,
        "latency counts from the scheduled time, so it includes the wait: {text}"
    );
    assert_eq!(s.completed, 100);
}

#[test]
fn an_unreachable_target_fails_fast_with_the_fix() {
    let out = std::process::Command::new(bin_dir().join("loadgen"))
        .args([
            "run",
            "--target",
            "http://127.0.0.1:9",
            "--rate",
            "1",
            "--duration",
            "1s",
        ])
        .output()
        .expect("run loadgen");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("nothing answers at http://127.0.0.1:9") && err.contains("make demo"),
        "{err}"
    );
}
