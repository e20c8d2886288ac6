//! The tree-aware window of a trace (`/api/v1/traces/{id}/tree…`): the collector keeps the span tree
//! of a trace (built once from its span headers, cached) and answers the rows a waterfall shows —
//! in display order, collapsed subtrees summarised — so a viewer scrolls a 100,000-span trace by
//! asking for a few hundred rows at a time instead of loading every span.
//!
//! - `GET /api/v1/traces/{id}/tree?offset=&limit=&collapsed=<spanId,…>&expanded=<spanId,…>&expandDepth=&reveal=`
//!   or `POST /api/v1/traces/{id}/tree` with a [`TreeRequest`] body (for long collapsed sets) →
//!   [`TreeWindow`].
//! - `GET /api/v1/traces/{id}/overview` → [`TraceOverview`]: the header facts (span and error
//!   counts, services, depth, time range, root, bottleneck) without any other span.
//! - `GET /api/v1/traces/{id}/tree/spans?spanID=…` → [`TreeSpans`]: given spans wherever they are
//!   in the tree (a span panel), with the names of their parents and linked spans.
//!
//! Display order: roots (spans without a parent, and spans whose parent is not in the trace) by
//! start time, each followed depth-first by its children by start time (longer first on ties).
//! Spans caught in a parent cycle, unreachable from any root, come last, flat.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::critical_path::Bottleneck;
use crate::jaeger::{Process, Span};
use crate::v1::ServiceSpanCount;

/// Most rows one tree window returns.
pub const MAX_TREE_ROWS: u64 = 2_000;
/// Most span ids in one [`TreeRequest`]'s `collapsed` plus `expanded`.
pub const MAX_TREE_TOGGLES: usize = 100_000;
/// Most spans one `tree/spans` call returns.
pub const MAX_TREE_SPANS: usize = 100;

/// Which rows are visible and which of them to return. A span with children is collapsed when
/// its id is in `collapsed`, or when `expand_depth` is `Some(d)`, its depth is `d` or more and its
/// id is not in `expanded`. A collapsed span's descendants are not rows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TreeRequest {
    /// First visible row to return (0-based).
    pub offset: u64,
    /// Rows to return, 1..=[`MAX_TREE_ROWS`]; 0 means 200.
    pub limit: u64,
    pub collapsed: Vec<String>,
    pub expanded: Vec<String>,
    /// Roots are depth 0: `1` shows the roots and their children, everything deeper collapsed.
    pub expand_depth: Option<u32>,
    /// A span to bring into view: its ancestors are treated as expanded for this answer, and
    /// [`TreeWindow::revealed`] says at which row it is and which ancestors were opened.
    pub reveal: Option<String>,
}

/// What a collapsed row hides: its descendants.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubtreeSummary {
    pub span_count: u64,
    pub error_count: u64,
    /// Earliest start and latest end of the hidden spans (µs since the epoch).
    pub start_time: u64,
    pub end_time: u64,
}

/// One waterfall row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TreeRow {
    /// The span as in a [`crate::v1::SpanWindow`]; its `processID` is a key of the answer's
    /// `processes`.
    pub span: Span,
    /// 0 for roots.
    pub depth: u32,
    /// Direct children in the tree.
    pub child_count: u64,
    pub collapsed: bool,
    /// Present when `collapsed`: what the row hides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hidden: Option<SubtreeSummary>,
    /// Stretches of the critical path spent in this span's own code, `[start, end]` µs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub critical: Vec<[u64; 2]>,
    /// The span's parent is named but not in the trace.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub missing_parent: bool,
}

/// Where a revealed span is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revealed {
    pub span_id: String,
    /// Its visible row.
    pub row: u64,
    /// Ancestors that were collapsed and are shown expanded in this answer (root first): a
    /// client keeps them expanded from now on.
    pub opened: Vec<String>,
}

