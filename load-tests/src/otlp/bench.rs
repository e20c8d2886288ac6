//! `loadgen bench-collector`: tracelab's collector and rotel side by side, on the same load.
//!
//! Each cell (pipeline × protocol × rate) runs the collectors in the order A B B A (tracelab,
//! rotel, rotel, tracelab; repeated `repetitions` times), each as a fresh child process pinned
//! with `taskset` to its own CPU, while the generator and the sink run in this process (which
//! `make bench-collector` pins to another CPU). Pipelines:
//!
//! - `p0`: receive → blackhole (tracelab `nop`, rotel `--exporter blackhole`);
//! - `p1`: receive → batch (8192 spans / 200 ms) → OTLP export, gzip, over the receive side's
//!   protocol, to the in-process [`Sink`], which counts what arrives;
//! - `full` (tracelab only, rotel has no equivalent): memory_limiter → batch → spanmetrics →
//!   tail_sampling → the `tracelab` store, as `collector/config/tail-sampling.yaml`, store in the
//!   run's directory.
//!
//! Per run: the collector's CPU time (its threads' run time from `/proc/PID/task/*/schedstat`,
//! checked against utime + stime of `/proc/PID/stat`) over the load window
//! — for `p1` until the sink has everything (bounded drain), for `full` until the tail sampler's
//! decision wait has passed, so the export work counts — divided into the spans accepted; peak
//! RSS (`VmHWM`); request latency; accepted against delivered. The spread between the two runs of
//! the same collector in a cell (the A/A band) is the noise: a tracelab/rotel ratio is printed
//! only when it lies outside it.
//!
//! Children are killed when their guard drops (end of run, error, panic, or the future being
//! dropped on Ctrl-C). Everything listens on 127.0.0.1 ports picked free at run time.

use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::generator::{self, GenConfig, GenReport, Protocol, Rate};
use super::payload::Shape;
use super::sink::{Sink, SinkConfig};
use crate::procfs;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Pipeline {
    P0,
    P1,
    Full,
}

impl Pipeline {
    fn name(self) -> &'static str {
        match self {
            Pipeline::P0 => "p0",
            Pipeline::P1 => "p1",
            Pipeline::Full => "full",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Subject {
    Tracelab,
    Rotel,
}

impl Subject {
    fn name(self) -> &'static str {
        match self {
            Subject::Tracelab => "tracelab",
            Subject::Rotel => "rotel",
        }
    }
}

#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// tracelab's `collector` binary.
    pub collector: PathBuf,
    /// rotel's `rotel-agent`; without it only tracelab runs.
    pub rotel: Option<PathBuf>,
    /// The load window of each run.
    pub duration: Duration,
    /// How many times each cell's A B B A sequence runs.
    pub repetitions: usize,
    /// Run only cells whose name (`p0-http-10k`, `full-http-100k`) contains one of these.
    pub only: Vec<String>,
    /// Fixed rates of every pipeline; `max` is added for p0 and p1.
    pub rates: Vec<Rate>,
    pub shape: Shape,
    /// Connections at fixed rates, and at `max` (enough to keep the collector's core busy).
    pub connections: usize,
    pub max_connections: usize,
    /// The CPU the collectors are pinned to (`taskset -c`); None: not pinned.
    pub collector_cpu: Option<usize>,
    /// How long p1 may take after the load to deliver everything.
    pub drain_timeout: Duration,
    /// report.md, report.json and the runs' logs go here.
    pub out_dir: PathBuf,
}

/// One run of one collector.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunResult {
    pub cell: String,
    pub subject: Subject,
    pub run: usize,
    pub load: GenReport,
    /// Spans accepted during the warm-up before the load window (delivered too, in p1).
    pub warmup_spans: u64,
    pub cpu_secs: f64,
    /// The measured window: load plus drain or settle.
    pub window_secs: f64,
    pub spans_per_cpu_sec: f64,
    /// Collector CPU seconds per second of load: 1.0 = its core was busy throughout.
    pub cpu_util: f64,
    pub peak_rss_mib: f64,
    /// p1: spans the sink received (warm-up included); p0 and full: not measured.
    pub delivered: Option<u64>,
    /// p1: accepted (warm-up included) minus delivered; negative = duplicates.
    pub lost: Option<i64>,
    /// Something wrong: the collector exited, the sink saw malformed requests...
    pub problems: Vec<String>,
}

