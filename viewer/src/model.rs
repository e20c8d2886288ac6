//! The trace page's model: the span tree in display order, per-service colours, the critical path
//! per span and the trace's facts (depth, missing parents, bottleneck). Built once when a trace's
//! spans have arrived; collapsing a row only recomputes which rows are visible, in O(rows).

use std::collections::{BTreeMap, HashMap, HashSet};

use collector_api::critical_path::{Bottleneck, bottleneck, critical_path};
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
