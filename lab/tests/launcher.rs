//! `tracelab up` as a user runs it (the binary, free ports): it prints what runs where, the run's
//! admin token (its curl line works, and the flags refuse a request without it) and how
//! long the first trace took to become queryable; SIGTERM stops everything and leaves no process
//! behind; and if the launcher itself is SIGKILLed, its reaper still stops the children.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;

trait EnvsRemoveTracelab {
    fn envs_remove_tracelab(&mut self) -> &mut Self;
}

impl EnvsRemoveTracelab for tokio::process::Command {
    fn envs_remove_tracelab(&mut self) -> &mut Self {
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("TRACELAB_") {
                self.env_remove(k);
            }
        }
        self
    }
}

struct Up {
    child: tokio::process::Child,
    lines: mpsc::UnboundedReceiver<String>,
    seen: Vec<String>,
}

fn spawn_up(name: &str, extra: &[&str]) -> Up {
    let bins = common::bin_dir();
    common::require_binaries(&bins);
    let dir = common::fresh_dir(name);
    let mut child = tokio::process::Command::new(bins.join("tracelab"))
        .args([
            "up",
            "--ports",
            "auto",
            "--raw-logs",
            "--stop-grace-secs",
            "10",
        ])
        .arg("--data-dir")
        .arg(&dir)
        .arg("--bin-dir")
        .arg(&bins)
        .args(extra)
        .env_remove("DATABASE_URL")
        .env_remove("KAFKA_BROKERS")
        // Hermetic: no TRACELAB_* setting of the caller's shell changes what is tested.
        .envs_remove_tracelab()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn tracelab up");
    let (tx, lines) = mpsc::unbounded_channel();
    for stream in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn tokio::io::AsyncRead + Unpin + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let tx = tx.clone();
        tokio::spawn(async move {
            let mut l = BufReader::new(stream).lines();
            while let Ok(Some(line)) = l.next_line().await {
                let _ = tx.send(line);
            }
        });
    }
    Up {
        child,
        lines,
        seen: Vec::new(),
    }
}