/// A cell's runs, per collector.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Stats {
    pub runs: usize,
    pub spans_per_cpu_sec: f64,
    /// (max − min) / mean of spans per CPU-second over this collector's runs.
    pub spread: f64,
    pub accepted_per_sec: f64,
    pub cpu_util: f64,
    pub peak_rss_mib: f64,
    pub p99_ms: f64,
    pub lost: i64,
    pub refused: u64,
    pub failed: u64,
    pub missed: u64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct CellSummary {
    pub cell: String,
    pub tracelab: Stats,
    pub rotel: Option<Stats>,
    /// The larger of the two collectors' spreads.
    pub band: f64,
    /// tracelab / rotel spans per CPU-second, when outside the band.
    pub ratio: Option<f64>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct BenchReport {
    pub started: String,
    pub machine: String,
    pub load_average_before: String,
    pub load_average_after: String,
    pub duration_secs: f64,
    pub repetitions: usize,
    pub shape: Shape,
    pub connections: usize,
    pub max_connections: usize,
    pub rotel_version: Option<String>,
    pub cells: Vec<CellSummary>,
    pub runs: Vec<RunResult>,
}

#[derive(Debug, Clone)]
struct Cell {
    name: String,
    pipeline: Pipeline,
    protocol: Protocol,
    rate: Rate,
}

fn cells(cfg: &BenchConfig) -> Vec<Cell> {
    let mut out = Vec::new();
    for pipeline in [Pipeline::P0, Pipeline::P1, Pipeline::Full] {
        let protocols: &[Protocol] = if pipeline == Pipeline::Full {
            &[Protocol::Http]
        } else {
            &[Protocol::Http, Protocol::Grpc]
        };
        for &protocol in protocols {
            let mut rates = cfg.rates.clone();
            if pipeline != Pipeline::Full {
                rates.push(Rate::Max);
            }
            for rate in rates {
                let name = format!("{}-{protocol}-{rate}", pipeline.name());
                if cfg.only.is_empty() || cfg.only.iter().any(|o| name.contains(o.as_str())) {
                    out.push(Cell {
                        name,
                        pipeline,
                        protocol,
                        rate,
                    });
                }
            }
        }
    }
    out
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn localhost(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A child process killed and reaped when dropped.
struct ChildGuard {
    child: Child,
    log: PathBuf,
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ChildGuard {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Why the child is gone, if it is.
    fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(format!(
                "exited ({status}); log {}: {}",
                self.log.display(),
                log_tail(&self.log)
            )),
            _ => None,
        }
    }
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(5)..].join(" | ")
}

/// utime + stime of a process, in seconds: every thread it ever ran, in 10 ms ticks.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    Some(procfs::process_ticks(pid)? as f64 / procfs::CLOCK_TICKS)
}

/// Run time of a process's live threads in seconds, to the nanosecond (`/proc/PID/task/*/schedstat`);
/// a thread that exits takes its time with it, which [`CpuClock`] guards against.
fn schedstat_seconds(pid: u32) -> Option<f64> {
    let mut ns = 0u64;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .ok()?
        .flatten()
    {
        if let Ok(s) = std::fs::read_to_string(task.path().join("schedstat")) {
            ns += s.split_whitespace().next()?.parse::<u64>().ok()?;
        }
    }
    Some(ns as f64 / 1e9)
}

/// A collector's CPU time at one moment, both ways.
#[derive(Debug, Clone, Copy)]
struct CpuClock {
    ticks: f64,
    precise: Option<f64>,
}

impl CpuClock {
    fn read(pid: u32) -> Option<CpuClock> {
        Some(CpuClock {
            ticks: cpu_seconds(pid)?,
            precise: schedstat_seconds(pid),
        })
    }

