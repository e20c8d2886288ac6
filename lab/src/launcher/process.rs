//! One supervised child process: spawned in its own process group, its stdout/stderr prefixed with
//! its name (to the terminal or to a log file), its last lines kept for crash reports, its exit
//! reported on a channel. Nothing is ever restarted: an unexpected exit is the owner's to report.

use std::collections::VecDeque;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, watch};

/// Lines of each child's output kept in memory for crash reports and failing tests.
const TAIL_LINES: usize = 60;

/// Where children's log lines go.
#[derive(Debug, Clone)]
pub enum LogSink {
    /// Prefixed lines on the launcher's stdout; `color` adds ANSI colors to the prefix.
    /// `pretty` renders the services' JSON log lines as `LEVEL message key=value …`.
    Terminal { color: bool, pretty: bool },
    /// One file per child (`DIR/NAME.log`), raw lines; what tests use to keep their output clean.
    Files(PathBuf),
}

impl LogSink {
    /// Terminal output, colored when stdout is a TTY.
    pub fn terminal() -> Self {
        LogSink::Terminal {
            color: std::io::stdout().is_terminal(),
            pretty: true,
        }
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct ChildSpec {
    pub name: String,
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub cwd: Option<PathBuf>,
}

/// A child's exit, sent on the stack's exit channel.
#[derive(Debug, Clone)]
pub struct ChildExit {
    pub name: String,
    pub status: Option<ExitStatus>,
    /// The last lines it printed, oldest first.
    pub tail: Vec<String>,
}

impl ChildExit {
    /// The child died because a port it had to listen on was taken.
    pub fn is_port_conflict(&self) -> bool {
        self.tail
            .iter()
            .any(|l| l.contains("Address already in use") || l.contains("os error 98"))
    }
}

impl std::fmt::Display for ChildExit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.status {
            Some(s) => writeln!(f, "process `{}` exited: {s}", self.name)?,
            None => writeln!(f, "process `{}` exited (status unknown)", self.name)?,
        }
        if self.tail.is_empty() {
            writeln!(f, "  (it printed nothing)")?;
        } else {
            writeln!(f, "  its last {} lines:", self.tail.len())?;
            for l in &self.tail {
                writeln!(f, "  | {l}")?;
            }
        }
        Ok(())
    }
}

type Tail = Arc<Mutex<VecDeque<String>>>;

/// A running child. Its `tokio::process::Child` is owned by a monitor task that reaps it.
#[derive(Debug)]
pub struct Supervised {
    pub name: String,
    pub pid: u32,
    tail: Tail,
    exited: watch::Receiver<bool>,
}

const COLORS: [&str; 6] = ["36", "33", "35", "32", "34", "91"];

