//! The trace page's model. The waterfall's rows come from the collector's tree windows
//! (`/api/v1/traces/{id}/tree`): [`Collapse`] is the page's collapse state (what it sends),
//! [`RowWindow`] the rows it holds around the scroll position, [`window_offset`] where the next
//! window starts. [`TraceModel`] is the span tree of a trace loaded whole (display order,
//! collapse, critical path per span), for pages that hold every span; per-service colours and the
//! log levels are shared by both.

use std::collections::{BTreeMap, HashMap, HashSet};

use collector_api::critical_path::{Bottleneck, bottleneck, critical_path};
use collector_api::tree::{SubtreeSummary, TreeRequest, TreeRow, TreeWindow};
use collector_api::{Process, Span};

/// Service colours; red is left out so that only errors are red.
pub const PALETTE: [&str; 8] = [
    "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2", "#bcbd22",
];

/// One colour per service name, the same on every page: the checkout's four services get four
/// distinct colours, others a stable one from their name's FNV-1a hash.
pub fn service_colour(service: &str) -> &'static str {
    match service {
        "api-gateway" => PALETTE[0],
        "order-service" => PALETTE[1],
        "payment-service" => PALETTE[3],
        "inventory-service" => PALETTE[2],
        other => {
            let h = other.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
            });
            PALETTE[(h % PALETTE.len() as u64) as usize]
        }
    }
}

pub struct TraceModel {
    pub trace_id: String,
    pub spans: Vec<Span>,
    pub processes: BTreeMap<String, Process>,
    /// Spans in the whole trace (may exceed `spans.len()` when the viewer stopped loading).
    pub total: u64,
    pub start: u64,
    pub end: u64,
    /// Span indices in depth-first display order (roots, then children by start time).
    pub order: Vec<usize>,
    /// For the span at `order[p]`, the position just past its subtree.
    subtree_end: Vec<usize>,
    pub depth: Vec<u32>,
    pub max_depth: u32,
    pub has_children: Vec<bool>,
    /// Spans whose parent is not in the trace (besides the one root).
    pub missing_parent: Vec<usize>,
    /// Critical-path stretches per span (µs since the epoch).
    pub critical: Vec<Vec<(u64, u64)>>,
    pub bottleneck: Option<Bottleneck>,
    pub root: Option<usize>,
    by_id: HashMap<String, usize>,
}

impl TraceModel {
    pub fn new(
        trace_id: String,
        spans: Vec<Span>,
        processes: BTreeMap<String, Process>,
        total: u64,
    ) -> Self {
        let n = spans.len();
        let by_id: HashMap<String, usize> = spans
            .iter()
            .enumerate()
            .map(|(i, s)| (s.span_id.clone(), i))
            .collect();
        let mut children: Vec<Vec<usize>> = vec![Vec::new(); n];
        let mut roots = Vec::new();
        let mut missing_parent = Vec::new();
        for (i, s) in spans.iter().enumerate() {
            match s.parent_span_id() {
                Some(p) => match by_id.get(p) {
                    Some(&pi) if pi != i => children[pi].push(i),
                    _ => {
                        missing_parent.push(i);
                        roots.push(i);
                    }
                },
                None => roots.push(i),
            }
        }
        let key = |i: &usize| {
            (
                spans[*i].start_time,
                std::cmp::Reverse(spans[*i].duration),
                *i,
            )
        };
        roots.sort_by_key(key);
        for c in &mut children {
            c.sort_by_key(key);
        }
        // Depth-first order, iteratively (10k-deep traces must not overflow the stack).
        let mut order = Vec::with_capacity(n);
        let mut depth = vec![0u32; n];
        let mut subtree_end = vec![0usize; n];
        let mut seen = vec![false; n];
        // (span, depth, entering?)
        let mut stack: Vec<(usize, u32, bool)> =
            roots.iter().rev().map(|&r| (r, 0, true)).collect();
        let mut pos_of = vec![0usize; n];
        while let Some((s, d, entering)) = stack.pop() {
            if entering {
                if seen[s] {
                    continue;
                }
                seen[s] = true;
                pos_of[s] = order.len();
                order.push(s);
                depth[s] = d;
                stack.push((s, d, false));
                for &c in children[s].iter().rev() {
                    stack.push((c, d + 1, true));
                }
            } else {
                subtree_end[pos_of[s]] = order.len();
            }
        }
        // Spans in a parent cycle never reached from a root: show them flat at the end.
        for i in 0..n {
            if !seen[i] {
                pos_of[i] = order.len();
                order.push(i);
                subtree_end[pos_of[i]] = order.len();
            }
        }
        let path = critical_path(&spans);
        let mut critical = vec![Vec::new(); n];
        for seg in &path {
            critical[seg.span].push((seg.start, seg.end));
        }
        let bottleneck = bottleneck(&spans, &processes, &path);
        let start = spans.iter().map(|s| s.start_time).min().unwrap_or(0);
        let end = spans.iter().map(Span::end_time).max().unwrap_or(start);
        let root = collector_api::critical_path::root_index(&spans);
        // The single expected root is not "missing"; only spans pointing to absent parents are.
        let max_depth = depth.iter().copied().max().unwrap_or(0);
        Self {
            trace_id,
            has_children: children.iter().map(|c| !c.is_empty()).collect(),
            spans,
            processes,
            total,
            start,
            end,
            order,
            subtree_end,
            depth,
            max_depth,
            missing_parent,
            critical,
            bottleneck,
            root,
            by_id,
        }
    }