    /// CPU seconds since `earlier`: the nanosecond figure, unless the tick figure is clearly
    /// larger (a thread exited in between, taking its nanoseconds along).
    fn since(self, earlier: CpuClock) -> f64 {
        let ticks = self.ticks - earlier.ticks;
        match (self.precise, earlier.precise) {
            (Some(a), Some(b)) if a - b + 0.02 >= ticks => a - b,
            _ => ticks,
        }
    }
}

/// VmHWM, the peak resident set, in MiB.
pub fn peak_rss_mib(pid: u32) -> Option<f64> {
    Some(procfs::status_kib(pid, "VmHWM")? as f64 / 1024.0)
}

/// Listen addresses of one collector process.
struct Ports {
    http: u16,
    grpc: u16,
}

/// A collector started by [`start_collector`]; killed when dropped.
pub struct Running {
    guard: ChildGuard,
    ports: Ports,
}

impl Running {
    pub fn pid(&self) -> u32 {
        self.guard.pid()
    }

    /// Its OTLP receiver for `protocol`.
    pub fn addr(&self, protocol: Protocol) -> SocketAddr {
        localhost(match protocol {
            Protocol::Http => self.ports.http,
            Protocol::Grpc => self.ports.grpc,
        })
    }
}

fn tracelab_yaml(
    pipeline: Pipeline,
    ports: &Ports,
    health: u16,
    sink: Option<(Protocol, SocketAddr)>,
    dir: &Path,
) -> std::io::Result<String> {
    let receivers = format!(
        "receivers:\n  otlp:\n    protocols:\n      http: {{endpoint: 127.0.0.1:{}}}\n      grpc: {{endpoint: 127.0.0.1:{}}}\n",
        ports.http, ports.grpc
    );
    let ext = format!("extensions:\n  health_check: {{endpoint: 127.0.0.1:{health}}}\n");
    Ok(match pipeline {
        Pipeline::P0 => format!(
            "{receivers}exporters:\n  nop:\n{ext}service:\n  extensions: [health_check]\n  pipelines:\n    traces: {{receivers: [otlp], exporters: [nop]}}\n"
        ),
        Pipeline::P1 => {
            let (proto, addr) = sink.expect("p1 exports to the sink");
            let exporter = match proto {
                Protocol::Http => "otlphttp",
                Protocol::Grpc => "otlp",
            };
            format!(
                "{receivers}processors:\n  batch: {{timeout: 200ms, send_batch_size: 8192, send_batch_max_size: 8192}}\nexporters:\n  {exporter}:\n    endpoint: http://{addr}\n    compression: gzip\n{ext}service:\n  extensions: [health_check]\n  pipelines:\n    traces: {{receivers: [otlp], processors: [batch], exporters: [{exporter}]}}\n"
            )
        }
        Pipeline::Full => {
            let store = dir.join("store");
            let (query, prom) = (free_port()?, free_port()?);
            format!(
                "{receivers}processors:
  memory_limiter: {{check_interval: 1s, limit_mib: 512, spike_limit_mib: 128}}
  batch: {{timeout: 200ms, send_batch_size: 8192}}
  tail_sampling:
    decision_wait: 10s
    record_policy_attribute: true
    policies:
      - {{name: errors-always, type: status_code, status_code: {{status_codes: [ERROR]}}}}
      - {{name: slow-traces, type: latency, latency: {{threshold_ms: 2000}}}}
      - {{name: probabilistic-sample, type: probabilistic, probabilistic: {{sampling_percentage: 10}}}}
connectors:
  spanmetrics:
    metrics_flush_interval: 15s
    exemplars: {{enabled: true}}
  forward/sampling:
exporters:
  tracelab:
    storage: {{directory: {}}}
    query: {{endpoint: 127.0.0.1:{query}}}
  prometheus:
    endpoint: 127.0.0.1:{prom}
    enable_open_metrics: true
{ext}service:
  extensions: [health_check]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [memory_limiter, batch]
      exporters: [spanmetrics, forward/sampling]
    traces/sampled:
      receivers: [forward/sampling]
      processors: [tail_sampling]
      exporters: [tracelab]
    metrics:
      receivers: [spanmetrics]
      processors: [batch]
      exporters: [prometheus]
",
                store.display()
            )
        }
    })
}

