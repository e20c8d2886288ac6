//! `GET /api/v1/metrics/red`: RED (rate, errors, duration) over time, from the time series the
//! collector's `spanmetrics` connector keeps (fixed-width buckets in a ring per series of
//! `service.name`, span name and span kind), with exemplars — spans behind the points — that open
//! the trace they belong to.
//!
//! Two forms, one answer type ([`RedResponse`]):
//! - without `service`: the overview, one row per service in [`RedResponse::services`] over its
//!   entry spans (SERVER and CONSUMER; all of its spans when it has neither), without exemplars;
//! - with `service=NAME`: that service's row (with exemplars) and one row per operation and span
//!   kind in [`RedResponse::operations`], narrowed by `operation=` and `spanKind=`.
//!
//! Parameters: `lookback` (Go duration, default `15m`, at most the connector's window) and `step`
//! (Go duration, default one bucket; rounded up to whole buckets). A collector without a
//! spanmetrics connector answers 404 with an [`crate::v1::ApiError`] that says so.

use serde::{Deserialize, Serialize};

/// One point of a series: what happened in `[time_ms, time_ms + step_ms)`; for the whole window
/// in [`RedSeries::total`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct RedPoint {
    /// Unix ms of the start of the interval.
    pub time_ms: u64,
    pub calls: u64,
    /// Spans with status ERROR.
    pub errors: u64,
    /// Calls per second over the interval (the current, unfinished interval is divided by the
    /// time elapsed in it, not by its full width).
    pub rate: f64,
    /// Share of calls with status ERROR, 0–1; `None` without calls.
    pub error_rate: Option<f64>,
    /// Latency percentiles in ms, estimated from the connector's histogram buckets (linear within
    /// a bucket, never above the slowest span seen); `None` without calls.
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

/// A span behind a point: the slowest of its interval, or the slowest error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RedExemplar {
    /// 32 lowercase hex digits.
    pub trace_id: String,
    /// 16 lowercase hex digits.
    pub span_id: String,
    /// The span's operation (a service row merges several).
    pub operation: String,
    /// Unix ms of the span's end (what placed it in its bucket).
    pub time_ms: u64,
    pub duration_ms: f64,
    pub error: bool,
}

/// A service's or an operation's RED over the window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RedSeries {
    pub service: String,
    /// `None` in a service row, and in an overflow row.
    pub operation: Option<String>,
    /// `server`, `client`, `producer`, `consumer`, `internal` or `unspecified`; `None` in a
    /// service row.
    pub span_kind: Option<String>,
    /// Service rows: computed over SERVER and CONSUMER spans (`true`), or over all spans of a
    /// service that has neither (`false`). Operation rows: whether the kind is an entry kind.
    pub entry_spans: bool,
    /// Spans of series beyond the connector's series limits, merged. An overflow row of service
    /// `""` holds spans beyond `time_series.max_series`, of any service.
    pub overflow: bool,
    /// The whole window at once.
    pub total: RedPoint,
    /// One per step, oldest first, all of the window (empty intervals have `calls: 0`).
    pub points: Vec<RedPoint>,
    /// Per point at most two (its slowest span, its slowest error), oldest first; empty in the
    /// overview form.
    pub exemplars: Vec<RedExemplar>,
}

/// The answer of `GET /api/v1/metrics/red`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RedResponse {
    /// The spanmetrics connector whose series answered (`spanmetrics`, `spanmetrics/NAME`).
    pub connector: String,
    /// Width of one stored bucket (`time_series.bucket_width`), the finest step.
    pub bucket_ms: u64,
    /// Step between points: a whole number of buckets.
    pub step_ms: u64,
    /// Unix ms: start of the first point, end of the last.
    pub start_ms: u64,
    pub end_ms: u64,
    /// Service rows, by name.
    pub services: Vec<RedSeries>,
    /// With `service=`: its rows per operation and span kind, by operation then kind.
    pub operations: Vec<RedSeries>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_with_snake_case_fields_and_null_percentiles() {
        let r = RedResponse {
            connector: "spanmetrics".into(),
            bucket_ms: 10_000,
            step_ms: 10_000,
            start_ms: 0,
            end_ms: 10_000,
            services: vec![RedSeries {
                service: "payment-service".into(),
                operation: None,
                span_kind: None,
                entry_spans: true,
                overflow: false,
                total: RedPoint::default(),
                points: vec![RedPoint::default()],
                exemplars: vec![],
            }],
            operations: vec![],
        };
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(
            v["services"][0]["points"][0]["p95_ms"],
            serde_json::Value::Null
        );
        assert_eq!(v["services"][0]["entry_spans"], true);
        let back: RedResponse = serde_json::from_value(v).unwrap();
        assert_eq!(back, r);
    }
}