impl Up {
    /// Reads output until a line contains `needle`; panics with everything seen after `timeout`.
    async fn wait_for(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.lines.recv()).await {
                Ok(Some(line)) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                _ => panic!(
                    "no line with {needle:?} within {timeout:?}; output:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// The `pid N name` lines of the banner.
    fn pids(&self) -> Vec<(i32, String)> {
        self.seen
            .iter()
            .filter_map(|l| {
                let rest = l.trim().strip_prefix("pid ")?;
                let mut it = rest.split_whitespace();
                Some((it.next()?.parse().ok()?, it.next()?.to_string()))
            })
            .collect()
    }
}

/// Gone, or a zombie waiting for a reaper that is not us.
fn gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

async fn wait_all_gone(pids: &[(i32, String)], timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if pids.iter().all(|(p, _)| gone(*p)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let left: Vec<_> = pids.iter().filter(|(p, _)| !gone(*p)).collect();
    panic!("processes left behind: {left:?}");
}

#[tokio::test]
async fn up_reports_first_trace_and_sigterm_leaves_no_process_behind() {
    let mut up = spawn_up("launcher-sigterm", &[]);
    up.wait_for("Ctrl-C stops everything", Duration::from_secs(120))
        .await;
    let first = up
        .wait_for("first trace queryable", Duration::from_secs(60))
        .await;
    eprintln!("[launcher] {first}");
    let pids = up.pids();
    let names: Vec<&str> = pids.iter().map(|(_, n)| n.as_str()).collect();
    for n in [
        "collector",
        "api-gateway",
        "order-service",
        "payment-service",
        "inventory-service",
    ] {
        assert!(names.contains(&n), "{n} not in the banner: {names:?}");
    }
    // The banner's admin curl works as printed, and the flags refuse a request without the token.
    let curl = up
        .seen
        .iter()
        .find(|l| l.contains("/admin/flags -H 'authorization: Bearer "))
        .cloned()
        .unwrap_or_else(|| panic!("no admin curl line:\n{}", up.seen.join("\n")));
    let url = curl
        .split_whitespace()
        .find(|w| w.ends_with("/admin/flags"))
        .unwrap()
        .to_owned();
    let token = curl
        .rsplit_once("Bearer ")
        .map(|(_, t)| t.trim_end_matches('\'').to_owned())
        .unwrap();
    assert_eq!(token.len(), 32, "a random token per run: {curl}");
    assert!(
        up.seen
            .iter()
            .any(|l| l.contains("admin token") && l.contains(&token)),
        "the banner names the token"
    );
    let http = reqwest::Client::new();
    let open = http.get(&url).send().await.unwrap();
    assert_eq!(open.status(), 401, "the admin routes need the token");
    let with = http.get(&url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(with.status(), 200);
    let flags: serde_json::Value = with.json().await.unwrap();
    assert_eq!(flags["payment.slow"]["enabled"], false, "{flags}");

    // Children's log lines are prefixed with their name.
    if !up.seen.iter().any(|l| l.contains("api-gateway |")) {
        up.wait_for("api-gateway |", Duration::from_secs(30)).await;
    }

    let pid = up.child.id().expect("launcher pid") as i32;
    kill(Pid::from_raw(pid), Signal::SIGTERM).unwrap();
    let status = tokio::time::timeout(Duration::from_secs(90), up.child.wait())
        .await
        .expect("launcher exits after SIGTERM")
        .unwrap();
    assert!(
        status.success(),
        "exit {status}; output:\n{}",
        up.seen.join("\n")
    );
    wait_all_gone(&pids, Duration::from_secs(10)).await;
}

#[tokio::test]
async fn a_killed_launcher_still_takes_its_children_down() {
    let mut up = spawn_up("launcher-sigkill", &["--no-smoke"]);
    up.wait_for("Ctrl-C stops everything", Duration::from_secs(120))
        .await;
    let pids = up.pids();
    assert!(pids.len() >= 5, "{pids:?}");
    up.child.start_kill().unwrap(); // SIGKILL: no chance to clean up itself
    let _ = up.child.wait().await;
    wait_all_gone(&pids, Duration::from_secs(30)).await;
}

#[tokio::test]
async fn a_crashed_child_is_reported_loudly_and_the_stack_is_stopped() {
    let mut up = spawn_up("launcher-crash", &["--no-smoke"]);
    up.wait_for("Ctrl-C stops everything", Duration::from_secs(120))
        .await;
    let pids = up.pids();
    let (victim, _) = pids
        .iter()
        .find(|(_, n)| n == "payment-service")
        .expect("payment-service in the banner")
        .clone();
    kill(Pid::from_raw(victim), Signal::SIGKILL).unwrap();
    up.wait_for("CRASHED", Duration::from_secs(30)).await;
    up.wait_for("process `payment-service` exited", Duration::from_secs(10))
        .await;
    let status = tokio::time::timeout(Duration::from_secs(90), up.child.wait())
        .await
        .expect("launcher exits after a crash")
        .unwrap();
    assert!(!status.success(), "a crash must fail the launcher");
    wait_all_gone(&pids, Duration::from_secs(10)).await;
}

/// A port taken between picking and binding (here: held on purpose) makes the start-up retry with
/// new ports instead of failing.
#[tokio::test]
async fn a_port_conflict_at_start_up_is_retried_with_new_ports() {
    let bins = common::bin_dir();
    common::require_binaries(&bins);
    let dir = common::fresh_dir("launcher-port-conflict");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_port = taken.local_addr().unwrap().port();
    let mut opts = lab::StackOptions::for_tests(&bins, &dir).unwrap();
    opts.ports.health = taken_port;
    let stack = lab::Stack::start(opts)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_ne!(stack.ports.health, taken_port);
    let killed = stack.shutdown().await;
    assert!(killed.is_empty(), "{killed:?}");
    drop(taken);
}