/// The tail sampler's decision wait in the `full` pipeline, and a margin for the store's writes.
const FULL_SETTLE: Duration = Duration::from_secs(12);

fn pinned(cpu: Option<usize>, program: &Path) -> Command {
    match cpu {
        Some(c) => {
            let mut cmd = Command::new("taskset");
            cmd.arg("-c").arg(c.to_string()).arg(program);
            cmd
        }
        None => Command::new(program),
    }
}

/// Starts `program` (tracelab's `collector` or rotel's `rotel-agent`, as `subject` says) with
/// `pipeline`, exporting to `sink` for p1, pinned to `cpu`; its config and log go to `dir`.
/// Returns once it is ready to receive (at most 30 s).
pub async fn start_collector(
    subject: Subject,
    program: &Path,
    cpu: Option<usize>,
    pipeline: Pipeline,
    sink: Option<(Protocol, SocketAddr)>,
    dir: &Path,
) -> Result<Running, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let io = |e: std::io::Error| e.to_string();
    let ports = Ports {
        http: free_port().map_err(io)?,
        grpc: free_port().map_err(io)?,
    };
    let log = dir.join(format!("{}.log", subject.name()));
    let log_file = std::fs::File::create(&log).map_err(io)?;
    let stderr = log_file.try_clone().map_err(io)?;
    let mut health = None;
    let mut cmd = match subject {
        Subject::Tracelab => {
            let h = free_port().map_err(io)?;
            health = Some(h);
            let yaml = tracelab_yaml(pipeline, &ports, h, sink, dir).map_err(io)?;
            let path = dir.join("collector.yaml");
            std::fs::write(&path, yaml).map_err(io)?;
            let mut cmd = pinned(cpu, program);
            cmd.arg("--config")
                .arg(&path)
                .env("RUST_LOG", "warn")
                .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT");
            cmd
        }
        Subject::Rotel => {
            let mut cmd = pinned(cpu, program);
            // rotel stays in the foreground unless --daemon; its pid and log files default to
            // fixed names under /tmp, so each run gets its own.
            cmd.arg("start")
                .arg("--otlp-grpc-endpoint")
                .arg(format!("127.0.0.1:{}", ports.grpc))
                .arg("--otlp-http-endpoint")
                .arg(format!("127.0.0.1:{}", ports.http))
                .arg("--pid-file")
                .arg(dir.join("rotel.pid"))
                .arg("--log-file")
                .arg(dir.join("rotel-agent.log"));
            match pipeline {
                Pipeline::P0 => {
                    cmd.args(["--exporter", "blackhole"]);
                }
                Pipeline::P1 => {
                    let (proto, addr) = sink.ok_or("p1 exports to the sink")?;
                    cmd.args(["--exporter", "otlp", "--otlp-exporter-endpoint"])
                        .arg(format!("http://{addr}"))
                        .arg("--otlp-exporter-protocol")
                        .arg(proto.to_string())
                        .args([
                            "--otlp-exporter-compression",
                            "gzip",
                            "--batch-max-size",
                            "8192",
                            "--batch-timeout",
                            "200ms",
                        ]);
                }
                Pipeline::Full => return Err("rotel has no full pipeline".into()),
            }
            cmd
        }
    };
    let child = cmd
        .stdin(Stdio::null())
        .stdout(log_file)
        .stderr(stderr)
        .spawn()
        .map_err(|e| format!("starting {}: {e}", subject.name()))?;
    let mut guard = ChildGuard { child, log };
    // Ready: tracelab answers its health check; rotel accepts connections on both ports.
    let deadline = Instant::now() + Duration::from_secs(30);
    let client = reqwest::Client::new();
    loop {
        if let Some(why) = guard.exited() {
            return Err(format!("{} {why}", subject.name()));
        }
        let ready = match health {
            Some(h) => client
                .get(format!("http://127.0.0.1:{h}/"))
                .timeout(Duration::from_secs(1))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success()),
            None => [ports.http, ports.grpc].iter().all(|&p| {
                TcpStream::connect_timeout(&localhost(p), Duration::from_millis(200)).is_ok()
            }),
        };
        if ready {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!("{} not ready within 30 s", subject.name()));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(Running { guard, ports })
}

