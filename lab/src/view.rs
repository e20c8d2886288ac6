//! `TraceView`: one trace from the query API (collector-api's Jaeger `Trace`) indexed for
//! assertions — parent/children links, the root, fragments (spans whose parent is missing) — and
//! rendered as an indented tree, the text every failed assertion prints.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::Duration;

use collector_api::{Span, Trace};

use crate::matcher::{SpanKind, SpanMatcher, SpanStatus, value_text};

/// Attributes shown in the tree, in this order, when a span has them: the ones that explain
/// a span at a glance (what was called, with what outcome, for which order and scenario).
const KEY_ATTRIBUTES: &[&str] = &[
    "http.request.method",
    "http.route",
    "url.full",
    "server.address",
    "server.port",
    "http.response.status_code",
    "db.system.name",
    "db.operation.name",
    "db.collection.name",
    "messaging.system",
    "messaging.operation.type",
    "messaging.destination.name",
    "messaging.consumer.group.name",
    "messaging.kafka.offset",
    "order.id",
    "order.item_count",
    "order.total_cents",
    "payment.method",
    "payment.processor",
    "tracelab.scenario",
    "error.type",
    "otel.status_description",
];

/// A read-only view of one trace, with the indexes assertions need.
#[derive(Debug, Clone)]
pub struct TraceView {
    trace: Trace,
    /// Index of each span's parent within `trace.spans`, when the parent is present.
    parent: Vec<Option<usize>>,
    children: Vec<Vec<usize>>,
    /// Spans whose CHILD_OF reference names a span absent from the trace.
    missing_parent: Vec<usize>,
    complete: bool,
    waited: Duration,
}

/// One span of a [`TraceView`], with its service and the OTel kind/status decoded from tags.
#[derive(Debug, Clone, Copy)]
pub struct SpanInfo<'a> {
    pub index: usize,
    pub span: &'a Span,
    pub service: &'a str,
}

impl<'a> SpanInfo<'a> {
    pub fn name(&self) -> &'a str {
        &self.span.operation_name
    }
    pub fn id(&self) -> &'a str {
        &self.span.span_id
    }
    pub fn kind(&self) -> SpanKind {
        SpanKind::from_tag(self.span.kind())
    }
    pub fn status(&self) -> SpanStatus {
        if self.span.is_error() {
            SpanStatus::Error
        } else if self.span.tag_str("otel.status_code") == Some("OK") {
            SpanStatus::Ok
        } else {
            SpanStatus::Unset
        }
    }
    pub fn duration(&self) -> Duration {
        Duration::from_micros(self.span.duration)
    }
    /// µs since the epoch.
    pub fn start_us(&self) -> u64 {
        self.span.start_time
    }
    /// µs since the epoch.
    pub fn end_us(&self) -> u64 {
        self.span.end_time()
    }
    /// An attribute (tag) as text, whatever its type.
    pub fn attr(&self, key: &str) -> Option<String> {
        self.span.tag(key).map(|t| t.value_as_string())
    }
    /// Names of the span's events (Jaeger logs with an `event` field).
    pub fn events(&self) -> Vec<&'a str> {
        self.span
            .logs
            .iter()
            .filter_map(|l| l.event_name())
            .collect()
    }
    pub fn matches(&self, m: &SpanMatcher) -> bool {
        m.matches(self.name(), self.service, self.kind(), self.status(), |k| {
            self.attr(k)
        })
    }
    /// `service/name KIND`, how failure messages name a span.
    pub fn label(&self) -> String {
        format!("{}/{} {}", self.service, self.name(), self.kind())
    }
}