    pub fn service(&self, i: usize) -> &str {
        service_name(&self.processes, &self.spans[i])
    }

    pub fn colour(&self, i: usize) -> &'static str {
        service_colour(self.service(i))
    }

    pub fn index_of(&self, span_id: &str) -> Option<usize> {
        self.by_id.get(span_id).copied()
    }

    pub fn duration(&self) -> u64 {
        self.end.saturating_sub(self.start).max(1)
    }

    /// Distinct services in display order.
    pub fn services(&self) -> Vec<String> {
        let mut seen = HashSet::new();
        self.order
            .iter()
            .map(|&i| self.service(i).to_string())
            .filter(|s| seen.insert(s.clone()))
            .collect()
    }

    pub fn error_count(&self) -> usize {
        self.spans.iter().filter(|s| s.is_error()).count()
    }

    /// The rows to show: display order without the descendants of collapsed spans.
    pub fn visible_rows(&self, collapsed: &HashSet<usize>) -> Vec<usize> {
        if collapsed.is_empty() {
            return self.order.clone();
        }
        let mut out = Vec::with_capacity(self.order.len());
        let mut p = 0;
        while p < self.order.len() {
            let s = self.order[p];
            out.push(s);
            p = if collapsed.contains(&s) {
                self.subtree_end[p]
            } else {
                p + 1
            };
        }
        out
    }

    /// The ancestors of a span (to expand them when a link selects it).
    pub fn ancestors(&self, mut i: usize) -> Vec<usize> {
        let mut out = Vec::new();
        let mut guard = 0;
        while let Some(p) = self.spans[i]
            .parent_span_id()
            .and_then(|p| self.index_of(p))
        {
            if p == i || guard > self.spans.len() {
                break;
            }
            out.push(p);
            i = p;
            guard += 1;
        }
        out
    }

    /// Leaf CLIENT and INTERNAL spans: calls whose callee sent no span to this trace (an
    /// uninstrumented third party, a database — or a hop that dropped the trace context, which an
    /// uninstrumented HTTP client does before it even makes a CLIENT span).
    pub fn leaf_calls(&self) -> Vec<usize> {
        (0..self.spans.len())
            .filter(|&i| {
                !self.has_children[i]
                    && matches!(self.spans[i].kind(), Some("client" | "internal") | None)
            })
            .collect()
    }
}

/// Merges span windows into one span list and process map. Window answers number their processes
/// per window (`p1` in one window need not be `p1` in the next), so processes are re-keyed by
/// content across windows.
#[derive(Default)]
pub struct WindowMerger {
    pub spans: Vec<Span>,
    pub processes: BTreeMap<String, Process>,
    known: Vec<Process>,
}

