//! `TRACELAB_SPAN_FILTER` chooses the exported spans; unset, every INFO+ span is
//! exported and DEBUG ones are not (today's behaviour). The configured case re-runs
//! this binary as a child: the filter is read once, when the process installs its
//! subscriber.

use std::{process::Command, time::Duration};

use telemetry::testing;

const CHILD: &str = "TELEMETRY_SPAN_FILTER_CHILD";

/// Makes an INFO root with a DEBUG child on target `checkout` and another DEBUG child
/// on this test's own target; returns the trace id and the names exported.
fn spans_exported() -> (String, Vec<String>) {
    let t = testing::init();
    let root = tracing::info_span!("filter_root");
    let trace_id = root.in_scope(|| {
        tracing::debug_span!(target: "checkout", "checkout_detail").in_scope(|| {});
        tracing::debug_span!("other_detail").in_scope(|| {});
        telemetry::current_trace_id().unwrap()
    });
    drop(root);
    let spans = t.wait_for_spans(
        &trace_id,
        |s| s.iter().any(|s| s.name == "filter_root"),
        Duration::from_secs(5),
    );
    (trace_id, spans.iter().map(|s| s.name.to_string()).collect())
}

#[test]
fn by_default_debug_spans_are_not_exported() {
    if std::env::var(CHILD).is_ok() {
        return;
    }
    if std::env::var(telemetry::config::SPAN_FILTER_ENV).is_ok() {
        return; // the developer configured one; the child test covers the variable
    }
    let (_, names) = spans_exported();
    assert_eq!(names, vec!["filter_root".to_owned()]);
}

#[test]
fn the_variable_lets_chosen_debug_spans_through() {
    let output = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_exports",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .env(telemetry::config::SPAN_FILTER_ENV, "info,checkout=debug")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let names = stdout
        .lines()
        .find_map(|l| l.split_once("EXPORTED=").map(|(_, n)| n.to_owned()))
        .expect("child printed the exported names");
    let mut names: Vec<&str> = names.split(',').collect();
    names.sort();
    assert_eq!(names, vec!["checkout_detail", "filter_root"]);
}

#[test]
fn child_exports() {
    if std::env::var(CHILD).is_err() {
        return; // only meaningful when started by the test above
    }
    let (_, names) = spans_exported();
    println!("EXPORTED={}", names.join(","));
}
