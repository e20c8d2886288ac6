//! tracelab's own endpoints under `/api/v1` — what Jaeger's API has no shape for:
//!
//! - `GET /api/v1/sampling` → [`SamplingStatsResponse`]: per-policy kept/dropped counts and recent
//!   decisions over all tail samplers, and per sampling processor ([`ProcessorSampling`]).
//! - `GET /api/v1/sampling/decisions?traceID=` → [`DecisionsResponse`]: the decision history persisted
//!   in this query API's store (the decisions of the tail samplers upstream of it).
//! - the sampling dashboard's timeline and the sampling lab's result: see [`crate::sampling`].
//! - `GET /api/v1/stores` → [`StoresResponse`]: every trace store of the collector, with its query
//!   API's address and its counts and sizes.
//! - `POST /api/v1/traces/lookup?store=` with a [`TraceLookupRequest`] → [`TraceLookupResponse`]: what
//!   one store holds of given traces (span count, error, duration, services), and which it lacks.
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
    /// Whether a span the sampler held had status ERROR (false in decisions recorded before store
    /// schema version 3, which did not record it).
    #[serde(default)]
    pub error: bool,
    /// µs: latest end minus earliest start of the spans the sampler held (0 before schema 3).
    #[serde(default)]
    pub duration_us: u64,
    /// The deciding processor's component id, e.g. `tail_sampling/tail` (empty before schema 3).
    #[serde(default)]
    pub processor: String,
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

/// `GET /api/v1/sampling`. The top-level fields aggregate every `tail_sampling` processor of the
/// collector (counters summed, `policies` concatenated in component-id order, `recent` merged most
/// recent first); `processors` has each sampling processor on its own.
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
    /// Every `tail_sampling` and `probabilistic_sampler` processor, in component-id order.
    #[serde(default)]
    pub processors: Vec<ProcessorSampling>,
}

/// The kind of a sampling processor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SamplerType {
    /// Decides per trace after buffering it (`tail_sampling`).
    #[default]
    TailSampling,
    /// Decides per span / log record from a hash of the trace id (`probabilistic_sampler`).
    ProbabilisticSampler,
}

/// One sampling processor's counts, keyed by its component id. A processor listed in several
/// pipelines runs one instance per pipeline; their counts are summed here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct ProcessorSampling {
    /// The component id, e.g. `tail_sampling/tail` or `probabilistic_sampler/head`.
    pub id: String,
    #[serde(rename = "type")]
    pub processor_type: SamplerType,
    /// The pipelines it sits in, e.g. `["traces/tail"]`.
    pub pipelines: Vec<String>,
    /// Tail sampling only (zero for a probabilistic sampler, which decides per span): traces kept
    /// and dropped.
    pub traces_sampled: u64,
    pub traces_not_sampled: u64,
    pub traces_evicted_early: u64,
    pub traces_span_capped: u64,
    pub late_spans_forwarded: u64,
    pub late_spans_dropped: u64,
    pub pending_traces: u64,
    /// Tail sampling only: its policies in config order.
    pub policies: Vec<PolicyStats>,
    /// Tail sampling only: the trace stores (`tracelab[/NAME]` exporters) its decisions are
    /// persisted into, in id order.
    pub stores: Vec<String>,
    /// Spans passed on with a keep decision (tail sampling: the spans of kept traces, late ones
    /// included, counted when decided; spans still pending count in neither).
    pub spans_sampled: u64,
    /// Spans dropped by the decision.
    pub spans_not_sampled: u64,
    /// Probabilistic sampler in a logs pipeline: log records kept and dropped.
    pub log_records_sampled: u64,
    pub log_records_not_sampled: u64,
}

/// `GET /api/v1/stores`: the collector's trace stores (`tracelab[/NAME]` exporters), in id order.
/// Every store's query API answers the same list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct StoresResponse {
    pub stores: Vec<StoreInfo>,
}

/// One trace store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct StoreInfo {
    /// The exporter's component id, e.g. `tracelab` or `tracelab/head`.
    pub id: String,
    /// The address its query API is bound to (`127.0.0.1:16686`); empty while it is not bound yet.
    pub query_endpoint: String,
    /// Distinct traces with at least one stored span.
    pub traces: u64,
    pub spans: u64,
    /// OTLP log records.
    pub logs: u64,
    /// Bytes of database pages holding data.
    pub used_bytes: u64,
    /// Size of the database file (without its write-ahead log).
    pub file_bytes: u64,
}

/// Most trace ids one `POST /api/v1/traces/lookup` accepts.
pub const MAX_LOOKUP_TRACE_IDS: usize = 10_000;

/// The body of `POST /api/v1/traces/lookup`: at most [`MAX_LOOKUP_TRACE_IDS`] trace ids (hex; like
/// everywhere in the API, any case and left-padded when shorter than 32 digits).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct TraceLookupRequest {
    pub trace_ids: Vec<String>,
}

/// `POST /api/v1/traces/lookup?store=`: the requested traces the store holds, in request order,
/// and those it does not. Ids are answered normalised (32 lowercase hex digits), each once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct TraceLookupResponse {
    pub traces: Vec<TraceFacts>,
    /// Requested ids with no stored span.
    pub missing: Vec<String>,
}

/// What a store holds of one trace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct TraceFacts {
    /// 32 lowercase hex digits.
    pub trace_id: String,
    /// Spans stored.
    pub spans: u64,
    /// Whether any stored span has status ERROR.
    pub error: bool,
    /// µs: latest span end minus earliest span start.
    pub duration_us: u64,
    /// Services of its spans, sorted.
    pub services: Vec<String>,
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
    /// Why the answer may be incomplete (the search stopped at the store's scan bound); omitted
    /// when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
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
                error: true,
                duration_us: 1_300_000,
                processor: "tail_sampling".into(),
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

    #[test]
    fn sampling_stats_without_processors_still_parse() {
        let old = serde_json::json!({
            "policies": [], "traces_sampled": 2, "traces_not_sampled": 1, "traces_evicted_early": 0,
            "traces_span_capped": 0, "late_spans_forwarded": 0, "late_spans_dropped": 0,
            "pending_traces": 0, "recent": []
        });
        let r: SamplingStatsResponse = serde_json::from_value(old).unwrap();
        assert_eq!((r.traces_sampled, r.processors.len()), (2, 0));
    }

    #[test]
    fn a_decision_from_before_error_and_duration_still_parses() {
        let old = serde_json::json!({
            "trace_id": "0".repeat(32), "decision": "sampled", "policy": "errors",
            "trigger": "decision_wait", "span_count": 3, "decided_at_ms": 5
        });
        let d: SamplingDecision = serde_json::from_value(old).unwrap();
        assert_eq!(
            (d.error, d.duration_us, d.processor.as_str()),
            (false, 0, "")
        );
    }

    #[test]
    fn processor_sampling_names_its_type_in_snake_case() {
        let p = ProcessorSampling {
            id: "probabilistic_sampler/head".into(),
            processor_type: SamplerType::ProbabilisticSampler,
            pipelines: vec!["traces/head".into()],
            spans_sampled: 3,
            ..Default::default()
        };
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(v["type"], "probabilistic_sampler");
        assert_eq!(v["spans_sampled"], 3);
        let partial: ProcessorSampling = serde_json::from_value(
            serde_json::json!({"id": "tail_sampling", "type": "tail_sampling"}),
        )
        .unwrap();
        assert_eq!(partial.processor_type, SamplerType::TailSampling);
    }
}