impl TraceView {
    /// Indexes `trace`. `complete` says whether the fetch saw it settle (see `client::Wait`).
    pub fn new(trace: Trace, complete: bool, waited: Duration) -> Self {
        let by_id: HashMap<&str, usize> = trace
            .spans
            .iter()
            .enumerate()
            .map(|(i, s)| (s.span_id.as_str(), i))
            .collect();
        let mut parent = vec![None; trace.spans.len()];
        let mut children = vec![Vec::new(); trace.spans.len()];
        let mut missing_parent = Vec::new();
        for (i, s) in trace.spans.iter().enumerate() {
            if let Some(p) = s.parent_span_id() {
                match by_id.get(p) {
                    Some(&pi) if pi != i => {
                        parent[i] = Some(pi);
                        children[pi].push(i);
                    }
                    _ => missing_parent.push(i),
                }
            }
        }
        for c in &mut children {
            c.sort_by_key(|&i| (trace.spans[i].start_time, i));
        }
        Self {
            trace,
            parent,
            children,
            missing_parent,
            complete,
            waited,
        }
    }

    /// A view of a trace as read (complete, no wait) — for fixtures and for `/api/traces` results.
    pub fn from_trace(trace: Trace) -> Self {
        Self::new(trace, true, Duration::ZERO)
    }

    pub fn trace(&self) -> &Trace {
        &self.trace
    }
    pub fn trace_id(&self) -> &str {
        &self.trace.trace_id
    }
    pub fn len(&self) -> usize {
        self.trace.spans.len()
    }
    pub fn is_empty(&self) -> bool {
        self.trace.spans.is_empty()
    }
    /// Whether the fetch saw the span count settle with no missing parent before its deadline.
    pub fn is_complete(&self) -> bool {
        self.complete
    }

