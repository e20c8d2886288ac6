//! Runs a plan against the gateway: an open model. Each request leaves at its scheduled time
//! whatever the system is doing, up to `concurrency` requests in flight. When the cap is reached
//! the next request waits for a free slot — the run warns once, counts every late start, and
//! still measures latency from the scheduled time, so a slow system cannot hide its slowness by
//! slowing the load down.
//!
//! Every loop here is bounded: the plan has `rate × duration` requests; dispatching stops at
//! `duration + drain_timeout` even when the cap holds requests back, and in-flight requests get
//! `drain_timeout` to finish after the last one left.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::mix::Mix;
use crate::plan::{Arrival, Planned, plan};
use crate::record::{Outcome, Recorder, TransportError};

/// Idempotency keys: `loadgen-<run nonce>-<index>` (a retry by hand with the same key is safe).
pub const IDEMPOTENCY_HEADER: &str = contracts::payments::IDEMPOTENCY_KEY_HEADER;
/// The gateway's trace id response header.
pub const TRACE_ID_HEADER: &str = "x-trace-id";

/// How progress is shown while a run lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Progress {
    /// A live bar on a terminal, a line every 5 s otherwise (CI logs).
    #[default]
    Auto,
    Bar,
    Lines,
    None,
}

#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Base URL of the gateway, without a trailing slash.
    pub target: String,
    pub rate: f64,
    pub duration: Duration,
    pub mix: Mix,
    pub seed: u64,
    pub arrival: Arrival,
    pub concurrency: usize,
    pub timeout: Duration,
    pub drain_timeout: Duration,
    pub progress: Progress,
    pub idempotency_keys: bool,
}

/// What a run produced.
#[derive(Debug)]
pub struct RunOutput {
    pub planned: u64,
    /// Requests that left (the rest were cut off at `duration + drain_timeout`).
    pub sent: u64,
    /// Sent but unanswered when the drain timeout ran out (aborted, counted as errors).
    pub unfinished: u64,
    pub outcomes: Vec<Outcome>,
    pub recorder: Recorder,
    /// First dispatch → last answer (or the drain deadline).
    pub elapsed: Duration,
    /// First dispatch → last dispatch.
    pub dispatch_span: Duration,
    /// When the concurrency cap was first reached, since the start.
    pub cap_reached_at: Option<Duration>,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("--rate must be a number above 0 (requests per second), got {0}")]
    Rate(f64),
    #[error(
        "--duration gives no request at --rate {rate}/s: at least one request needs {need:.3} s"
    )]
    Empty { rate: f64, need: f64 },
    #[error("--concurrency must be at least 1")]
    Concurrency,
    #[error("--target {0} is not an http:// or https:// URL")]
    Target(String),
    #[error(
        "nothing answers at {target} ({cause}): start the stack first (`make demo`, or `docker compose up`)"
    )]
    Unreachable { target: String, cause: String },
    #[error("building the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

impl RunConfig {
    pub fn validate(&self) -> Result<(), RunError> {
        if !(self.rate > 0.0 && self.rate.is_finite()) {
            return Err(RunError::Rate(self.rate));
        }
        if (self.rate * self.duration.as_secs_f64()).floor() < 1.0 {
            return Err(RunError::Empty {
                rate: self.rate,
                need: 1.0 / self.rate,
            });
        }
        if self.concurrency == 0 {
            return Err(RunError::Concurrency);
        }
        if !(self.target.starts_with("http://") || self.target.starts_with("https://")) {
            return Err(RunError::Target(self.target.clone()));
        }
        Ok(())
    }

    pub fn plan(&self) -> Vec<Planned> {
        plan(&self.mix, self.rate, self.duration, self.arrival, self.seed)
    }
}