impl WindowMerger {
    pub fn add(&mut self, spans: Vec<Span>, processes: BTreeMap<String, Process>) {
        let mut rename: HashMap<String, String> = HashMap::new();
        for (pid, proc_) in processes {
            let idx = match self.known.iter().position(|k| *k == proc_) {
                Some(i) => i,
                None => {
                    self.known.push(proc_.clone());
                    self.processes
                        .insert(format!("p{}", self.known.len()), proc_);
                    self.known.len() - 1
                }
            };
            rename.insert(pid, format!("p{}", idx + 1));
        }
        self.spans.extend(spans.into_iter().map(|mut s| {
            if let Some(p) = rename.get(&s.process_id) {
                s.process_id = p.clone();
            }
            s
        }));
    }
}

/// The waterfall's collapse state, as the collector's tree endpoint reads it: a span with children
/// is collapsed when listed in `collapsed`, or when `depth` is set, it is that deep or deeper and
/// not listed in `expanded`. `version` changes with every change, so answers to older states are
/// recognised and dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Collapse {
    pub collapsed: HashSet<String>,
    pub expanded: HashSet<String>,
    pub depth: Option<u32>,
    pub version: u64,
}

impl Collapse {
    /// Flips one row (whose current state the last answer gave).
    pub fn toggle(&mut self, span_id: &str, is_collapsed: bool) {
        if is_collapsed {
            self.collapsed.remove(span_id);
            self.expanded.insert(span_id.to_string());
        } else {
            self.expanded.remove(span_id);
            self.collapsed.insert(span_id.to_string());
        }
        self.version += 1;
    }

    pub fn expand_all(&mut self) {
        self.collapsed.clear();
        self.expanded.clear();
        self.depth = None;
        self.version += 1;
    }

    /// Every span below the roots' children collapsed (the roots and their children stay open).
    pub fn collapse_all(&mut self) {
        self.collapsed.clear();
        self.expanded.clear();
        self.depth = Some(1);
        self.version += 1;
    }

    /// Keeps open the ancestors the collector opened to reveal a span.
    pub fn open(&mut self, opened: &[String]) {
        if opened.is_empty() {
            return;
        }
        for a in opened {
            self.collapsed.remove(a);
            self.expanded.insert(a.clone());
        }
        self.version += 1;
    }

    pub fn request(&self, offset: u64, limit: u64, reveal: Option<String>) -> TreeRequest {
        let mut collapsed: Vec<String> = self.collapsed.iter().cloned().collect();
        let mut expanded: Vec<String> = self.expanded.iter().cloned().collect();
        collapsed.sort();
        expanded.sort();
        TreeRequest {
            offset,
            limit,
            collapsed,
            // Only meaningful under a depth rule.
            expanded: if self.depth.is_some() {
                expanded
            } else {
                Vec::new()
            },
            expand_depth: self.depth,
            reveal,
        }
    }
}

/// Rows of one tree window, for one collapse version.
#[derive(Debug, Clone, Default)]
pub struct RowWindow {
    pub version: u64,
    pub offset: u64,
    pub rows: Vec<TreeRow>,
    pub processes: BTreeMap<String, Process>,
}

impl RowWindow {
    pub fn new(version: u64, w: TreeWindow) -> Self {
        Self {
            version,
            offset: w.offset,
            rows: w.rows,
            processes: w.processes,
        }
    }

    /// The row at visible position `pos`, when this window holds it.
    pub fn get(&self, pos: u64) -> Option<&TreeRow> {
        pos.checked_sub(self.offset)
            .and_then(|k| self.rows.get(k as usize))
    }

    /// Whether rows `[first, last)` are all here (for `version`), given `total` visible rows.
    pub fn covers(&self, version: u64, first: u64, last: u64, total: u64) -> bool {
        let end = self.offset + self.rows.len() as u64;
        version == self.version && first >= self.offset && (last <= end || end >= total)
    }