    pub fn span(&self, index: usize) -> SpanInfo<'_> {
        let span = &self.trace.spans[index];
        SpanInfo {
            index,
            span,
            service: self.trace.service_of(span).unwrap_or("?"),
        }
    }

    pub fn spans(&self) -> impl Iterator<Item = SpanInfo<'_>> {
        (0..self.len()).map(|i| self.span(i))
    }

    /// Spans matching `m`, in start order.
    pub fn find(&self, m: &SpanMatcher) -> Vec<SpanInfo<'_>> {
        let mut v: Vec<_> = self.spans().filter(|s| s.matches(m)).collect();
        v.sort_by_key(|s| (s.start_us(), s.index));
        v
    }

    pub fn parent_of(&self, s: SpanInfo<'_>) -> Option<SpanInfo<'_>> {
        self.parent[s.index].map(|p| self.span(p))
    }

    pub fn children_of(&self, s: SpanInfo<'_>) -> Vec<SpanInfo<'_>> {
        self.children[s.index]
            .iter()
            .map(|&c| self.span(c))
            .collect()
    }

    /// Spans `s` links to (`FOLLOWS_FROM` references within this trace: OTel span links).
    pub fn links_of(&self, s: SpanInfo<'_>) -> Vec<SpanInfo<'_>> {
        s.span
            .references
            .iter()
            .filter(|r| r.ref_type == collector_api::RefType::FollowsFrom)
            .filter_map(|r| self.spans().find(|o| o.id() == r.span_id))
            .collect()
    }

    /// Whether `ancestor` is a (transitive) parent of `s`.
    pub fn is_descendant(&self, s: SpanInfo<'_>, ancestor: SpanInfo<'_>) -> bool {
        let mut cur = self.parent[s.index];
        // Bounded by the span count: a malformed trace with a reference cycle cannot loop forever.
        for _ in 0..self.len() {
            match cur {
                Some(p) if p == ancestor.index => return true,
                Some(p) => cur = self.parent[p],
                None => return false,
            }
        }
        false
    }

    /// Spans with no parent in the trace (the root, plus fragment roots), in start order.
    pub fn roots(&self) -> Vec<SpanInfo<'_>> {
        let mut v: Vec<_> = self
            .spans()
            .filter(|s| self.parent[s.index].is_none())
            .collect();
        v.sort_by_key(|s| (s.start_us(), s.index));
        v
    }

    /// The trace's root: the earliest span without any parent reference (a true root), else the
    /// earliest span whose parent is missing.
    pub fn root(&self) -> Option<SpanInfo<'_>> {
        let roots = self.roots();
        roots
            .iter()
            .copied()
            .find(|s| s.span.parent_span_id().is_none())
            .or_else(|| roots.first().copied())
    }

    /// Spans whose parent is referenced but absent: each starts a fragment of the trace.
    pub fn missing_parent_spans(&self) -> Vec<SpanInfo<'_>> {
        self.missing_parent.iter().map(|&i| self.span(i)).collect()
    }

    /// Distinct service names, sorted.
    pub fn services(&self) -> Vec<&str> {
        self.trace.services()
    }

    pub fn error_spans(&self) -> Vec<SpanInfo<'_>> {
        self.spans()
            .filter(|s| s.status() == SpanStatus::Error)
            .collect()
    }

    /// Trace extent (earliest start to latest end).
    pub fn duration(&self) -> Duration {
        Duration::from_micros(self.trace.duration_us())
    }

    /// The whole trace as an indented tree: one line per span with offset from the trace start,
    /// service, name, kind, duration, status, key attributes and events.
    pub fn tree(&self) -> String {
        let start = self
            .trace
            .spans
            .iter()
            .map(|s| s.start_time)
            .min()
            .unwrap_or(0);
        let mut out = String::new();
        let status = if self.complete {
            "complete".to_string()
        } else {
            format!("INCOMPLETE after waiting {:.1}s", self.waited.as_secs_f64())
        };
        let _ = writeln!(
            out,
            "trace {} — {} spans, {} services, {} ({status})",
            self.trace_id(),
            self.len(),
            self.services().len(),
            fmt_duration(self.duration()),
        );
        let roots = self.roots();
        let mut emitted = 0usize;
        for r in roots {
            let mut stack = vec![(r.index, 0usize)];
            while let Some((i, depth)) = stack.pop() {
                emitted += 1;
                if emitted > self.len() {
                    break;
                }
                self.write_line(&mut out, i, depth, start);
                for &c in self.children[i].iter().rev() {
                    stack.push((c, depth + 1));
                }
            }
        }
        out
    }

    fn write_line(&self, out: &mut String, i: usize, depth: usize, trace_start: u64) {
        let s = self.span(i);
        let offset = format!(
            "+{}",
            fmt_duration(Duration::from_micros(
                s.start_us().saturating_sub(trace_start)
            ))
        );
        let _ = write!(
            out,
            "{offset:>10} {:indent$}{} {} [{}] {}",
            "",
            s.service,
            s.name(),
            s.kind(),
            fmt_duration(s.duration()),
            indent = depth * 2,
        );
        match s.status() {
            SpanStatus::Error => out.push_str(" ERROR"),
            SpanStatus::Ok => out.push_str(" OK"),
            SpanStatus::Unset => {}
        }
        let attrs: Vec<String> = KEY_ATTRIBUTES
            .iter()
            .filter_map(|k| s.attr(k).map(|v| format!("{k}={}", truncate(&v, 60))))
            .collect();
        if !attrs.is_empty() {
            let _ = write!(out, " {{{}}}", attrs.join(", "));
        }
        let events = s.events();
        if !events.is_empty() {
            let _ = write!(out, " events=[{}]", events.join(", "));
        }
        if self.missing_parent.contains(&i) {
            let _ = write!(
                out,
                " !! parent {} missing",
                s.span.parent_span_id().unwrap_or("?")
            );
        }
        out.push('\n');
    }

    /// The text of attribute `key` on the first span matching `m`.
    pub fn attr_of(&self, m: &SpanMatcher, key: &str) -> Option<String> {
        self.find(m).first().and_then(|s| s.attr(key))
    }

    /// Expected attribute value rendered like the tags (for messages).
    pub(crate) fn show_value(v: &serde_json::Value) -> String {
        value_text(v)
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let t: String = s.chars().take(max).collect();
        format!("{t}…")
    }
}

/// `850µs`, `12.3ms`, `1.25s`.
pub fn fmt_duration(d: Duration) -> String {
    let us = d.as_micros();
    if us < 1_000 {
        format!("{us}µs")
    } else if us < 1_000_000 {
        format!("{:.1}ms", us as f64 / 1_000.0)
    } else {
        format!("{:.2}s", us as f64 / 1_000_000.0)
    }
}
