//! The sampling dashboard's endpoints (tracelab's own, beside [`crate::v1`]'s `/api/v1/sampling`):
//!
//! - `GET /api/v1/sampling/timeline?lookback=&step=&slowMs=&end=&store=` → [`SamplingTimeline`]:
//!   per tail-sampling processor and per deciding policy, per time bucket, the traces kept and
//!   dropped, and how many of the error traces and of the slow traces were kept — aggregated from
//!   the decisions persisted in the store.
//! - `PUT /api/v1/sampling/lab` with a [`SamplingLabResult`] (what `loadgen sampling-lab` measured,
//!   at most [`MAX_LAB_RESULT_BYTES`]) and `GET /api/v1/sampling/lab` → the latest one, or 404.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Most buckets one timeline answers (`lookback / step`, rounded up).
pub const MAX_TIMELINE_BUCKETS: u64 = 1440;
/// Buckets of a timeline asked for without `step`.
pub const DEFAULT_TIMELINE_BUCKETS: u64 = 60;
/// The slow threshold of a processor that has no top-level `latency` policy, when `slowMs` is not
/// given (the sampling lab's `--slow-ms` default too).
pub const DEFAULT_SLOW_MS: u64 = 1000;
/// Largest `PUT /api/v1/sampling/lab` body.
pub const MAX_LAB_RESULT_BYTES: usize = 256 * 1024;
/// Most strategies one lab result may list.
pub const MAX_LAB_STRATEGIES: usize = 64;

/// Decision counts over one span of time. Error and slow traces are counted among the decisions
/// that recorded the trace's error and duration (all since store schema version 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct DecisionCounts {
    pub kept: u64,
    pub dropped: u64,
    /// Traces with a span of status ERROR among the spans the sampler held.
    pub error_traces: u64,
    pub error_kept: u64,
    /// Traces at least the timeline's `slow_ms` long (latest end − earliest start).
    pub slow_traces: u64,
    pub slow_kept: u64,
}

impl DecisionCounts {
    pub fn traces(&self) -> u64 {
        self.kept + self.dropped
    }

    /// Adds `o` into `self`.
    pub fn add(&mut self, o: &DecisionCounts) {
        self.kept += o.kept;
        self.dropped += o.dropped;
        self.error_traces += o.error_traces;
        self.error_kept += o.error_kept;
        self.slow_traces += o.slow_traces;
        self.slow_kept += o.slow_kept;
    }

    /// Percentage of error traces kept; `None` without error traces.
    pub fn error_kept_pct(&self) -> Option<f64> {
        pct(self.error_kept, self.error_traces)
    }

    /// Percentage of slow traces kept; `None` without slow traces.
    pub fn slow_kept_pct(&self) -> Option<f64> {
        pct(self.slow_kept, self.slow_traces)
    }

    /// Percentage of all traces kept; `None` without decisions.
    pub fn kept_pct(&self) -> Option<f64> {
        pct(self.kept, self.traces())
    }
}

fn pct(n: u64, of: u64) -> Option<f64> {
    (of > 0).then(|| 100.0 * n as f64 / of as f64)
}

/// One time bucket: decisions made in `[start_ms, start_ms + step_ms)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct TimelineBucket {
    /// Unix ms.
    pub start_ms: i64,
    #[serde(flatten)]
    pub counts: DecisionCounts,
}

/// Where a processor's slow threshold came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SlowSource {
    /// The request's `slowMs`.
    Parameter,
    /// The processor's first top-level `latency` policy's `threshold_ms` (named in `slow_policy`).
    LatencyPolicy,
    /// [`DEFAULT_SLOW_MS`]: no `slowMs`, and the processor has no latency policy (or is unknown to
    /// this collector, e.g. decisions from before a config change).
    #[default]
    Default,
}

/// The decisions credited to one policy of a processor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct PolicyTimeline {
    /// The deciding policy (`composite/sub` for a composite's sub-policy); `None`: no policy
    /// matched and the trace was dropped by default.
    pub policy: Option<String>,
    /// The policy's type when the processor is configured here (e.g. `status_code`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_type: Option<String>,
    pub total: DecisionCounts,
    /// Every bucket of the timeline, oldest first (zeros included).
    pub buckets: Vec<TimelineBucket>,
}

