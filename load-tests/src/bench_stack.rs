//! `loadgen bench-stack` (`make bench-stack`): what tracing costs the whole checkout stack.
//!
//! For each mode — tracing off (`OTEL_SDK_DISABLED=true` for every service), head sampling 10 %
//! and 100 % (`parentbased_traceidratio` 0.1 / 1.0) — it starts a fresh stack ([`lab::Stack`],
//! the launcher `tracelab up` uses: collector, card-provider, the four services on SQLite files,
//! the embedded Kafka) on free 127.0.0.1 ports in its own data dir, and measures:
//!
//! - **cold start → first trace**: from `Stack::start` to the first checkout's trace answering on
//!   the collector's query API (with 10 %, the first checkout whose `traceresponse` says sampled);
//! - **summed RSS** of the stack's processes, idle (after start) and under load (at the end of the
//!   highest step that met the latency target);
//! - **one common rate** every mode should sustain, so latencies compare at equal load;
//! - **a ramp** of fixed arrival rates (`loadgen run`'s open model: latency from the scheduled
//!   time), each step ×`factor` the last until a step misses the target (p99 above `p99_target`
//!   or any error; a miss is run once more and the better run counts), down instead when the
//!   first step misses, then `refine` bisection steps between the last pass and the first miss:
//!   the highest passing rate, its throughput and p50/p99;
//! - **where the CPU goes** in that step: each process's CPU time from `/proc` over the step.
//!
//! The overhead ratio is the best throughput with tracing over the best without. Every loop is
//! bounded (steps, bisections, a time budget per mode) and only 127.0.0.1 is used.
//!
//! The embedded Kafka (librdkafka's MockCluster) runs inside this process, as it runs inside
//! `tracelab up`: its CPU is counted from this process's `rdk:*` threads; its memory cannot be
//! told apart from loadgen's, so the summed RSS covers the child processes only.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use lab::{Stack, StackOptions, TraceClient};
use serde::Serialize;

use crate::cli::parse_duration;
use crate::mix::Mix;
use crate::plan::Arrival;
use crate::procfs::{CLOCK_TICKS, process_ticks, stat_ticks, status_kib};
use crate::runner::{Progress, RunConfig, run};
use crate::{RunSummary, runner};

/// How tracing is configured in every service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum, Serialize)]
pub enum Mode {
    /// `OTEL_SDK_DISABLED=true`: no spans recorded, nothing exported.
    Off,
    /// `OTEL_TRACES_SAMPLER=parentbased_traceidratio`, `OTEL_TRACES_SAMPLER_ARG=0.1`.
    Head10,
    /// The same sampler at 1.0: every trace, complete.
    Head100,
}

impl Mode {
    pub fn label(self) -> &'static str {
        match self {
            Mode::Off => "tracing off",
            Mode::Head10 => "head 10 %",
            Mode::Head100 => "head 100 %",
        }
    }

    fn slug(self) -> &'static str {
        match self {
            Mode::Off => "off",
            Mode::Head10 => "head10",
            Mode::Head100 => "head100",
        }
    }

    /// The environment the four services get.
    pub fn env(self) -> Vec<(String, String)> {
        let kv = |k: &str, v: &str| (k.to_owned(), v.to_owned());
        match self {
            Mode::Off => vec![kv("OTEL_SDK_DISABLED", "true")],
            Mode::Head10 => vec![
                kv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
                kv("OTEL_TRACES_SAMPLER_ARG", "0.1"),
            ],
            Mode::Head100 => vec![
                kv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
                kv("OTEL_TRACES_SAMPLER_ARG", "1.0"),
            ],
        }
    }

    fn traced(self) -> bool {
        self != Mode::Off
    }
}