/// `…/tree`: a window of the visible rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TreeWindow {
    pub trace_id: String,
    /// Spans in the trace.
    pub span_count: u64,
    /// Visible rows under the given collapse state.
    pub total_rows: u64,
    pub offset: u64,
    pub rows: Vec<TreeRow>,
    /// The processes the rows reference (numbered per answer).
    pub processes: BTreeMap<String, Process>,
    pub trace_start_time: u64,
    pub trace_end_time: u64,
    /// Answer to [`TreeRequest::reveal`]; absent when not asked or the span is not in the trace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revealed: Option<Revealed>,
}

/// A span's service and operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpanName {
    pub service: String,
    pub operation: String,
}

/// `…/tree/spans`: the asked spans (those in the trace, in the order asked) and the names of
/// their parents and of the spans their references point to, by span id (those in the trace).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TreeSpans {
    pub rows: Vec<TreeRow>,
    pub processes: BTreeMap<String, Process>,
    pub names: BTreeMap<String, SpanName>,
}

/// A leaf CLIENT, INTERNAL or unspecified-kind span: a call whose callee sent no span here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeafCall {
    pub span_id: String,
    pub service: String,
    pub operation: String,
    pub start_time: u64,
    pub duration: u64,
}

/// `…/overview`: what a trace page's header needs, from the cached tree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceOverview {
    pub trace_id: String,
    pub span_count: u64,
    pub error_count: u64,
    /// Deepest depth (roots are 0).
    pub max_depth: u32,
    pub trace_start_time: u64,
    pub trace_end_time: u64,
    /// Per service, in order of first appearance in display order.
    pub services: Vec<ServiceSpanCount>,
    /// Spans whose parent is named but not in the trace.
    pub missing_parents: u64,
    /// The root the critical path starts from (earliest parentless span, longest on ties) as a
    /// row (its `processID` is a key of `processes`).
    pub root: Option<TreeRow>,
    pub processes: BTreeMap<String, Process>,
    /// The (service, operation) holding the most critical-path time.
    pub bottleneck: Option<Bottleneck>,
    /// Leaf calls (for detached-fragment hints), at most [`MAX_LEAF_CALLS`], shortest first;
    /// `leaf_calls_total` counts them all.
    pub leaf_calls: Vec<LeafCall>,
    pub leaf_calls_total: u64,
}

/// Most leaf calls an overview lists.
pub const MAX_LEAF_CALLS: usize = 2_000;

/// OTLP severity numbers in named ranges: 1–4 TRACE, 5–8 DEBUG, 9–12 INFO, 13–16 WARN,
/// 17–20 ERROR, 21–24 FATAL; 0 (unspecified) counts as TRACE.
pub const SEVERITY_LEVELS: [(&str, i32); 6] = [
    ("TRACE", 1),
    ("DEBUG", 5),
    ("INFO", 9),
    ("WARN", 13),
    ("ERROR", 17),
    ("FATAL", 21),
];

/// The level name of an OTLP severity number.
pub fn severity_level(n: i32) -> &'static str {
    SEVERITY_LEVELS
        .iter()
        .rev()
        .find(|(_, lo)| n >= *lo)
        .map_or("TRACE", |(name, _)| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severity_numbers_fall_in_their_ranges() {
        let names: Vec<&str> = [0, 1, 4, 5, 9, 12, 13, 16, 17, 21, 24, 30]
            .into_iter()
            .map(severity_level)
            .collect();
        assert_eq!(
            names,
            [
                "TRACE", "TRACE", "TRACE", "DEBUG", "INFO", "INFO", "WARN", "WARN", "ERROR",
                "FATAL", "FATAL", "FATAL"
            ]
        );
    }

    #[test]
    fn a_request_parses_with_defaults_and_refuses_unknown_fields() {
        let r: TreeRequest =
            serde_json::from_str(r#"{"offset": 5, "collapsed": ["ab"], "expand_depth": 1}"#)
                .unwrap();
        assert_eq!(
            (r.offset, r.limit, r.collapsed, r.expand_depth),
            (5, 0, vec!["ab".to_string()], Some(1))
        );
        assert!(serde_json::from_str::<TreeRequest>(r#"{"colapsed": []}"#).is_err());
    }
}