impl Supervised {
    /// Spawns `spec`, wiring its output to `sink` and its exit to `exits`.
    pub fn spawn(
        spec: &ChildSpec,
        index: usize,
        sink: &LogSink,
        exits: mpsc::UnboundedSender<ChildExit>,
    ) -> std::io::Result<Self> {
        let mut cmd = tokio::process::Command::new(&spec.program);
        cmd.args(&spec.args)
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Own process group: the terminal's Ctrl-C reaches only the launcher, which then
            // stops the children in order (services first, collector last, so spans flush).
            .process_group(0)
            .kill_on_drop(true);
        if let Some(cwd) = &spec.cwd {
            cmd.current_dir(cwd);
        }
        let mut child = cmd.spawn().map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("spawning {}: {e}", spec.program.display()),
            )
        })?;
        let pid = child.id().unwrap_or_default();
        let tail: Tail = Arc::new(Mutex::new(VecDeque::with_capacity(TAIL_LINES)));
        let out = Output::new(&spec.name, index, sink)?;
        let mut pumps = Vec::new();
        if let Some(stdout) = child.stdout.take() {
            pumps.push(tokio::spawn(pump(stdout, out.clone(), tail.clone())));
        }
        if let Some(stderr) = child.stderr.take() {
            pumps.push(tokio::spawn(pump(stderr, out, tail.clone())));
        }
        let (exited_tx, exited) = watch::channel(false);
        let name = spec.name.clone();
        let monitor_tail = tail.clone();
        tokio::spawn(async move {
            let status = child.wait().await.ok();
            // Drain the pipes so the report holds the child's last words.
            for p in pumps {
                let _ = tokio::time::timeout(Duration::from_secs(2), p).await;
            }
            let tail = monitor_tail
                .lock()
                .map(|t| t.iter().cloned().collect())
                .unwrap_or_default();
            let _ = exited_tx.send(true);
            let _ = exits.send(ChildExit { name, status, tail });
        });
        Ok(Self {
            name: spec.name.clone(),
            pid,
            tail,
            exited,
        })
    }

    pub fn has_exited(&self) -> bool {
        *self.exited.borrow()
    }

    /// The last lines the child printed.
    pub fn tail(&self) -> Vec<String> {
        self.tail
            .lock()
            .map(|t| t.iter().cloned().collect())
            .unwrap_or_default()
    }

    pub fn signal(&self, sig: Signal) {
        if self.pid != 0 && !self.has_exited() {
            let _ = killpg(Pid::from_raw(self.pid as i32), sig);
        }
    }

    /// Waits until the child has exited, at most `timeout`; true when it did.
    pub async fn wait_exit(&self, timeout: Duration) -> bool {
        let mut rx = self.exited.clone();
        tokio::time::timeout(timeout, rx.wait_for(|e| *e))
            .await
            .is_ok()
    }

    /// SIGTERM, wait `grace`, then SIGKILL. True when it stopped within the grace period.
    pub async fn stop(&self, grace: Duration) -> bool {
        self.signal(Signal::SIGTERM);
        if self.wait_exit(grace).await {
            return true;
        }
        self.signal(Signal::SIGKILL);
        self.wait_exit(Duration::from_secs(5)).await;
        false
    }
}

#[derive(Clone)]
enum Output {
    Terminal { prefix: String, pretty: bool },
    File(Arc<tokio::sync::Mutex<tokio::fs::File>>),
}

impl Output {
    fn new(name: &str, index: usize, sink: &LogSink) -> std::io::Result<Self> {
        Ok(match sink {
            LogSink::Terminal { color, pretty } => {
                let label = format!("{name:>17} |");
                let prefix = if *color {
                    format!("\x1b[{}m{label}\x1b[0m", COLORS[index % COLORS.len()])
                } else {
                    label
                };
                Output::Terminal {
                    prefix,
                    pretty: *pretty,
                }
            }
            LogSink::Files(dir) => {
                std::fs::create_dir_all(dir)?;
                let f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(log_path(dir, name))?;
                Output::File(Arc::new(tokio::sync::Mutex::new(
                    tokio::fs::File::from_std(f),
                )))
            }
        })
    }
}

/// The log file of child `name` under a `LogSink::Files` directory.
pub fn log_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.log"))
}

async fn pump(stream: impl AsyncRead + Unpin, out: Output, tail: Tail) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if let Ok(mut t) = tail.lock() {
            if t.len() == TAIL_LINES {
                t.pop_front();
            }
            t.push_back(line.clone());
        }
        match &out {
            Output::Terminal { prefix, pretty } => {
                let shown = if *pretty {
                    render_json_log(&line)
                } else {
                    None
                };
                println!("{prefix} {}", shown.as_deref().unwrap_or(&line));
            }
            Output::File(f) => {
                let mut f = f.lock().await;
                let _ = f.write_all(line.as_bytes()).await;
                let _ = f.write_all(b"\n").await;
            }
        }
    }
}