    pub fn service(&self, row: &TreeRow) -> &str {
        service_name(&self.processes, &row.span)
    }

    pub fn position_of(&self, span_id: &str) -> Option<u64> {
        self.rows
            .iter()
            .position(|r| r.span.span_id == span_id)
            .map(|k| self.offset + k as u64)
    }
}

/// Where a window of `size` rows starts so that it holds `[first, last)` with 40 % of its spare
/// rows before it (scrolling on is likelier than back), within `total` rows.
pub fn window_offset(first: u64, last: u64, total: u64, size: u64) -> u64 {
    let spare = size.saturating_sub(last.saturating_sub(first));
    let start = first.saturating_sub(spare * 2 / 5);
    start.min(total.saturating_sub(size))
}

/// `4,999`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (k, ch) in digits.chars().enumerate() {
        if k > 0 && (digits.len() - k).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// What a collapsed row says it hides: `+ 4,999 spans, 12 errors, 830ms`.
pub fn hidden_text(h: &SubtreeSummary) -> String {
    let plural = |n: u64, one: &str, many: &str| {
        format!("{} {}", thousands(n), if n == 1 { one } else { many })
    };
    let mut parts = vec![plural(h.span_count, "span", "spans")];
    if h.error_count > 0 {
        parts.push(plural(h.error_count, "error", "errors"));
    }
    parts.push(crate::format::duration_us(
        h.end_time.saturating_sub(h.start_time),
    ));
    format!("+ {}", parts.join(", "))
}

