//! tracelab's own endpoints under `/api/v1` — what Jaeger's API has no shape for:
//!
//! - `GET /api/v1/sampling` → [`SamplingStatsResponse`]: per-policy kept/dropped counts and recent decisions.
//! - `GET /api/v1/sampling/decisions?traceID=` → [`DecisionsResponse`]: the persisted decision history.
//! - `GET /api/v1/traces/{id}/spans?offset=&limit=` → [`SpanWindow`]: a window of a huge trace's spans
//!   ordered by start time, with the total, so a viewer never loads 100k spans at once.
//! - `GET /api/v1/traces?<Jaeger search params>` → [`TraceSummaries`]: search results without the spans.
//! - `GET /api/v1/traces/{id}/logs?spanID=` → [`LogsResponse`]: OTLP log records of a trace or span.
//!
//! Errors on these routes are `{"error": {"code": "...", "message": "..."}}` ([`ApiError`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::jaeger::{KeyValue, Process, Span};

/// Kept or dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Sampled,
    NotSampled,
}

/// Why the sampler decided when it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum DecisionTrigger {
    /// `decision_wait` elapsed after the trace's first span (the normal case).
    #[default]
    DecisionWait,
    /// `num_traces` was reached and this was the oldest undecided trace.
    EvictedEarly,
    /// The trace exceeded the per-trace span cap.
    SpanCap,
    /// The collector was shutting down and decided everything pending.
    Shutdown,
}

/// One recorded decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SamplingDecision {
    /// 32 lowercase hex digits.
    pub trace_id: String,
    pub decision: Decision,
    /// The policy that decided (the first policy that sampled, or the drop policy that dropped); `None`
    /// when no policy matched and the trace was dropped by default.
    pub policy: Option<String>,
    pub trigger: DecisionTrigger,
    pub span_count: u64,
    /// Unix ms.
    pub decided_at_ms: i64,
}

/// `GET /api/v1/sampling/decisions?traceID=&limit=`: persisted decisions, most recent first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct DecisionsResponse {
    pub data: Vec<SamplingDecision>,
}

/// Counts of one policy (in config order). A policy "kept" a trace when it was the one credited for
/// keeping it; `sampled` counts every evaluation that voted sample (several policies can vote sample).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct PolicyStats {
    pub name: String,
    #[serde(rename = "type")]
    pub policy_type: String,
    /// Traces this policy was credited with keeping.
    pub kept: u64,
    /// Traces dropped with this policy credited: its `drop` sub-policies matched, or its
    /// `invert_match` condition matched (traces no policy wanted count in `traces_not_sampled`).
    pub dropped: u64,
    /// Evaluations voting sample.
    pub sampled: u64,
    /// Evaluations voting not sample.
    pub not_sampled: u64,
}

/// `GET /api/v1/sampling`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct SamplingStatsResponse {
    pub policies: Vec<PolicyStats>,
    pub traces_sampled: u64,
    pub traces_not_sampled: u64,
    /// Undecided traces decided before `decision_wait` because `num_traces` was reached.
    pub traces_evicted_early: u64,
    /// Traces that hit the per-trace span cap.
    pub traces_span_capped: u64,
    /// Spans arriving after their trace's decision: forwarded (sampled) or dropped (not sampled).
    pub late_spans_forwarded: u64,
    pub late_spans_dropped: u64,
    /// Traces waiting for a decision right now.
    pub pending_traces: u64,
    /// Most recent first.
    pub recent: Vec<SamplingDecision>,
}

/// `GET /api/v1/traces/{id}/spans?offset=&limit=`: spans ordered by (start time, duration, arrival).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpanWindow {
    pub trace_id: String,
    /// Spans in the whole trace.
    pub total: u64,
    pub offset: u64,
    pub limit: u64,
    pub spans: Vec<Span>,
    /// Only the processes the spans of this window reference, numbered within this window:
    /// `p1` here need not be `p1` in the next window (a reader merging windows re-keys them).
    pub processes: BTreeMap<String, Process>,
    /// Earliest start and latest end over the WHOLE trace (µs), so a window can be drawn to scale.
    pub trace_start_time: u64,
    pub trace_end_time: u64,
}

/// Spans per service within a trace summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceSpanCount {
    pub service: String,
    pub span_count: u64,
    pub error_count: u64,
}

/// A search result without its spans.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceSummary {
    pub trace_id: String,
    /// The root span's service and operation (empty when the root has not arrived).
    pub root_service: String,
    pub root_operation: String,
    /// µs since the epoch.
    pub start_time: u64,
    /// µs: latest end minus earliest start.
    pub duration: u64,
    pub span_count: u64,
    pub error_count: u64,
    pub services: Vec<ServiceSpanCount>,
}

/// `GET /api/v1/traces?...`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceSummaries {
    pub data: Vec<TraceSummary>,
    pub total: u64,
    pub limit: u64,
}

/// An OTLP log record as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogRecord {
    /// µs since the epoch (the record's time, or its observed time when unset).
    pub timestamp: u64,
    pub severity_number: i32,
    pub severity_text: String,
    /// The body rendered as text (non-string bodies as JSON).
    pub body: String,
    /// 32 hex, empty when the record has no trace context.
    pub trace_id: String,
    /// 16 hex, empty when unset.
    pub span_id: String,
    pub service_name: String,
    pub attributes: Vec<KeyValue>,
    pub resource: Vec<KeyValue>,
}

/// `GET /api/v1/traces/{id}/logs?spanID=`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogsResponse {
    pub data: Vec<LogRecord>,
    pub total: u64,
}

/// `{"error": {"code": "bad_request", "message": "..."}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    pub error: ApiErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiErrorDetail {
    pub code: String,
    pub message: String,
}

impl ApiError {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            error: ApiErrorDetail {
                code: code.into(),
                message: message.into(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampling_stats_serialise_with_snake_case_enums() {
        let r = SamplingStatsResponse {
            policies: vec![PolicyStats {
                name: "errors".into(),
                policy_type: "status_code".into(),
                kept: 3,
                ..Default::default()
            }],
            recent: vec![SamplingDecision {
                trace_id: "0".repeat(32),
                decision: Decision::NotSampled,
                policy: None,
                trigger: DecisionTrigger::EvictedEarly,
                span_count: 4,
                decided_at_ms: 1,
            }],
            ..Default::default()
        };
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["policies"][0]["type"], "status_code");
        assert_eq!(v["recent"][0]["decision"], "not_sampled");
        assert_eq!(v["recent"][0]["trigger"], "evicted_early");
        let back: SamplingStatsResponse = serde_json::from_value(v).unwrap();
        assert_eq!(back, r);
    }
}
