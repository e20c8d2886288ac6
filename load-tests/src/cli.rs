//! The flags of `loadgen run` (which `loadgen sampling-lab` takes too), and durations as people
//! write them (`500ms`, `60s`, `2m`).

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::mix::{DEFAULT_MIX, Mix};
use crate::plan::Arrival;
use crate::runner::{Progress, RunConfig};

/// `60s`, `500ms`, `2m`, `1h`, or a plain number of seconds (`1.5`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration (e.g. 60s, 500ms, 2m)"))?;
    let secs = match unit.trim() {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        other => return Err(format!("`{s}`: unknown unit `{other}` (use ms, s, m or h)")),
    };
    if !secs.is_finite() || secs > 7.0 * 86_400.0 {
        return Err(format!("`{s}` is out of range (at most a week)"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// What to send and how fast.
#[derive(Args, Debug, Clone)]
pub struct LoadArgs {
    /// The gateway's base URL.
    #[arg(long, env = "LOADGEN_TARGET", default_value = "http://127.0.0.1:8080")]
    pub target: String,
    /// Requests per second (the arrival rate; it does not slow down when the system does).
    #[arg(long, default_value_t = 50.0)]
    pub rate: f64,
    /// How long requests keep arriving: 60s, 500ms, 2m.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Scenario weights, NAME=WEIGHT,...; each request forces its scenario with X-Tracelab-Scenario.
    #[arg(long, default_value = DEFAULT_MIX)]
    pub mix: Mix,
    /// Seed of the request sequence (arrivals, scenarios, bodies): the same seed repeats a run exactly.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// How arrivals are spaced.
    #[arg(long, value_enum, default_value = "uniform")]
    pub arrival: Arrival,
    /// At most this many requests in flight; beyond it requests leave late (warned, counted, and
    /// their latency still measured from their scheduled time).
    #[arg(long, default_value_t = 256)]
    pub concurrency: usize,
    /// Per-request timeout (a request still unanswered counts as a `timeout` error).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// After the last request leaves, how long in-flight requests may still take.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub drain_timeout: Duration,
    /// Live progress: a bar on a terminal, a line every 5 s otherwise.
    #[arg(long, value_enum, default_value = "auto")]
    pub progress: Progress,
    /// Do not send an Idempotency-Key with each request.
    #[arg(long)]
    pub no_idempotency_keys: bool,
}

impl LoadArgs {
    pub fn config(&self) -> RunConfig {
        RunConfig {
            target: self.target.trim_end_matches('/').to_string(),
            rate: self.rate,
            duration: self.duration,
            mix: self.mix.clone(),
            seed: self.seed,
            arrival: self.arrival,
            concurrency: self.concurrency,
            timeout: self.timeout,
            drain_timeout: self.drain_timeout,
            progress: self.progress,
            idempotency_keys: !self.no_idempotency_keys,
        }
    }
}

/// Where results go.
#[derive(Args, Debug, Clone)]
pub struct OutputArgs {
    /// Write the JSON summary here.
    #[arg(long)]
    pub summary: Option<PathBuf>,
    /// Write the SVG plot here [default: beside --summary as NAME.svg, else ./loadgen-latency.svg
    /// for `run` and ./sampling-lab.svg for `sampling-lab`].
    #[arg(long)]
    pub plot: Option<PathBuf>,
}

impl OutputArgs {
    pub fn plot_path(&self, fallback: &str) -> PathBuf {
        self.plot.clone().unwrap_or_else(|| {
            self.summary
                .as_ref()
                .map_or_else(|| PathBuf::from(fallback), |s| s.with_extension("svg"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_as_people_write_them() {
        assert_eq!(parse_duration("60s").unwrap(), Duration::from_secs(60));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        assert!(
            parse_duration("5 parsecs")
                .unwrap_err()
                .contains("unknown unit")
        );
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("9999h").is_err());
    }
}