pub fn service_name<'a>(processes: &'a BTreeMap<String, Process>, s: &Span) -> &'a str {
    processes
        .get(&s.process_id)
        .map_or("unknown", |p| p.service_name.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use collector_api::{KeyValue, RefType, Reference};

    fn span(id: &str, parent: Option<&str>, start: u64, dur: u64) -> Span {
        Span {
            trace_id: "t".into(),
            span_id: id.into(),
            flags: 1,
            operation_name: format!("op-{id}"),
            references: parent
                .map(|p| Reference {
                    ref_type: RefType::ChildOf,
                    trace_id: "t".into(),
                    span_id: p.into(),
                })
                .into_iter()
                .collect(),
            start_time: start,
            duration: dur,
            tags: vec![KeyValue::string("span.kind", "client")],
            logs: vec![],
            process_id: "p1".into(),
            warnings: vec![],
        }
    }

    fn model(spans: Vec<Span>) -> TraceModel {
        let mut procs = BTreeMap::new();
        procs.insert(
            "p1".to_string(),
            Process {
                service_name: "svc".into(),
                tags: vec![],
            },
        );
        let n = spans.len() as u64;
        TraceModel::new("t".into(), spans, procs, n)
    }

    #[test]
    fn collapse_state_toggles_and_asks_for_what_it_shows() {
        let mut c = Collapse::default();
        c.toggle("a", false);
        assert!(c.collapsed.contains("a"));
        c.toggle("a", true);
        assert!(!c.collapsed.contains("a"));
        assert_eq!(c.version, 2);
        c.collapse_all();
        c.toggle("b", true);
        let r = c.request(10, 300, Some("x".into()));
        assert_eq!(
            (r.offset, r.limit, r.expand_depth, r.expanded, r.reveal),
            (
                10,
                300,
                Some(1),
                vec!["b".to_string()],
                Some("x".to_string())
            )
        );
        c.open(&["p".into()]);
        assert!(c.expanded.contains("p"));
        c.expand_all();
        assert_eq!(c.request(0, 1, None).expand_depth, None);
        assert_eq!(c.version, 6);
    }

    #[test]
    fn windows_centre_on_the_view_and_know_what_they_hold() {
        assert_eq!(window_offset(0, 40, 100_000, 300), 0);
        assert_eq!(window_offset(1000, 1040, 100_000, 300), 1000 - 104);
        assert_eq!(window_offset(99_960, 100_000, 100_000, 300), 99_700);
        assert_eq!(window_offset(0, 3, 3, 300), 0);
        let w = RowWindow {
            version: 2,
            offset: 100,
            ..Default::default()
        };
        assert!(!w.covers(2, 100, 120, 1000), "empty");
        assert!(w.covers(2, 100, 120, 100), "nothing more to hold");
        assert!(!w.covers(1, 100, 100, 100), "older version");
        assert!(w.get(99).is_none());
    }

    #[test]
    fn hidden_subtrees_are_summarised_in_words() {
        let h = SubtreeSummary {
            span_count: 4_999,
            error_count: 12,
            start_time: 1_000,
            end_time: 831_000,
        };
        assert_eq!(hidden_text(&h), "+ 4,999 spans, 12 errors, 830ms");
        let one = SubtreeSummary {
            span_count: 1,
            error_count: 0,
            start_time: 0,
            end_time: 500,
        };
        assert_eq!(hidden_text(&one), "+ 1 span, 500µs");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(999), "999");
    }

    #[test]
    fn rows_are_depth_first_and_collapse_hides_the_subtree() {
        let m = model(vec![
            span("c2", Some("r"), 50, 10),
            span("r", None, 0, 100),
            span("c1", Some("r"), 10, 20),
            span("g", Some("c1"), 12, 5),
            span("orphan", Some("gone"), 60, 5),
        ]);
        let ids = |rows: Vec<usize>| -> Vec<String> {
            rows.iter().map(|&i| m.spans[i].span_id.clone()).collect()
        };
        assert_eq!(ids(m.order.clone()), ["r", "c1", "g", "c2", "orphan"]);
        assert_eq!(m.depth[m.index_of("g").unwrap()], 2);
        assert_eq!(m.max_depth, 2);
        assert_eq!(ids(m.missing_parent.clone()), ["orphan"]);
        let mut collapsed = HashSet::new();
        collapsed.insert(m.index_of("c1").unwrap());
        assert_eq!(ids(m.visible_rows(&collapsed)), ["r", "c1", "c2", "orphan"]);
        collapsed.insert(m.index_of("r").unwrap());
        assert_eq!(ids(m.visible_rows(&collapsed)), ["r", "orphan"]);
        assert_eq!(ids(m.ancestors(m.index_of("g").unwrap())), ["c1", "r"]);
        assert_eq!(ids(m.leaf_calls()), ["c2", "g", "orphan"]);
    }

    #[test]
    fn windows_with_their_own_process_numbering_merge() {
        let proc_ = |name: &str| Process {
            service_name: name.into(),
            tags: vec![],
        };
        let mut m = WindowMerger::default();
        let mut a = span("a", None, 0, 10);
        a.process_id = "p1".into();
        m.add(vec![a], [("p1".to_string(), proc_("gw"))].into());
        let mut b = span("b", Some("a"), 1, 2);
        b.process_id = "p1".into(); // the second window's p1 is another service
        let mut c = span("c", Some("a"), 3, 2);
        c.process_id = "p2".into();
        m.add(
            vec![b, c],
            [
                ("p1".to_string(), proc_("pay")),
                ("p2".to_string(), proc_("gw")),
            ]
            .into(),
        );
        let svc: Vec<&str> = m
            .spans
            .iter()
            .map(|s| service_name(&m.processes, s))
            .collect();
        assert_eq!(svc, ["gw", "pay", "gw"]);
        assert_eq!(m.processes.len(), 2);
    }

    #[test]
    fn a_ten_thousand_deep_chain_builds() {
        let n = 10_000u64;
        let spans: Vec<Span> = (0..n)
            .map(|i| {
                let parent = (i > 0).then(|| format!("s{}", i - 1));
                span(&format!("s{i}"), parent.as_deref(), i, 2 * n - 2 * i)
            })
            .collect();
        let m = model(spans);
        assert_eq!(m.max_depth as u64, n - 1);
        assert_eq!(m.order.len() as u64, n);
        let mut collapsed = HashSet::new();
        collapsed.insert(m.index_of("s1").unwrap());
        assert_eq!(m.visible_rows(&collapsed).len(), 2);
    }
}