/// The flags of `loadgen bench-stack`.
#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// Where the release binaries are (`collector`, the services, `card-provider`, `tracelab`).
    #[arg(long, default_value = "target/release")]
    pub bin_dir: PathBuf,
    /// Each mode's stack runs in a fresh DIR/<mode> (removed first; logs kept for reading).
    #[arg(long, default_value = "target/bench-stack/data")]
    pub data_dir: PathBuf,
    /// The markdown report (a JSON twin is written beside it).
    #[arg(long, default_value = "target/bench-stack/report.md")]
    pub report: PathBuf,
    /// Modes to run, in order.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "off,head10,head100"
    )]
    pub modes: Vec<Mode>,
    /// The rate every mode is measured at, for latencies at equal load.
    #[arg(long, default_value_t = 50.0)]
    pub common_rate: f64,
    /// The ramp's first rate.
    #[arg(long, default_value_t = 50.0)]
    pub start_rate: f64,
    /// Each ramp step's rate over the last.
    #[arg(long, default_value_t = 1.5)]
    pub factor: f64,
    #[arg(long, default_value_t = 3000.0)]
    pub max_rate: f64,
    /// Bisection steps between the last passing and the first missing rate.
    #[arg(long, default_value_t = 2)]
    pub refine: u32,
    /// How long each measured step sends (at least).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub step: Duration,
    /// Each step sends at least this many requests (taking up to 30 s at low rates).
    #[arg(long, default_value_t = 600)]
    pub min_requests: u64,
    /// Do not run a missed step a second time (by default the better of two runs counts).
    #[arg(long)]
    pub no_retry: bool,
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// Idle time before each step, so what the previous step left queued (span exports, the
    /// outbox, the store's writes) is done before the next step is measured.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub pause: Duration,
    /// A step passes with no error and p99 at most this.
    #[arg(long, default_value = "50ms", value_parser = parse_duration)]
    pub p99_target: Duration,
    /// loadgen's cap on requests in flight.
    #[arg(long, default_value_t = 256)]
    pub concurrency: usize,
    /// A mode stops ramping after this long.
    #[arg(long, default_value = "120s", value_parser = parse_duration)]
    pub mode_budget: Duration,
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
}

/// The longest a step lasts to reach `min_requests`.
pub const MAX_STEP: Duration = Duration::from_secs(30);

impl BenchConfig {
    /// How long a step at `rate` sends.
    pub fn step_at(&self, rate: f64) -> Duration {
        let for_count = Duration::from_secs_f64(self.min_requests as f64 / rate.max(1.0));
        self.step.max(for_count.min(MAX_STEP))
    }
}

impl BenchArgs {
    pub fn config(&self) -> BenchConfig {
        BenchConfig {
            min_requests: self.min_requests,
            retry_misses: !self.no_retry,
            bin_dir: self.bin_dir.clone(),
            data_dir: self.data_dir.clone(),
            modes: self.modes.clone(),
            common_rate: self.common_rate,
            start_rate: self.start_rate,
            factor: self.factor.max(1.05),
            max_rate: self.max_rate,
            refine: self.refine,
            step: self.step,
            warmup: self.warmup,
            pause: self.pause,
            p99_target: self.p99_target,
            concurrency: self.concurrency,
            mode_budget: self.mode_budget,
            seed: self.seed,
        }
    }
}