async fn one_run(
    cfg: &BenchConfig,
    cell: &Cell,
    subject: Subject,
    run: usize,
) -> Result<RunResult, String> {
    let dir = cfg
        .out_dir
        .join("runs")
        .join(format!("{}-{}-{run}", cell.name, subject.name()));
    let sink = if cell.pipeline == Pipeline::P1 {
        let any = Some(localhost(0));
        let sc = match cell.protocol {
            Protocol::Http => SinkConfig {
                http: any,
                ..Default::default()
            },
            Protocol::Grpc => SinkConfig {
                grpc: any,
                ..Default::default()
            },
        };
        Some(Sink::start(sc).await.map_err(|e| format!("sink: {e}"))?)
    } else {
        None
    };
    let sink_addr = sink
        .as_ref()
        .and_then(|s| s.http_addr.or(s.grpc_addr))
        .map(|a| (cell.protocol, a));
    let program = match subject {
        Subject::Tracelab => cfg.collector.as_path(),
        Subject::Rotel => cfg.rotel.as_deref().ok_or("no rotel binary given")?,
    };
    let mut running = start_collector(
        subject,
        program,
        cfg.collector_cpu,
        cell.pipeline,
        sink_addr,
        &dir,
    )
    .await?;
    let target = running.addr(cell.protocol);
    let connections = match cell.rate {
        Rate::Max => cfg.max_connections,
        Rate::Fixed(_) => cfg.connections,
    };
    let base = GenConfig {
        connections,
        shape: cfg.shape,
        ..GenConfig::new(target, cell.protocol)
    };
    // Warm-up: connections, allocator pools, the first batches; not measured.
    let warm = generator::run(&GenConfig {
        rate: Rate::Fixed(5_000.0),
        duration: Duration::from_millis(400),
        salt: base.salt ^ 0x5741_524d,
        ..base.clone()
    })
    .await?;
    if cell.pipeline == Pipeline::P1
        && let Some(s) = &sink
    {
        s.wait_for(
            warm.spans_accepted,
            cfg.drain_timeout,
            Duration::from_millis(300),
        )
        .await;
    }
    let pid = running.guard.pid();
    let cpu0 = CpuClock::read(pid).ok_or("cannot read the collector's CPU time")?;
    let t0 = Instant::now();
    let load = generator::run(&GenConfig {
        rate: cell.rate,
        duration: cfg.duration,
        ..base.clone()
    })
    .await?;
    let mut problems = Vec::new();
    let (delivered, lost) = match (&sink, cell.pipeline) {
        (Some(s), Pipeline::P1) => {
            let expected = warm.spans_accepted + load.spans_accepted;
            let totals = s
                .wait_for(expected, cfg.drain_timeout, Duration::from_millis(300))
                .await;
            if totals.malformed > 0 {
                problems.push(format!("sink: {} malformed requests", totals.malformed));
            }
            (
                Some(totals.spans),
                Some(expected as i64 - totals.spans as i64),
            )
        }
        (_, Pipeline::Full) => {
            // Every trace decided and written: what the store costs counts.
            tokio::time::sleep(FULL_SETTLE).await;
            (None, None)
        }
        _ => (None, None),
    };
    let window = t0.elapsed().as_secs_f64();
    let cpu = CpuClock::read(pid).map(|c| c.since(cpu0));
    let rss = peak_rss_mib(pid);
    if let Some(why) = running.guard.exited() {
        problems.push(format!("{} {why}", subject.name()));
    }
    if let Some(e) = &load.first_error {
        problems.push(format!("first failure: {e}"));
    }
    drop(running);
    let cpu = cpu.unwrap_or(f64::NAN);
    Ok(RunResult {
        cell: cell.name.clone(),
        subject,
        run,
        warmup_spans: warm.spans_accepted,
        cpu_secs: cpu,
        window_secs: window,
        spans_per_cpu_sec: load.spans_accepted as f64 / cpu.max(0.01),
        cpu_util: cpu / load.elapsed_secs.max(1e-9),
        peak_rss_mib: rss.unwrap_or(f64::NAN),
        delivered,
        lost,
        problems,
        load,
    })
}

