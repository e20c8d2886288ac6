//! JSON types of the tracelab collector's query API — one definition shared by the collector (which
//! serves them), the viewer and the lab's trace-assertion kit (which read them).
//!
//! - [`jaeger`]: the Jaeger HTTP JSON API shapes (`/api/services`, `/api/traces/{id}`, …), field for
//!   field as Jaeger's query service emits them, so Grafana's Jaeger data source and Jaeger-aware tools work.
//! - [`v1`]: tracelab's own `/api/v1` endpoints (sampling statistics, windowed span reads of huge
//!   traces, trace summaries, logs of a span).
//! - [`tree`]: the tree-aware window of a huge trace (`/api/v1/traces/{id}/tree`, overview).
//! - [`dependencies`]: `/api/v1/dependencies`, the service map (nodes, edges, rates, percentiles).
//! - [`metrics`]: `/api/v1/metrics/red`, RED time series with exemplars from spanmetrics.
//! - [`sampling`]: the sampling dashboard's timeline and the sampling lab's result.
//! - [`critical_path`]: the critical path of a trace and the bottleneck it names (viewer and lab).
//! - [`ids`] and [`duration`]: small parsers both sides need (Jaeger trace ids, Go-style durations).

pub mod critical_path;
pub mod dependencies;
pub mod duration;
pub mod ids;
pub mod jaeger;
pub mod metrics;
pub mod sampling;
pub mod tree;
pub mod v1;

pub use duration::{DurationParseError, parse_go_duration};
pub use ids::{TraceIdError, normalize_span_id, normalize_trace_id, parse_trace_id};
pub use jaeger::{
    DependencyLink, JaegerError, JaegerResponse, KeyValue, Log, Operation, Process, RefType,
    Reference, Span, Trace, ValueType,
};
