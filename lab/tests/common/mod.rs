//! Shared helpers of lab's end-to-end tests; the stack harness itself is `lab::harness` (the
//! load tests use it too).

#![allow(dead_code)] // each test binary uses a different part

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use lab::Stack;
#[allow(unused_imports)] // each test binary uses a different part
pub use lab::harness::{Shared, bin_dir, fresh_dir, start_shared};

/// The stack's binaries, or a panic with the fix.
pub fn require_binaries(dir: &Path) {
    lab::harness::require_binaries(dir, &[]);
}

/// The default stack: `collector/config/default.yaml` (keeps every trace).
pub fn stack() -> &'static Stack {
    static S: OnceLock<Result<Shared, String>> = OnceLock::new();
    match S.get_or_init(|| start_shared("default", |_| {})) {
        Ok(s) => &s.stack,
        Err(e) => panic!("{e}"),
    }
}

/// The brief's checkout body.
pub fn checkout_body() -> serde_json::Value {
    serde_json::json!({
        "items": [{"sku": "LAPTOP-1", "qty": 1}],
        "payment": {"method": "card", "token": "tok_test_123"}
    })
}

pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("http client")
}

/// POST /orders with a scenario header; returns status, trace id and body.
pub async fn place_order(gateway: &str, scenario: &str) -> (u16, Option<String>, String) {
    let resp = http()
        .post(format!("{gateway}/orders"))
        .header("x-tracelab-scenario", scenario)
        .json(&checkout_body())
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {gateway}/orders: {e}"));
    let status = resp.status().as_u16();
    let id = lab::spec::trace_id_of(resp.headers());
    (status, id, resp.text().await.unwrap_or_default())
}

pub fn spec_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("specs")
        .join(format!("{name}.yaml"))
}

/// Runs `lab/specs/NAME.yaml` against `stack`; panics with the full report (the failed
/// expectations, the trace tree, and any crashed child) when it fails.
pub async fn run_spec(stack: &Stack, name: &str) -> lab::TraceView {
    let spec = lab::Spec::from_file(&spec_path(name)).unwrap_or_else(|e| panic!("{e}"));
    let runner = lab::SpecRunner::new(&stack.urls.gateway, &stack.urls.query);
    let outcome = runner.run(&spec).await;
    match outcome.result {
        Ok(view) => view,
        Err(e) => {
            let crashed = stack.check_alive().await.err().unwrap_or_default();
            panic!(
                "spec {name} failed (trace {:?}, status {:?}):\n{e}\n{crashed}",
                outcome.trace_id, outcome.status
            )
        }
    }
}