fn stats(runs: &[&RunResult]) -> Stats {
    let n = runs.len().max(1) as f64;
    let mean = |f: &dyn Fn(&RunResult) -> f64| runs.iter().map(|r| f(r)).sum::<f64>() / n;
    let spcs: Vec<f64> = runs.iter().map(|r| r.spans_per_cpu_sec).collect();
    let m = mean(&|r| r.spans_per_cpu_sec);
    let (lo, hi) = spcs
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    Stats {
        runs: runs.len(),
        spans_per_cpu_sec: m,
        spread: if runs.len() > 1 && m > 0.0 {
            (hi - lo) / m
        } else {
            0.0
        },
        accepted_per_sec: mean(&|r| r.load.spans_per_second()),
        cpu_util: mean(&|r| r.cpu_util),
        peak_rss_mib: runs.iter().map(|r| r.peak_rss_mib).fold(0.0, f64::max),
        p99_ms: mean(&|r| r.load.latency_p99_ms),
        lost: runs.iter().filter_map(|r| r.lost).sum(),
        refused: runs.iter().map(|r| r.load.requests_refused).sum(),
        failed: runs.iter().map(|r| r.load.requests_failed).sum(),
        missed: runs.iter().map(|r| r.load.requests_missed).sum(),
    }
}

fn summarize(cell: &str, runs: &[RunResult]) -> CellSummary {
    let of = |s: Subject| -> Vec<&RunResult> {
        runs.iter()
            .filter(|r| r.cell == cell && r.subject == s)
            .collect()
    };
    let t = stats(&of(Subject::Tracelab));
    let rotel_runs = of(Subject::Rotel);
    let r = (!rotel_runs.is_empty()).then(|| stats(&rotel_runs));
    let band = r.as_ref().map_or(t.spread, |r| t.spread.max(r.spread));
    let ratio = r.as_ref().and_then(|r| {
        let ratio = t.spans_per_cpu_sec / r.spans_per_cpu_sec;
        (ratio.is_finite() && (ratio - 1.0).abs() > band).then_some(ratio)
    });
    CellSummary {
        cell: cell.to_string(),
        tracelab: t,
        rotel: r,
        band,
        ratio,
    }
}