/// The shared HTTP client: one connection pool sized to the cap, Nagle off.
pub fn client(cfg: &RunConfig) -> Result<reqwest::Client, RunError> {
    Ok(reqwest::Client::builder()
        .timeout(cfg.timeout)
        .connect_timeout(Duration::from_secs(5).min(cfg.timeout))
        .pool_max_idle_per_host(cfg.concurrency)
        .tcp_nodelay(true)
        .user_agent(concat!("tracelab-loadgen/", env!("CARGO_PKG_VERSION")))
        .build()?)
}

/// Fails fast, with the fix, when no gateway answers at the target.
pub async fn preflight(client: &reqwest::Client, target: &str) -> Result<(), RunError> {
    let url = format!("{target}/healthz");
    match client
        .get(&url)
        .timeout(Duration::from_secs(5))
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(e) => Err(RunError::Unreachable {
            target: target.to_string(),
            cause: root_cause(&e),
        }),
    }
}

/// The innermost error of a chain (`Connection refused` rather than reqwest's outer message).
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// Runs the plan of `cfg` (see the module header).
pub async fn run(cfg: &RunConfig) -> Result<RunOutput, RunError> {
    cfg.validate()?;
    let client = client(cfg)?;
    preflight(&client, &cfg.target).await?;
    let planned = cfg.plan();
    let total = planned.len() as u64;
    let nonce = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
    let recorder = Arc::new(Mutex::new(Recorder::default()));
    let outcomes = Arc::new(Mutex::new(Vec::with_capacity(planned.len())));
    let sem = Arc::new(Semaphore::new(cfg.concurrency));
    let bar = progress_bar(cfg.progress, total);
    let start = Instant::now() + Duration::from_millis(10);
    let dispatch_deadline = start + cfg.duration + cfg.drain_timeout;
    let ticker = tokio::spawn(tick(
        bar.clone(),
        recorder.clone(),
        sem.clone(),
        cfg.concurrency,
        cfg.progress,
    ));

    let mut tasks = JoinSet::new();
    let mut sent = 0u64;
    let mut cap_reached_at = None;
    let mut last_dispatch = Duration::ZERO;
    for p in planned {
        if Instant::now() >= dispatch_deadline {
            break;
        }
        let due = start + p.at;
        tokio::time::sleep_until(due).await;
        let permit = match sem.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                if cap_reached_at.is_none() {
                    let at = Instant::now() - start;
                    cap_reached_at = Some(at);
                    say(
                        &bar,
                        format!(
                            "warning: concurrency cap {} reached {:.1} s into the run: {} requests are in flight \
                         and the next ones leave late. Their latency still counts from their scheduled time. \
                         Raise --concurrency or lower --rate.",
                            cfg.concurrency,
                            at.as_secs_f64(),
                            cfg.concurrency
                        ),
                    );
                }
                match tokio::time::timeout_at(dispatch_deadline, sem.clone().acquire_owned()).await
                {
                    Ok(Ok(permit)) => permit,
                    _ => break,
                }
            }
        };
        sent += 1;
        last_dispatch = Instant::now().saturating_duration_since(start);
        let client = client.clone();
        let target = cfg.target.clone();
        let nonce = cfg.idempotency_keys.then(|| nonce.clone());
        let recorder = recorder.clone();
        let outcomes = outcomes.clone();
        let bar = bar.clone();
        tasks.spawn(async move {
            let start_delay = Instant::now().saturating_duration_since(due);
            let (result, trace_id) = send(&client, &target, &p, nonce.as_deref()).await;
            let outcome = Outcome {
                index: p.index,
                scenario: p.scenario,
                start_delay,
                latency: Instant::now().saturating_duration_since(due),
                result,
                trace_id,
            };
            lock(&recorder).record(&outcome);
            lock(&outcomes).push(outcome);
            bar.inc(1);
            drop(permit);
        });
        while tasks.try_join_next().is_some() {}
    }
    let drained = tokio::time::timeout(cfg.drain_timeout, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    let unfinished = if drained.is_err() {
        let n = tasks.len() as u64;
        tasks.abort_all();
        n
    } else {
        0
    };
    let elapsed = Instant::now().saturating_duration_since(start);
    ticker.abort();
    bar.finish_and_clear();
    let recorder = lock(&recorder).clone();
    let mut outcomes = std::mem::take(&mut *lock(&outcomes));
    outcomes.sort_by_key(|o| o.index);
    Ok(RunOutput {
        planned: total,
        sent,
        unfinished,
        outcomes,
        recorder,
        elapsed,
        dispatch_span: last_dispatch,
        cap_reached_at,
    })
}

