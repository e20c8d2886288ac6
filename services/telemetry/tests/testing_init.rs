//! `testing::init` is idempotent within a process and fails loudly when it cannot
//! install its subscriber. The failing case runs in a child process, because it needs
//! another global subscriber installed first.

use std::{process::Command, time::Duration};

const CHILD: &str = "TELEMETRY_TESTING_INIT_CHILD";

#[test]
fn a_second_call_reuses_the_installed_exporter() {
    if std::env::var(CHILD).is_ok() {
        return;
    }
    let first = telemetry::testing::init();
    let trace_id = tracing::info_span!("seen_by_both")
        .in_scope(|| telemetry::current_trace_id().expect("a span in a trace"));
    let second = telemetry::testing::init();
    let spans = second.wait_for_spans(&trace_id, |s| !s.is_empty(), Duration::from_secs(5));
    assert_eq!(spans.len(), 1, "the second handle sees the first's spans");
    assert_eq!(first.spans_for_trace(&trace_id).len(), 1);
}

#[test]
fn init_panics_when_another_subscriber_is_installed() {
    let output = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_installs_another_subscriber_first",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .output()
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        !output.status.success(),
        "the child should have panicked:\n{all}"
    );
    assert!(
        all.contains("telemetry::testing::init could not install its subscriber"),
        "{all}"
    );
}

#[test]
fn child_installs_another_subscriber_first() {
    if std::env::var(CHILD).is_err() {
        return; // only meaningful when started by the test above
    }
    tracing::subscriber::set_global_default(tracing_subscriber::registry()).unwrap();
    telemetry::testing::init();
}