/// Renders a tracing-subscriber JSON log line (nested `fields` or flattened) as
/// `LEVEL message key=value … trace_id=…`; `None` when the line is not such JSON (then it is
/// shown as is).
pub fn render_json_log(line: &str) -> Option<String> {
    // Bookkeeping keys a reader of the demo's console does not need on every line.
    const SKIP: &[&str] = &[
        "timestamp",
        "level",
        "target",
        "message",
        "fields",
        "span",
        "spans",
        "threadId",
        "threadName",
        "filename",
        "line_number",
        "trace_id",
        "span_id",
    ];
    let v: serde_json::Value = serde_json::from_str(line.trim_start()).ok()?;
    let obj = v.as_object()?;
    let level = obj.get("level")?.as_str()?;
    let fields = obj.get("fields").and_then(|f| f.as_object());
    let message = fields
        .and_then(|f| f.get("message"))
        .or_else(|| obj.get("message"))
        .and_then(|m| m.as_str())
        .unwrap_or("");
    let mut s = format!("{level:<5} {message}");
    let nested = fields
        .into_iter()
        .flatten()
        .filter(|(k, _)| *k != "message");
    let flat = obj.iter().filter(|(k, _)| !SKIP.contains(&k.as_str()));
    for (k, v) in nested.chain(flat) {
        s.push_str(&format!(" {k}={}", scalar(v)));
    }
    for key in ["trace_id", "span_id"] {
        if let Some(v) = obj.get(key) {
            s.push_str(&format!(" {key}={}", scalar(v)));
        }
    }
    Some(s)
}

fn scalar(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_log_lines_render_compactly() {
        let line = r#"{"timestamp":"2026-11-22T00:00:00Z","level":"INFO","fields":{"message":"order created","order.id":"o-1","items":2},"target":"order_service","trace_id":"4bf92f3577b34da6a3ce929d0e0e4736"}"#;
        assert_eq!(
            render_json_log(line).unwrap(),
            "INFO  order created items=2 order.id=o-1 trace_id=4bf92f3577b34da6a3ce929d0e0e4736"
        );
        let flat = r#"{"addr":"127.0.0.1:16686","level":"INFO","message":"listening","server":"query","target":"collector::app","timestamp":"t","span":"x","trace_id":"abc"}"#;
        assert_eq!(
            render_json_log(flat).unwrap(),
            "INFO  listening addr=127.0.0.1:16686 server=query trace_id=abc"
        );
        assert_eq!(render_json_log("plain text"), None);
        assert_eq!(render_json_log(r#"{"no":"level"}"#), None);
    }

    #[tokio::test]
    async fn exit_is_reported_with_the_last_lines() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let dir = tempfile::tempdir().unwrap();
        let spec = ChildSpec {
            name: "shouty".into(),
            program: "/bin/sh".into(),
            args: vec!["-c".into(), "echo hello; echo oops >&2; exit 3".into()],
            env: vec![],
            cwd: None,
        };
        let child = Supervised::spawn(&spec, 0, &LogSink::Files(dir.path().into()), tx).unwrap();
        let exit = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("exit reported")
            .unwrap();
        assert_eq!(exit.name, "shouty");
        assert_eq!(exit.status.and_then(|s| s.code()), Some(3));
        assert!(exit.tail.contains(&"hello".to_string()), "{exit}");
        assert!(exit.tail.contains(&"oops".to_string()), "{exit}");
        assert!(child.has_exited());
        let logged = std::fs::read_to_string(log_path(dir.path(), "shouty")).unwrap();
        assert!(logged.contains("hello") && logged.contains("oops"));
    }

    #[tokio::test]
    async fn stop_terminates_a_running_child() {
        let (tx, _rx) = mpsc::unbounded_channel();
        let dir = tempfile::tempdir().unwrap();
        let spec = ChildSpec {
            name: "sleeper".into(),
            program: "/bin/sleep".into(),
            args: vec!["300".into()],
            env: vec![],
            cwd: None,
        };
        let child = Supervised::spawn(&spec, 1, &LogSink::Files(dir.path().into()), tx).unwrap();
        assert!(!child.has_exited());
        assert!(
            child.stop(Duration::from_secs(5)).await,
            "sleep stops on SIGTERM"
        );
        assert!(child.has_exited());
    }
}