/// One tail-sampling processor's decisions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ProcessorTimeline {
    /// The component id, e.g. `tail_sampling/tail`; empty for decisions recorded before store
    /// schema version 3, which did not name their processor.
    pub processor: String,
    /// Whether this collector runs the processor now (else its decisions are history).
    pub configured: bool,
    pub slow_ms: u64,
    pub slow_source: SlowSource,
    /// With [`SlowSource::LatencyPolicy`]: that policy's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slow_policy: Option<String>,
    pub total: DecisionCounts,
    /// Every bucket, oldest first: the processor's decisions whatever policy decided.
    pub buckets: Vec<TimelineBucket>,
    /// Its configured policies in config order (also those without decisions), then other
    /// deciding policies seen (sorted), then "no policy matched" when it occurred.
    pub policies: Vec<PolicyTimeline>,
}

/// `GET /api/v1/sampling/timeline`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct SamplingTimeline {
    /// The store whose decisions these are.
    pub store: String,
    /// Unix ms; buckets cover `[start_ms, end_ms)` in steps of `step_ms`, aligned to `step_ms`.
    pub start_ms: i64,
    pub end_ms: i64,
    pub step_ms: i64,
    /// Processors in id order: those persisting into this store, then any other found in the range.
    pub processors: Vec<ProcessorTimeline>,
}

/// The run's ground truth, from the sampling lab's keep-everything store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct LabTruth {
    /// Requests answered with a trace id.
    pub traced_requests: u64,
    /// Of those, traces found in the keep-everything store.
    pub traces: u64,
    pub spans: u64,
    pub error_traces: u64,
    pub slow_traces: u64,
}

/// What one sampling strategy (one store of the lab's collector) kept of the lab's run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StrategyResult {
    /// Short name (`all`, `head`, `tail`, `rate`, `errors`, or the store's name).
    pub name: String,
    /// The store's component id.
    pub store: String,
    pub description: String,
    pub traces_kept: u64,
    pub traces_kept_pct: f64,
    pub spans_kept: u64,
    pub spans_kept_pct: f64,
    pub error_traces_kept: u64,
    pub error_traces_kept_pct: f64,
    pub slow_traces_kept: u64,
    pub slow_traces_kept_pct: f64,
    /// Kept traces with fewer spans than the truth (spans that arrived after a decision, or a
    /// strategy that cut a trace).
    pub partial_traces: u64,
    /// Growth of the store's used bytes during the run.
    pub bytes_stored: u64,
    /// `bytes_stored` scaled to a million requests of the same mix.
    pub bytes_per_million_requests: f64,
}

/// `PUT` / `GET /api/v1/sampling/lab`: one `loadgen sampling-lab` run's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SamplingLabResult {
    /// When the lab finished measuring (unix ms).
    pub finished_at_ms: i64,
    /// Requests sent.
    pub requests: u64,
    /// Requests per second asked for, the seed and the scenario mix (scenario → weight).
    pub rate: f64,
    pub seed: u64,
    pub mix: BTreeMap<String, u32>,
    /// A trace at least this long counted as slow.
    pub slow_ms: u64,
    pub truth: LabTruth,
    pub strategies: Vec<StrategyResult>,
}

/// `1.5 MiB`: bytes in binary units with one decimal (the lab's report and the dashboard).
pub fn human_bytes(b: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", UNITS[u])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_flattens_its_counts_and_shares_need_a_denominator() {
        let b = TimelineBucket {
            start_ms: 60_000,
            counts: DecisionCounts {
                kept: 3,
                dropped: 1,
                error_traces: 2,
                error_kept: 2,
                slow_traces: 0,
                slow_kept: 0,
            },
        };
        let v = serde_json::to_value(b).unwrap();
        assert_eq!(v["start_ms"], 60_000);
        assert_eq!(v["kept"], 3);
        assert_eq!(v["error_kept"], 2);
        assert_eq!(serde_json::from_value::<TimelineBucket>(v).unwrap(), b);
        assert_eq!(b.counts.error_kept_pct(), Some(100.0));
        assert_eq!(b.counts.slow_kept_pct(), None, "no slow traces: no share");
        assert_eq!(b.counts.kept_pct(), Some(75.0));
        let mut sum = b.counts;
        sum.add(&b.counts);
        assert_eq!((sum.traces(), sum.error_traces), (8, 4));
        assert_eq!(human_bytes(1536.0 * 1024.0), "1.5 MiB");
        let source = serde_json::to_value(SlowSource::LatencyPolicy).unwrap();
        assert_eq!(source, "latency_policy");
    }
}
