//! The end of a run: the JSON summary (`--summary FILE`, a stable shape scripts and tests read),
//! the table printed on the terminal, both built from the same [`RunSummary`].

use std::collections::BTreeMap;
use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::mix::expected_statuses;
use crate::runner::{RunConfig, RunOutput};

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct Percentiles {
    pub count: u64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Percentiles {
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Self {
            count: h.len(),
            mean: h.mean() / 1000.0,
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
        }
    }
}

/// One scenario's answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScenarioSummary {
    pub name: String,
    pub requests: u64,
    /// What the scenario answers when the platform works as designed.
    pub expected_statuses: Vec<u16>,
    /// HTTP status → count.
    pub statuses: BTreeMap<String, u64>,
    /// No HTTP answer: `connect`, `timeout`, `io` → count.
    pub transport_errors: BTreeMap<String, u64>,
    pub expected: u64,
    pub unexpected: u64,
    pub latency_ms: Percentiles,
}

/// `--summary FILE`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    pub target: String,
    pub seed: u64,
    /// Requests per second asked for.
    pub rate: f64,
    pub duration_s: f64,
    pub arrival: String,
    pub mix: BTreeMap<String, u32>,
    pub concurrency_cap: usize,
    pub planned: u64,
    pub sent: u64,
    /// Requests with an answer or a transport error.
    pub completed: u64,
    /// Planned but never sent (dispatching stops at duration + drain timeout).
    pub not_sent: u64,
    /// Sent, still unanswered at the drain deadline (counted in `errors`).
    pub unfinished: u64,
    /// Answers the scenario explains.
    pub expected: u64,
    /// Unexpected statuses, transport errors and unfinished requests.
    pub errors: u64,
    pub cap_reached: bool,
    /// Requests the cap held back past their scheduled time (more than 5 ms).
    pub late_starts: u64,
    pub max_start_delay_ms: f64,
    pub elapsed_s: f64,
    /// Requests sent per second while arrivals lasted (equals `rate` unless the cap held requests back).
    pub send_rate: f64,
    /// Answers per second, first request to last answer.
    pub throughput: f64,
    /// HTTP status → count, all scenarios.
    pub statuses: BTreeMap<String, u64>,
    /// From each request's scheduled time to the last byte of its answer.
    pub latency_ms: Percentiles,
    pub scenarios: Vec<ScenarioSummary>,
}

impl RunSummary {
    pub fn new(cfg: &RunConfig, out: &RunOutput) -> Self {
        let r = &out.recorder;
        let mut statuses = BTreeMap::new();
        let scenarios = r
            .by_scenario
            .iter()
            .map(|(s, t)| {
                for (code, n) in &t.statuses {
                    *statuses.entry(code.to_string()).or_default() += n;
                }
                ScenarioSummary {
                    name: s.name().to_string(),
                    requests: t.expected + t.unexpected,
                    expected_statuses: expected_statuses(*s).to_vec(),
                    statuses: t
                        .statuses
                        .iter()
                        .map(|(k, v)| (k.to_string(), *v))
                        .collect(),
                    transport_errors: t
                        .transport
                        .iter()
                        .map(|(k, v)| (k.as_str().to_string(), *v))
                        .collect(),
                    expected: t.expected,
                    unexpected: t.unexpected,
                    latency_ms: Percentiles::of(&t.latency),
                }
            })
            .collect();
        let elapsed = out.elapsed.as_secs_f64();
        Self {
            target: cfg.target.clone(),
            seed: cfg.seed,
            rate: cfg.rate,
            duration_s: cfg.duration.as_secs_f64(),
            arrival: format!("{:?}", cfg.arrival).to_lowercase(),
            mix: cfg.mix.weights(),
            concurrency_cap: cfg.concurrency,
            planned: out.planned,
            sent: out.sent,
            completed: r.completed,
            not_sent: out.planned - out.sent,
            unfinished: out.unfinished,
            expected: r.completed - r.errors,
            errors: r.errors + out.unfinished,
            cap_reached: out.cap_reached_at.is_some(),
            late_starts: r.late_starts,
            max_start_delay_ms: r.max_start_delay.as_secs_f64() * 1000.0,
            elapsed_s: elapsed,
            // n requests span n - 1 gaps: add one gap so a full run reads as `rate`.
            send_rate: out.sent as f64 / (out.dispatch_span.as_secs_f64() + 1.0 / cfg.rate),
            throughput: if elapsed > 0.0 {
                r.completed as f64 / elapsed
            } else {
                0.0
            },
            statuses,
            latency_ms: Percentiles::of(&r.all),
            scenarios,
        }
    }

    /// The table printed at the end of `loadgen run`.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{} requests to {} in {:.1} s ({:.1} req/s asked, {:.1} sent/s), seed {}, mix {}",
            self.sent,
            self.target,
            self.elapsed_s,
            self.rate,
            self.send_rate,
            self.seed,
            self.mix
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",")
        );
        let _ = writeln!(
            s,
            "{:<24} {:>7}  {:<24} {:>6} {:>9} {:>9} {:>9} {:>9}",
            "scenario", "sent", "statuses", "errors", "p50 ms", "p90 ms", "p99 ms", "max ms"
        );
        let mut rows: Vec<(&str, u64, String, u64, Percentiles)> = self
            .scenarios
            .iter()
            .map(|sc| {
                let mut codes: Vec<String> = sc
                    .statuses
                    .iter()
                    .map(|(k, v)| format!("{k}:{v}"))
                    .collect();
                codes.extend(sc.transport_errors.iter().map(|(k, v)| format!("{k}:{v}")));
                (
                    sc.name.as_str(),
                    sc.requests,
                    codes.join(" "),
                    sc.unexpected,
                    sc.latency_ms,
                )
            })
            .collect();
        rows.push((
            "all",
            self.completed,
            self.statuses
                .iter()
                .map(|(k, v)| format!("{k}:{v}"))
                .collect::<Vec<_>>()
                .join(" "),
            self.errors,
            self.latency_ms,
        ));
        for (name, sent, codes, errors, p) in rows {
            let _ = writeln!(
                s,
                "{name:<24} {sent:>7}  {codes:<24} {errors:>6} {:>9.1} {:>9.1} {:>9.1} {:>9.1}",
                p.p50, p.p90, p.p99, p.max
            );
        }
        if self.cap_reached {
            let _ = writeln!(
                s,
                "warning: the concurrency cap ({}) was reached: {} requests left late (at most {:.0} ms); \
                 latency counts from their scheduled time",
                self.concurrency_cap, self.late_starts, self.max_start_delay_ms
            );
        }
        if self.not_sent + self.unfinished > 0 {
            let _ = writeln!(
                s,
                "warning: {} planned requests were never sent and {} were still unanswered at the drain deadline",
                self.not_sent, self.unfinished
            );
        }
        s
    }
}