fn shell(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let online = shell("nproc", &["--all"]).unwrap_or_default();
    let kernel = shell("uname", &["-r"]).unwrap_or_default();
    format!("{cpu}, {online} CPUs ({cores} available to the bench), Linux {kernel}")
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Runs every selected cell; `progress` gets a line per run.
pub async fn run(cfg: &BenchConfig, mut progress: impl FnMut(&str)) -> Result<BenchReport, String> {
    let cells = cells(cfg);
    if cells.is_empty() {
        return Err(format!("no cell matches --only {}", cfg.only.join(",")));
    }
    let _ = std::fs::remove_dir_all(cfg.out_dir.join("runs"));
    let started = shell("date", &["-u", "+%Y-%m-%d %H:%M UTC"]).unwrap_or_default();
    let load_before = loadavg();
    let rotel_version = cfg
        .rotel
        .as_ref()
        .map(|r| shell(&r.to_string_lossy(), &["--version"]).unwrap_or_default());
    let mut runs = Vec::new();
    for cell in &cells {
        let with_rotel = cfg.rotel.is_some() && cell.pipeline != Pipeline::Full;
        let order: &[Subject] = if with_rotel {
            &[
                Subject::Tracelab,
                Subject::Rotel,
                Subject::Rotel,
                Subject::Tracelab,
            ]
        } else {
            &[Subject::Tracelab, Subject::Tracelab]
        };
        for rep in 0..cfg.repetitions.max(1) {
            for (i, &subject) in order.iter().enumerate() {
                let n = rep * order.len() + i;
                let r = one_run(cfg, cell, subject, n).await?;
                progress(&format!(
                    "{:<16} {:<8} {:>9.0} spans/s accepted, collector CPU {:>5.1} %, {:>9.0} spans/CPU-s, RSS {:>6.1} MiB, p99 {:>7.2} ms{}{}",
                    cell.name,
                    subject.name(),
                    r.load.spans_per_second(),
                    r.cpu_util * 100.0,
                    r.spans_per_cpu_sec,
                    r.peak_rss_mib,
                    r.load.latency_p99_ms,
                    r.lost.map_or(String::new(), |l| format!(", lost {l}")),
                    if r.problems.is_empty() {
                        String::new()
                    } else {
                        format!(" !! {}", r.problems.join("; "))
                    }
                ));
                runs.push(r);
            }
        }
    }
    let summaries = cells.iter().map(|c| summarize(&c.name, &runs)).collect();
    Ok(BenchReport {
        started,
        machine: machine(),
        load_average_before: load_before,
        load_average_after: loadavg(),
        duration_secs: cfg.duration.as_secs_f64(),
        repetitions: cfg.repetitions.max(1),
        shape: cfg.shape,
        connections: cfg.connections,
        max_connections: cfg.max_connections,
        rotel_version,
        cells: summaries,
        runs,
    })
}

fn k(v: f64) -> String {
    if !v.is_finite() {
        "–".into()
    } else if v >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.0}k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

fn pair(t: String, r: Option<String>) -> String {
    match r {
        Some(r) => format!("{t} / {r}"),
        None => t,
    }
}

impl BenchReport {
    /// The markdown table: one row per cell.
    pub fn table(&self) -> String {
        let mut s = String::new();
        s.push_str("| cell | spans/CPU-s tracelab | spans/CPU-s rotel | A/A band | tracelab/rotel | accepted spans/s (t / r) | collector CPU % (t / r) | peak RSS MiB (t / r) | p99 ms (t / r) | lost · refused · failed · missed (t / r) |\n");
        s.push_str("|---|---:|---:|---:|---|---:|---:|---:|---:|---|\n");
        for c in &self.cells {
            let t = &c.tracelab;
            let r = c.rotel.as_ref();
            let verdict = match (r, c.ratio) {
                (None, _) => "tracelab only".to_string(),
                (Some(_), Some(x)) => format!("{x:.2}×"),
                (Some(_), None) => "≈ (within noise)".to_string(),
            };
            let issues = |st: &Stats| {
                format!(
                    "{} · {} · {} · {}",
                    st.lost, st.refused, st.failed, st.missed
                )
            };
            let _ = writeln!(
                s,
                "| {} | {} | {} | ±{:.0} % | {} | {} | {} | {} | {} | {} |",
                c.cell,
                k(t.spans_per_cpu_sec),
                r.map_or("–".into(), |r| k(r.spans_per_cpu_sec)),
                c.band * 100.0,
                verdict,
                pair(k(t.accepted_per_sec), r.map(|r| k(r.accepted_per_sec))),
                pair(
                    format!("{:.0}", t.cpu_util * 100.0),
                    r.map(|r| format!("{:.0}", r.cpu_util * 100.0))
                ),
                pair(
                    format!("{:.0}", t.peak_rss_mib),
                    r.map(|r| format!("{:.0}", r.peak_rss_mib))
                ),
                pair(
                    format!("{:.2}", t.p99_ms),
                    r.map(|r| format!("{:.2}", r.p99_ms))
                ),
                pair(issues(t), r.map(issues)),
            );
        }
        s
    }

    /// Any loss, refusal, failure or problem, one line each.
    pub fn flags(&self) -> Vec<String> {
        let mut out = Vec::new();
        for r in &self.runs {
            let name = format!("{} {} run {}", r.cell, r.subject.name(), r.run);
            if let Some(l) = r.lost.filter(|&l| l != 0) {
                out.push(format!(
                    "{name}: {} spans {}",
                    l.abs(),
                    if l > 0 { "lost" } else { "duplicated" }
                ));
            }
            let g = &r.load;
            if g.requests_refused + g.requests_failed > 0 {
                out.push(format!(
                    "{name}: {} requests refused, {} failed",
                    g.requests_refused, g.requests_failed
                ));
            }
            if g.requests_missed > 0 {
                out.push(format!(
                    "{name}: {} requests not sent (more than {} ms behind schedule)",
                    g.requests_missed,
                    generator::MAX_LAG.as_millis()
                ));
            }
            for p in &r.problems {
                out.push(format!("{name}: {p}"));
            }
        }
        for c in self.cells.iter().filter(|c| c.cell.ends_with("-max")) {
            let busy = |s: &Stats| s.cpu_util;
            let least = c
                .rotel
                .as_ref()
                .map_or(busy(&c.tracelab), |r| busy(r).min(busy(&c.tracelab)));
            if least < 0.9 {
                out.push(format!(
                    "{}: the collectors used {} % of their core: the limit at max was elsewhere \
                     (the generator, or other processes on the collectors' CPU)",
                    c.cell,
                    pair(
                        format!("{:.0}", c.tracelab.cpu_util * 100.0),
                        c.rotel
                            .as_ref()
                            .map(|r| format!("{:.0}", r.cpu_util * 100.0))
                    )
                ));
            }
        }
        out
    }

    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "# Collector vs rotel\n");
        let _ = writeln!(
            s,
            "Started {}; {}; load average {} before, {} after. rotel: {}.\n",
            self.started,
            self.machine,
            self.load_average_before,
            self.load_average_after,
            self.rotel_version.as_deref().unwrap_or("not run")
        );
        let _ = writeln!(
            s,
            "{:.0} s load windows, A B B A × {}; {} spans/request, {} spans/trace, {} attributes/span; {} connections at fixed rates, {} at max.\n",
            self.duration_secs,
            self.repetitions,
            self.shape.spans_per_request,
            self.shape.spans_per_trace,
            self.shape.attributes,
            self.connections,
            self.max_connections
        );
        s.push_str(&self.table());
        let flags = self.flags();
        if !flags.is_empty() {
            s.push_str("\nFlags:\n\n");
            for f in flags {
                let _ = writeln!(s, "- {f}");
            }
        }
        s.push_str("\nRuns:\n\n| cell | collector | run | accepted spans/s | CPU s | spans/CPU-s | peak RSS MiB | p50 / p99 / max ms | delivered | lost |\n|---|---|---:|---:|---:|---:|---:|---|---:|---:|\n");
        for r in &self.runs {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {:.2} | {} | {:.0} | {:.2} / {:.2} / {:.2} | {} | {} |",
                r.cell,
                r.subject.name(),
                r.run,
                k(r.load.spans_per_second()),
                r.cpu_secs,
                k(r.spans_per_cpu_sec),
                r.peak_rss_mib,
                r.load.latency_p50_ms,
                r.load.latency_p99_ms,
                r.load.latency_max_ms,
                r.delivered.map_or("–".into(), |d| d.to_string()),
                r.lost.map_or("–".into(), |l| l.to_string()),
            );
        }
        s
    }

    /// Writes report.md and report.json into `dir`.
    pub fn write(&self, dir: &Path) -> Result<(), String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        std::fs::write(dir.join("report.md"), self.markdown()).map_err(|e| e.to_string())?;
        let json = serde_json::to_string_pretty(self).map_err(|e| e.to_string())?;
        std::fs::write(dir.join("report.json"), json + "\n").map_err(|e| e.to_string())
    }
}
