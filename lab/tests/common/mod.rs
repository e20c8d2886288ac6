//! Shared harness of the end-to-end tests: the real binaries, started once per test binary as a
//! `lab::Stack` (free ports, a data dir `target/lab-e2e/NAME-PID/`, the embedded MockCluster).
//!
//! The stack lives in a `static` on its own runtime, because each `#[tokio::test]` has a runtime
//! that ends with the test; the children outlive no test binary: statics are never dropped, so the
//! stack's reaper process stops them when the test binary exits.

#![allow(dead_code)] // each test binary uses a different part

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use lab::launcher::{COLLECTOR, SERVICES};
use lab::{Stack, StackOptions};

/// `target/debug` (or `target/release`): the test executable is `target/<profile>/deps/NAME-HASH`.
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let deps = exe.parent().expect("deps dir");
    let dir = if deps.ends_with("deps") {
        deps.parent().expect("profile dir")
    } else {
        deps
    };
    dir.to_path_buf()
}

/// Panics with the fix when a binary the stack needs was not built.
pub fn require_binaries(dir: &Path) {
    let missing: Vec<&str> = std::iter::once(COLLECTOR)
        .chain(SERVICES)
        .chain(["tracelab"])
        .filter(|b| !dir.join(b).is_file())
        .collect();
    assert!(
        missing.is_empty(),
        "the end-to-end tests need the workspace binaries, missing in {}: {missing:?}.\n\
         Run `cargo build --workspace --bins` first (`make test` does).",
        dir.display()
    );
}

/// A fresh directory `target/lab-e2e/NAME-PID`, kept afterwards for its logs. Directories of
/// earlier runs whose process is gone are removed; a concurrent run keeps its own.
pub fn fresh_dir(name: &str) -> PathBuf {
    let root = bin_dir().parent().expect("target dir").join("lab-e2e");
    if let Ok(entries) = std::fs::read_dir(&root) {
        for e in entries.flatten() {
            let file = e.file_name();
            let Some(pid) = file
                .to_str()
                .and_then(|f| f.strip_prefix(name))
                .and_then(|rest| rest.strip_prefix('-'))
                .and_then(|p| p.parse::<u32>().ok())
            else {
                continue;
            };
            if !Path::new(&format!("/proc/{pid}")).exists() {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    let dir = root.join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create e2e dir");
    dir
}

pub struct Shared {
    pub stack: Stack,
    /// Runs the children's monitor tasks; must outlive the stack.
    pub rt: tokio::runtime::Runtime,
}

/// Starts a stack on a dedicated runtime, from a plain thread (a test's runtime cannot block on
/// another runtime).
pub fn start_shared(
    name: &str,
    configure: impl FnOnce(&mut StackOptions) + Send + 'static,
) -> Result<Shared, String> {
    let name = name.to_string();
    std::thread::spawn(move || {
        let bins = bin_dir();
        require_binaries(&bins);
        let dir = fresh_dir(&name);
        let mut opts = StackOptions::for_tests(&bins, &dir).map_err(|e| e.to_string())?;
        configure(&mut opts);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name(format!("stack-{name}"))
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let stack = rt.block_on(Stack::start(opts)).map_err(|e| {
            format!(
                "the {name} stack did not start (logs in {}):\n{e}",
                dir.display()
            )
        })?;
        eprintln!(
            "[e2e] {name} stack ready in {:.2}s: gateway {} query {} (logs in {})",
            stack.ready_after.as_secs_f64(),
            stack.urls.gateway,
            stack.urls.query,
            dir.join("logs").display()
        );
        Ok(Shared { stack, rt })
    })
    .join()
    .map_err(|_| "the stack start-up thread panicked".to_string())?
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