/// `loadgen bench-stack`: runs, prints the table, writes the report; exit 1 when it cannot.
pub async fn bench_stack_cmd(args: BenchArgs) -> std::process::ExitCode {
    let report = match bench_stack(&args.config()).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("loadgen bench-stack: {e:#}");
            return std::process::ExitCode::FAILURE;
        }
    };
    print!("{}", report.markdown());
    match write_report(&args.report, &report) {
        Ok(()) => {
            println!("report: {}", args.report.display());
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("loadgen bench-stack: writing the report: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// A step sends at least this many requests (longer than `step` at low rates, at most
    /// [`MAX_STEP`]): p99 of a few hundred requests is their third-worst, one hiccup.
    pub min_requests: u64,
    /// Run a missed step once more and keep the better of the two.
    pub retry_misses: bool,
    /// Where the `collector`, service and `tracelab` binaries are (release).
    pub bin_dir: PathBuf,
    /// Each mode's stack gets a fresh `DIR/<mode>` (SQLite files, the trace store, logs).
    pub data_dir: PathBuf,
    pub modes: Vec<Mode>,
    /// The rate every mode is measured at.
    pub common_rate: f64,
    /// The ramp's first rate, and the factor between steps.
    pub start_rate: f64,
    pub factor: f64,
    pub max_rate: f64,
    /// Bisection steps after the first miss.
    pub refine: u32,
    pub step: Duration,
    /// Unmeasured load before the first measured step (connections, caches, SQLite pages).
    pub warmup: Duration,
    /// Pause between steps, so one step's backlog (outbox, Kafka, export queues) drains.
    pub pause: Duration,
    pub p99_target: Duration,
    pub concurrency: usize,
    /// A mode stops ramping once it has run this long.
    pub mode_budget: Duration,
    pub seed: u64,
}

/// One measured step.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub rate: f64,
    pub throughput: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub errors: u64,
    pub late_starts: u64,
    pub passed: bool,
    pub rss_mib: f64,
    /// Process → cores used on average over the step (1.0 = one core busy).
    pub cpu_cores: BTreeMap<String, f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ModeReport {
    pub mode: Mode,
    pub label: String,
    pub ready_s: f64,
    /// `None` when the mode produces no trace (tracing off) or none became queryable.
    pub first_trace_s: Option<f64>,
    pub rss_idle_mib: f64,
    pub common: Option<Step>,
    pub steps: Vec<Step>,
    /// The highest passing step.
    pub best: Option<Step>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub p99_target_ms: f64,
    pub common_rate: f64,
    pub step_s: f64,
    pub min_requests: u64,
    pub modes: Vec<ModeReport>,
}

/// The ramp does not go below this rate.
const MIN_RATE: f64 = 5.0;

const CHECKOUT_BODY: &str =
    r#"{"items":[{"sku":"LAPTOP-1","qty":1}],"payment":{"method":"card","token":"tok_test_123"}}"#;

/// Runs every mode in turn; a stack that does not start fails the bench.
pub async fn bench_stack(cfg: &BenchConfig) -> anyhow::Result<BenchReport> {
    let mut modes = Vec::new();
    for &mode in &cfg.modes {
        eprintln!("bench-stack: {} — starting a fresh stack", mode.label());
        modes.push(bench_mode(cfg, mode).await?);
    }
    Ok(BenchReport {
        p99_target_ms: ms(cfg.p99_target),
        common_rate: cfg.common_rate,
        step_s: cfg.step.as_secs_f64(),
        min_requests: cfg.min_requests,
        modes,
    })
}

async fn bench_mode(cfg: &BenchConfig, mode: Mode) -> anyhow::Result<ModeReport> {
    let dir = cfg.data_dir.join(mode.slug());
    // A fresh stack: the trace store and the SQLite files of an earlier run would slow it.
    match std::fs::remove_dir_all(&dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            anyhow::bail!("removing {}: {e}", dir.display())
        }
        _ => {}
    }
    let mut opts = StackOptions::for_tests(&cfg.bin_dir, &dir)?;
    opts.service_env = mode.env();
    let started = Instant::now();
    let stack = Stack::start(opts)
        .await
        .map_err(|e| anyhow::anyhow!("{}: the stack did not start: {e}", mode.label()))?;
    let result = measure(cfg, mode, &stack, started).await;
    let killed = stack.shutdown().await;
    if !killed.is_empty() {
        eprintln!("bench-stack: had to kill {killed:?} at shutdown");
    }
    result
}

async fn measure(
    cfg: &BenchConfig,
    mode: Mode,
    stack: &Stack,
    started: Instant,
) -> anyhow::Result<ModeReport> {
    let ready_s = started.elapsed().as_secs_f64();
    let first_trace_s = if mode.traced() {
        first_trace(stack, started).await
    } else {
        None
    };
    // Idle: after start-up settled, before any load.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_idle_mib = rss_mib(stack);
    let mode_started = Instant::now();
    let run_cfg = |rate: f64, duration: Duration| RunConfig {
        target: stack.urls.gateway.clone(),
        rate,
        duration,
        mix: "checkout=100".parse::<Mix>().expect("static mix"),
        seed: cfg.seed,
        arrival: Arrival::Uniform,
        concurrency: cfg.concurrency,
        timeout: Duration::from_secs(10),
        drain_timeout: Duration::from_secs(10),
        progress: Progress::None,
        idempotency_keys: true,
    };
    if !cfg.warmup.is_zero() {
        run(&run_cfg(cfg.common_rate, cfg.warmup)).await?;
        tokio::time::sleep(cfg.pause).await;
    }
    let common = step(
        cfg,
        stack,
        &run_cfg(cfg.common_rate, cfg.step_at(cfg.common_rate)),
    )
    .await?;
    eprintln!("  common {}", common.line());
    let mut steps = Vec::new();
    let mut rate = cfg.start_rate;
    let mut pass: Option<f64> = None;
    let mut miss: Option<f64> = None;
    let mut refined = 0;
    // The geometric ramp, then bisection: each bounded by the step count and the mode's budget.
    for i in 0..64u32 {
        if mode_started.elapsed() > cfg.mode_budget {
            eprintln!("  time budget of this mode used up; stopping the ramp");
            break;
        }
        tokio::time::sleep(cfg.pause).await;
        let mut s = step(cfg, stack, &run_cfg(rate, cfg.step_at(rate))).await?;
        eprintln!("  step {} {}", i + 1, s.line());
        if !s.passed && cfg.retry_misses {
            // On a shared machine one stall of another process fails a step; a rate the stack
            // cannot sustain misses twice.
            tokio::time::sleep(cfg.pause).await;
            let again = step(cfg, stack, &run_cfg(rate, cfg.step_at(rate))).await?;
            eprintln!("  again  {}", again.line());
            if again.passed || again.p99_ms < s.p99_ms {
                s = again;
            }
        }
        if s.passed {
            pass = Some(rate);
        } else {
            miss = Some(rate);
        }
        steps.push(s);
        rate = match (pass, miss) {
            (_, None) if rate * cfg.factor <= cfg.max_rate => rate * cfg.factor,
            (_, None) => break,
            // The first step missed: come down until one passes.
            (None, Some(_)) if rate / cfg.factor >= MIN_RATE => (rate / cfg.factor).round(),
            (None, Some(_)) => break,
            (Some(lo), Some(hi)) => {
                if refined >= cfg.refine || hi / lo < 1.05 {
                    break;
                }
                refined += 1;
                ((lo + hi) / 2.0).round()
            }
        };
    }
    let best = steps
        .iter()
        .filter(|s| s.passed)
        .max_by(|a, b| a.rate.total_cmp(&b.rate))
        .cloned();
    Ok(ModeReport {
        mode,
        label: mode.label().into(),
        ready_s,
        first_trace_s,
        rss_idle_mib,
        common: Some(common),
        steps,
        best,
    })
}

async fn step(cfg: &BenchConfig, stack: &Stack, run_cfg: &RunConfig) -> anyhow::Result<Step> {
    let before = cpu_snapshot(stack);
    let t0 = Instant::now();
    let out = run(run_cfg).await?;
    let wall = t0.elapsed().as_secs_f64();
    let after = cpu_snapshot(stack);
    let rss = rss_mib(stack);
    let summary = RunSummary::new(run_cfg, &out);
    let cpu_cores = after
        .iter()
        .map(|(name, ticks)| {
            let was = before.get(name).copied().unwrap_or(0);
            (
                name.clone(),
                ticks.saturating_sub(was) as f64 / CLOCK_TICKS / wall,
            )
        })
        .collect();
    let p99 = summary.latency_ms.p99;
    Ok(Step {
        rate: run_cfg.rate,
        throughput: summary.expected as f64 / summary.elapsed_s.max(1e-9),
        p50_ms: summary.latency_ms.p50,
        p99_ms: p99,
        errors: summary.errors,
        late_starts: summary.late_starts,
        passed: summary.errors == 0 && p99 <= ms(cfg.p99_target),
        rss_mib: rss,
        cpu_cores,
    })
}

impl Step {
    fn line(&self) -> String {
        format!(
            "{:>6.0}/s: {:>6.1} ok/s  p50 {:>6.1} ms  p99 {:>7.1} ms  errors {}  {}",
            self.rate,
            self.throughput,
            self.p50_ms,
            self.p99_ms,
            self.errors,
            if self.passed { "pass" } else { "miss" }
        )
    }
}

/// One checkout, then polls the query API for its trace; with head sampling below 100 %, sends
/// checkouts (at most 200) until one's `traceresponse` says it was sampled.
async fn first_trace(stack: &Stack, started: Instant) -> Option<f64> {
    let http = runner::client(&RunConfig {
        target: stack.urls.gateway.clone(),
        rate: 1.0,
        duration: Duration::from_secs(1),
        mix: "checkout=100".parse().ok()?,
        seed: 0,
        arrival: Arrival::Uniform,
        concurrency: 1,
        timeout: Duration::from_secs(10),
        drain_timeout: Duration::from_secs(1),
        progress: Progress::None,
        idempotency_keys: false,
    })
    .ok()?;
    let mut trace_id = None;
    for _ in 0..200 {
        let resp = http
            .post(format!("{}/orders", stack.urls.gateway))
            .header("content-type", "application/json")
            .header(contracts::scenario::HEADER, "checkout")
            .body(CHECKOUT_BODY)
            .send()
            .await
            .ok()?;
        let sampled = resp
            .headers()
            .get("traceresponse")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.ends_with("-01"));
        let id = resp
            .headers()
            .get(runner::TRACE_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        if sampled && id.is_some() {
            trace_id = id;
            break;
        }
    }
    let trace_id = trace_id?;
    let client = TraceClient::new(&stack.urls.query);
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = client.get_trace(&trace_id).await {
            return Some(started.elapsed().as_secs_f64());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    None
}

/// CPU ticks of this process's threads, split into the embedded Kafka's (`rdk:*`) and the rest.
fn own_ticks() -> (u64, u64) {
    let (mut kafka, mut rest) = (0, 0);
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return (0, 0);
    };
    for t in tasks.flatten() {
        let p = t.path();
        let comm = std::fs::read_to_string(p.join("comm")).unwrap_or_default();
        let Some(ticks) = std::fs::read_to_string(p.join("stat"))
            .ok()
            .and_then(|s| stat_ticks(&s))
        else {
            continue;
        };
        if comm.starts_with("rdk:") {
            kafka += ticks;
        } else {
            rest += ticks;
        }
    }
    (kafka, rest)
}

fn cpu_snapshot(stack: &Stack) -> BTreeMap<String, u64> {
    let mut m: BTreeMap<String, u64> = stack
        .processes()
        .into_iter()
        .filter_map(|(name, pid)| Some((name, process_ticks(pid)?)))
        .collect();
    let (kafka, rest) = own_ticks();
    m.insert("kafka (embedded)".into(), kafka);
    m.insert("loadgen".into(), rest);
    m
}

/// Summed RSS of the stack's child processes, MiB.
fn rss_mib(stack: &Stack) -> f64 {
    let kib: u64 = stack
        .processes()
        .into_iter()
        .filter_map(|(_, pid)| status_kib(pid, "VmRSS"))
        .sum();
    kib as f64 / 1024.0
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

impl BenchReport {
    /// The overhead ratio of a mode: its best throughput over tracing-off's.
    pub fn ratio(&self, m: &ModeReport) -> Option<f64> {
        let off = self
            .modes
            .iter()
            .find(|r| r.mode == Mode::Off)?
            .best
            .as_ref()?;
        Some(m.best.as_ref()?.throughput / off.throughput)
    }

    /// The markdown report: the summary table, each mode's ramp, and where the CPU went.
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let opt =
            |v: Option<f64>, unit: &str| v.map_or("—".to_string(), |v| format!("{v:.2}{unit}"));
        let _ = writeln!(
            s,
            "| mode | cold start → first trace | RSS idle | best rate (p99 ≤ {:.0} ms) | throughput | p50 | p99 | RSS under load | at {:.0}/s: p50 / p99 | throughput vs off |",
            self.p99_target_ms, self.common_rate
        );
        let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|");
        for m in &self.modes {
            let best = m.best.as_ref();
            let f = |g: fn(&Step) -> f64, unit: &str, digits: usize| {
                best.map_or("—".to_string(), |b| format!("{:.*}{unit}", digits, g(b)))
            };
            let common = m.common.as_ref().map_or("—".to_string(), |c| {
                format!(
                    "{:.1} / {:.1} ms{}",
                    c.p50_ms,
                    c.p99_ms,
                    if c.errors > 0 {
                        format!(" ({} errors)", c.errors)
                    } else {
                        String::new()
                    }
                )
            });
            let first = match m.first_trace_s {
                Some(t) => format!("{t:.2} s"),
                None if m.mode.traced() => "not queryable".into(),
                None => format!("— (ready {:.2} s)", m.ready_s),
            };
            let _ = writeln!(
                s,
                "| {} | {} | {:.0} MiB | {} | {} | {} | {} | {} | {} | {} |",
                m.label,
                first,
                m.rss_idle_mib,
                f(|b| b.rate, "/s", 0),
                f(|b| b.throughput, "/s", 0),
                f(|b| b.p50_ms, " ms", 1),
                f(|b| b.p99_ms, " ms", 1),
                f(|b| b.rss_mib, " MiB", 0),
                common,
                opt(self.ratio(m), ""),
            );
        }
        let _ = writeln!(s);
        for m in &self.modes {
            let _ = writeln!(
                s,
                "{} — every step ({:.0} s, or longer for at least {} requests):",
                m.label, self.step_s, self.min_requests
            );
            let _ = writeln!(s);
            let _ = writeln!(
                s,
                "| rate | throughput | p50 ms | p99 ms | errors | late starts | RSS MiB | |"
            );
            let _ = writeln!(s, "|---|---|---|---|---|---|---|---|");
            for st in m.common.iter().chain(&m.steps) {
                let _ = writeln!(
                    s,
                    "| {:.0}/s | {:.1}/s | {:.1} | {:.1} | {} | {} | {:.0} | {} |",
                    st.rate,
                    st.throughput,
                    st.p50_ms,
                    st.p99_ms,
                    st.errors,
                    st.late_starts,
                    st.rss_mib,
                    if st.passed { "pass" } else { "miss" }
                );
            }
            let _ = writeln!(s);
            if let Some(b) = &m.best {
                let total: f64 = b.cpu_cores.values().sum();
                let mut by: Vec<(&String, &f64)> = b.cpu_cores.iter().collect();
                by.sort_by(|a, b| b.1.total_cmp(a.1));
                let _ = writeln!(
                    s,
                    "{} — CPU at {:.0}/s ({:.2} cores in all), share and CPU time per checkout: {}",
                    m.label,
                    b.rate,
                    total,
                    by.iter()
                        .filter(|(_, c)| **c > 0.0)
                        .map(|(n, c)| format!(
                            "{n} {:.0} % ({:.2} ms/checkout)",
                            100.0 * **c / total.max(1e-9),
                            1000.0 * **c / b.throughput.max(1e-9)
                        ))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                let _ = writeln!(s);
            }
        }
        s
    }
}

/// Writes the report beside its JSON twin.
pub fn write_report(path: &Path, report: &BenchReport) -> Result<(), String> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    std::fs::write(path, report.markdown()).map_err(|e| format!("{}: {e}", path.display()))?;
    let json = serde_json::to_string_pretty(report).map_err(|e| e.to_string())?;
    let json_path = path.with_extension("json");
    std::fs::write(&json_path, json + "\n").map_err(|e| format!("{}: {e}", json_path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_mode_sets_the_standard_variables() {
        assert_eq!(
            Mode::Off.env(),
            vec![("OTEL_SDK_DISABLED".to_string(), "true".to_string())]
        );
        assert!(
            Mode::Head10
                .env()
                .contains(&("OTEL_TRACES_SAMPLER_ARG".into(), "0.1".into()))
        );
        assert!(Mode::Head100.env().contains(&(
            "OTEL_TRACES_SAMPLER".into(),
            "parentbased_traceidratio".into()
        )));
    }

    fn step(rate: f64, throughput: f64, passed: bool) -> Step {
        Step {
            rate,
            throughput,
            p50_ms: 10.0,
            p99_ms: 40.0,
            errors: 0,
            late_starts: 0,
            passed,
            rss_mib: 100.0,
            cpu_cores: BTreeMap::from([("collector".into(), 0.5), ("api-gateway".into(), 0.25)]),
        }
    }

    #[test]
    fn the_table_has_a_row_per_mode_and_the_ratio_against_off() {
        let mode = |m: Mode, best: f64| ModeReport {
            mode: m,
            label: m.label().into(),
            ready_s: 0.5,
            first_trace_s: m.traced().then_some(0.9),
            rss_idle_mib: 80.0,
            common: Some(step(50.0, 50.0, true)),
            steps: vec![step(best, best, true), step(best * 1.5, best, false)],
            best: Some(step(best, best, true)),
        };
        let r = BenchReport {
            p99_target_ms: 50.0,
            common_rate: 50.0,
            step_s: 10.0,
            min_requests: 1000,
            modes: vec![mode(Mode::Off, 400.0), mode(Mode::Head100, 300.0)],
        };
        assert_eq!(r.ratio(&r.modes[1]), Some(0.75));
        let md = r.markdown();
        assert!(md.contains("| head 100 % | 0.90 s |"), "{md}");
        assert!(md.contains("— (ready 0.50 s)"), "{md}");
        assert!(md.contains("| 0.75 |"), "{md}");
        assert!(md.contains("collector 67 % (1.67 ms/checkout)"), "{md}");
    }
}