async fn send(
    client: &reqwest::Client,
    target: &str,
    p: &Planned,
    nonce: Option<&str>,
) -> (Result<u16, TransportError>, Option<String>) {
    let mut req = client
        .post(format!("{target}/orders"))
        .header(contracts::scenario::HEADER, p.scenario.name())
        .json(&p.body);
    if let Some(nonce) = nonce {
        req = req.header(IDEMPOTENCY_HEADER, format!("loadgen-{nonce}-{}", p.index));
    }
    match req.send().await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            let trace_id = resp
                .headers()
                .get(TRACE_ID_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            match resp.bytes().await {
                Ok(_) => (Ok(status), trace_id),
                Err(e) => (Err(TransportError::of(&e)), trace_id),
            }
        }
        Err(e) => (Err(TransportError::of(&e)), None),
    }
}

/// A line above the bar, or on stderr when no bar is drawn.
fn say(bar: &ProgressBar, line: String) {
    if bar.is_hidden() {
        eprintln!("{line}");
    } else {
        bar.println(line);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn progress_bar(mode: Progress, total: u64) -> ProgressBar {
    let target = match mode {
        Progress::Auto | Progress::Bar => ProgressDrawTarget::stderr_with_hz(4),
        Progress::Lines | Progress::None => ProgressDrawTarget::hidden(),
    };
    let bar = ProgressBar::with_draw_target(Some(total), target);
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {msg}")
            .expect("static template")
            .progress_chars("=> "),
    );
    bar
}

/// The live line: rate over the last second, errors so far, p50/p99 so far, requests in flight.
async fn tick(
    bar: ProgressBar,
    recorder: Arc<Mutex<Recorder>>,
    sem: Arc<Semaphore>,
    cap: usize,
    mode: Progress,
) {
    let lines = mode == Progress::Lines || (mode == Progress::Auto && bar.is_hidden());
    let every = Duration::from_millis(250);
    let mut interval = tokio::time::interval(every);
    let mut last = 0u64;
    let mut rate = 0.0f64;
    let started = Instant::now();
    let mut next_line = started + Duration::from_secs(5);
    loop {
        interval.tick().await;
        let (done, errors, p50, p99) = {
            let r = lock(&recorder);
            (
                r.completed,
                r.errors,
                r.all.value_at_quantile(0.5) as f64 / 1000.0,
                r.all.value_at_quantile(0.99) as f64 / 1000.0,
            )
        };
        // Exponential smoothing over ~1 s of 250 ms samples.
        let now_rate = (done - last) as f64 / every.as_secs_f64();
        rate = if last == 0 && rate == 0.0 {
            now_rate
        } else {
            0.75 * rate + 0.25 * now_rate
        };
        last = done;
        let in_flight = cap - sem.available_permits();
        let msg = format!(
            "{rate:7.1} req/s  errors {errors}  p50 {p50:.1} ms  p99 {p99:.1} ms  in flight {in_flight}"
        );
        if mode == Progress::None {
            continue;
        }
        if lines {
            if Instant::now() >= next_line {
                eprintln!(
                    "[{:5.1} s] {done} done  {msg}",
                    started.elapsed().as_secs_f64()
                );
                next_line += Duration::from_secs(5);
            }
        } else {
            bar.set_message(msg);
        }
    }
}
