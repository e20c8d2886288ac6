//! The end-to-end harness every test binary of the workspace shares: the real binaries (built
//! by `cargo build --workspace --bins`) started once per test binary as a [`Stack`] on free
//! ports, in a data dir `target/lab-e2e/NAME-PID/` kept afterwards for its logs.
//!
//! The stack lives in a `static` on its own runtime ([`Shared`]), because each `#[tokio::test]`
//! has a runtime that ends with the test; the children outlive no test binary: statics are never
//! dropped, so the stack's reaper process stops them when the test binary exits.

use std::path::{Path, PathBuf};

use crate::launcher::{COLLECTOR, SERVICES};
use crate::{Stack, StackOptions};

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

/// Panics with the fix when a binary the stack needs (or one of `extra`) was not built.
pub fn require_binaries(dir: &Path, extra: &[&str]) {
    let missing: Vec<&str> = std::iter::once(COLLECTOR)
        .chain(SERVICES)
        .chain(["tracelab"])
        .chain(extra.iter().copied())
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
        require_binaries(&bins, &[]);
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
