//! Trace compare as a pure function: two [`TraceModel`]s aligned span by span. A span's key is its
//! path of (service, operation) from the root, each step with an occurrence index among the
//! siblings that share its (service, operation) — so the 1st retry of a call lines up with the 1st,
//! and a 3rd attempt present only in B is *added*. The result is one [`Row`] per aligned pair in
//! tree order (A's order, B-only spans placed after their preceding B sibling), with durations,
//! own times and signed deltas (B − A). Everything here is iterative: a 10,000-deep chain aligns
//! without touching the call stack.

use std::collections::HashMap;

use crate::model::TraceModel;

/// Whether a row's span is in both traces, only in B or only in A.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    Matched,
    /// Only in B.
    Added,
    /// Only in A.
    Removed,
}

impl Change {
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Matched => "matched",
            Change::Added => "added",
            Change::Removed => "removed",
        }
    }
}

/// One aligned pair: a span of A, a span of B, or both.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    /// Index of the span in A's model (`TraceModel::spans`).
    pub a: Option<usize>,
    /// Index of the span in B's model.
    pub b: Option<usize>,
    pub depth: u32,
    pub service: String,
    pub operation: String,
    /// 0 for the first sibling with this (service, operation), 1 for the second…
    pub occurrence: u32,
    pub duration_a: Option<u64>,
    pub duration_b: Option<u64>,
    /// Time of the span not covered by its child spans (µs), the part it spent itself.
    pub own_a: Option<u64>,
    pub own_b: Option<u64>,
}

impl Row {
    pub fn change(&self) -> Change {
        match (self.a, self.b) {
            (Some(_), Some(_)) => Change::Matched,
            (None, Some(_)) => Change::Added,
            _ => Change::Removed,
        }
    }

    /// Duration of B's span minus A's (µs), for matched rows.
    pub fn delta(&self) -> Option<i64> {
        Some(self.duration_b? as i64 - self.duration_a? as i64)
    }

    /// Own time of B minus own time of A (µs); a span only on one side counts as 0 on the other,
    /// so for a tree of synchronous calls the own-time deltas of all rows add up to the root's
    /// duration delta.
    pub fn own_delta(&self) -> i64 {
        self.own_b.unwrap_or(0) as i64 - self.own_a.unwrap_or(0) as i64
    }
}

#[derive(Clone, Debug)]
pub struct Comparison {
    pub rows: Vec<Row>,
    pub matched: usize,
    pub added: usize,
    pub removed: usize,
    /// The row whose own time changed most (by absolute value), when any changed: where the
    /// difference was spent, rather than every ancestor that merely waited for it.
    pub biggest: Option<usize>,
    /// Each trace's extent (first span start to last span end, µs).
    pub total_a: u64,
    pub total_b: u64,
}

impl Comparison {
    /// B's extent minus A's (µs).
    pub fn total_delta(&self) -> i64 {
        self.total_b as i64 - self.total_a as i64
    }
}

/// A trace's children lists and roots in display order, read off the model's depth-first order.
struct Tree {
    roots: Vec<usize>,
    children: Vec<Vec<usize>>,
    own: Vec<u64>,
}

impl Tree {
    fn new(m: &TraceModel) -> Self {
        let mut children = vec![Vec::new(); m.spans.len()];
        let mut roots = Vec::new();
        // The ancestors of the current position, one per depth.
        let mut path: Vec<usize> = Vec::new();
        for &i in &m.order {
            let d = m.depth[i] as usize;
            path.truncate(d);
            match path.last() {
                Some(&p) if d > 0 => children[p].push(i),
                _ => roots.push(i),
            }
            path.push(i);
        }
        let own = (0..m.spans.len())
            .map(|i| own_time(m, &children[i], i))
            .collect();
        Self {
            roots,
            children,
            own,
        }
    }
}

/// The span's duration minus the union of its children's intervals clipped to it (children are in
/// start order, so one sweep suffices). An async child running past its parent's end counts only
/// for the part inside the parent.
fn own_time(m: &TraceModel, children: &[usize], i: usize) -> u64 {
    let s = &m.spans[i];
    let (lo, hi) = (s.start_time, s.end_time());
    let mut covered = 0;
    let mut reached = lo;
    for &c in children {
        let c = &m.spans[c];
        let (cs, ce) = (c.start_time.clamp(lo, hi), c.end_time().clamp(lo, hi));
        if ce > reached {
            covered += ce - cs.max(reached);
            reached = ce;
        }
    }
    s.duration.saturating_sub(covered)
}

/// Aligns two sibling lists: pairs in A's order, then each B-only span right after the B sibling
/// that precedes it (or first, when none does). Returns (A span, B span, occurrence).
fn align_siblings(
    a: &TraceModel,
    ca: &[usize],
    b: &TraceModel,
    cb: &[usize],
) -> Vec<(Option<usize>, Option<usize>, u32)> {
    let keyed = |m: &TraceModel, list: &[usize]| -> Vec<(String, String, u32)> {
        let mut seen: HashMap<(&str, &str), u32> = HashMap::new();
        list.iter()
            .map(|&i| {
                let (svc, op) = (m.service(i), m.spans[i].operation_name.as_str());
                let n = seen.entry((svc, op)).or_insert(0);
                *n += 1;
                (svc.to_string(), op.to_string(), *n - 1)
            })
            .collect()
    };
    let ka = keyed(a, ca);
    let kb = keyed(b, cb);
    let mut in_b: HashMap<&(String, String, u32), usize> =
        kb.iter().enumerate().map(|(j, k)| (k, j)).collect();
    let mut paired: Vec<(Option<usize>, Option<usize>, u32)> = Vec::with_capacity(ca.len());
    // For B's j-th child: the position of its pair in `paired`.
    let mut pos_of_b: Vec<Option<usize>> = vec![None; cb.len()];
    for (x, k) in ca.iter().zip(&ka) {
        let j = in_b.remove(k);
        if let Some(j) = j {
            pos_of_b[j] = Some(paired.len());
        }
        paired.push((Some(*x), j.map(|j| cb[j]), k.2));
    }
    // B-only spans wait behind the last paired B sibling before them.
    let mut after: Vec<Vec<usize>> = vec![Vec::new(); paired.len() + 1];
    let mut anchor = 0; // 0: before everything; p + 1: after paired[p]
    for (j, paired_at) in pos_of_b.iter().enumerate() {
        match *paired_at {
            Some(p) => anchor = p + 1,
            None => after[anchor].push(j),
        }
    }
    let mut out = Vec::with_capacity(paired.len() + cb.len());
    let b_only = |j: usize| (None, Some(cb[j]), kb[j].2);
    out.extend(after[0].iter().map(|&j| b_only(j)));
    for (p, pair) in paired.into_iter().enumerate() {
        out.push(pair);
        out.extend(after[p + 1].iter().map(|&j| b_only(j)));
    }
    out
}

/// Aligns trace B against trace A.
pub fn compare(a: &TraceModel, b: &TraceModel) -> Comparison {
    let ta = Tree::new(a);
    let tb = Tree::new(b);
    let mut rows = Vec::with_capacity(a.spans.len().max(b.spans.len()));
    // Depth-first with an explicit stack, children pushed in reverse so they pop in order.
    let mut stack: Vec<(Option<usize>, Option<usize>, u32, u32)> =
        align_siblings(a, &ta.roots, b, &tb.roots)
            .into_iter()
            .rev()
            .map(|(x, y, occ)| (x, y, 0, occ))
            .collect();
    while let Some((x, y, depth, occurrence)) = stack.pop() {
        let (service, operation) = match (x, y) {
            (Some(i), _) => (a.service(i), a.spans[i].operation_name.as_str()),
            (None, Some(j)) => (b.service(j), b.spans[j].operation_name.as_str()),
            (None, None) => continue,
        };
        rows.push(Row {
            a: x,
            b: y,
            depth,
            service: service.to_string(),
            operation: operation.to_string(),
            occurrence,
            duration_a: x.map(|i| a.spans[i].duration),
            duration_b: y.map(|j| b.spans[j].duration),
            own_a: x.map(|i| ta.own[i]),
            own_b: y.map(|j| tb.own[j]),
        });
        let ca = x.map_or(&[][..], |i| &ta.children[i]);
        let cb = y.map_or(&[][..], |j| &tb.children[j]);
        if ca.is_empty() && cb.is_empty() {
            continue;
        }
        stack.extend(
            align_siblings(a, ca, b, cb)
                .into_iter()
                .rev()
                .map(|(x, y, occ)| (x, y, depth + 1, occ)),
        );
    }
    let count = |c: Change| rows.iter().filter(|r| r.change() == c).count();
    let biggest = rows
        .iter()
        .enumerate()
        .filter(|(_, r)| r.own_delta() != 0)
        // max_by_key keeps the last maximum; the reversed index makes it the first in tree order.
        .max_by_key(|(p, r)| (r.own_delta().unsigned_abs(), std::cmp::Reverse(*p)))
        .map(|(p, _)| p);
    Comparison {
        matched: count(Change::Matched),
        added: count(Change::Added),
        removed: count(Change::Removed),
        biggest,
        total_a: a.end.saturating_sub(a.start),
        total_b: b.end.saturating_sub(b.start),
        rows,
    }
}

/// `A...B` (Jaeger UI's compare URL) into two canonical trace ids; `None` when `id` is a single
/// trace id (no `...`), `Err` naming the problem when it is a malformed pair.
pub fn parse_pair(id: &str) -> Option<Result<(String, String), String>> {
    if !id.contains("...") {
        return None;
    }
    let parts: Vec<&str> = id.split("...").collect();
    let [a, b] = parts[..] else {
        return Some(Err(format!(
            "{id:?} is not a comparison: it should be two trace ids joined by `...`, like /trace/A...B"
        )));
    };
    let one = |which: &str, s: &str| {
        collector_api::normalize_trace_id(s.trim())
            .map_err(|e| format!("trace {which} ({s:?}) is not a trace id: {e}"))
    };
    Some(one("A", a).and_then(|a| Ok((a, one("B", b)?))))
}

/// A signed duration delta: `+1203 ms`, `-4.2 ms`, `+850 µs`, `±0`.
pub fn signed_ms(delta_us: i64) -> String {
    let sign = if delta_us < 0 { "-" } else { "+" };
    let abs = delta_us.unsigned_abs();
    match abs {
        0 => "±0".to_string(),
        1..1_000 => format!("{sign}{abs} µs"),
        1_000..10_000 => format!("{sign}{:.1} ms", abs as f64 / 1e3),
        _ => format!("{sign}{} ms", (abs + 500) / 1000),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use collector_api::{Process, RefType, Reference, Span};

    /// (id, parent, service, operation, start, duration)
    type S<'a> = (&'a str, Option<&'a str>, &'a str, &'a str, u64, u64);

    fn model(spans: &[S]) -> TraceModel {
        let mut procs = BTreeMap::new();
        let spans: Vec<Span> = spans
            .iter()
            .map(|&(id, parent, svc, op, start, duration)| {
                let pid = format!("p-{svc}");
                procs.insert(
                    pid.clone(),
                    Process {
                        service_name: svc.into(),
                        tags: vec![],
                    },
                );
                Span {
                    trace_id: "t".into(),
                    span_id: id.into(),
                    flags: 1,
                    operation_name: op.into(),
                    references: parent
                        .map(|p| Reference {
                            ref_type: RefType::ChildOf,
                            trace_id: "t".into(),
                            span_id: p.into(),
                        })
                        .into_iter()
                        .collect(),
                    start_time: start,
                    duration,
                    tags: vec![],
                    logs: vec![],
                    process_id: pid,
                    warnings: vec![],
                }
            })
            .collect();
        let n = spans.len() as u64;
        TraceModel::new("t".into(), spans, procs, n)
    }

    /// A checkout in miniature; `charge` lasts `charge` µs and calls the provider `attempts` times.
    fn checkout(charge: u64, attempts: u64) -> TraceModel {
        let mut spans: Vec<S> = vec![
            ("r", None, "gw", "POST /orders", 0, 100 + charge),
            ("o", Some("r"), "order", "process_order", 10, 80 + charge),
            ("v", Some("o"), "order", "validate", 15, 5),
            ("c", Some("o"), "pay", "charge", 30, charge),
        ];
        let ids = ["p0", "p1", "p2", "p3"];
        for k in 0..attempts {
            spans.push((
                ids[k as usize],
                Some("c"),
                "pay",
                "provider",
                30 + k * 10,
                5,
            ));
        }
        spans.push(("i", Some("o"), "inv", "reserve", 40 + charge, 20));
        model(&spans)
    }

    fn names(c: &Comparison) -> Vec<String> {
        c.rows
            .iter()
            .map(|r| {
                format!(
                    "{}{}:{}#{}",
                    " ".repeat(r.depth as usize),
                    r.operation,
                    r.change().as_str(),
                    r.occurrence
                )
            })
            .collect()
    }

    #[test]
    fn identical_traces_match_everywhere_with_zero_deltas() {
        let a = checkout(40, 1);
        let c = compare(&a, &checkout(40, 1));
        assert_eq!((c.matched, c.added, c.removed), (6, 0, 0));
        assert!(
            c.rows
                .iter()
                .all(|r| r.delta() == Some(0) && r.own_delta() == 0)
        );
        assert_eq!(c.biggest, None);
        assert_eq!(c.total_delta(), 0);
        assert_eq!(
            names(&c),
            [
                "POST /orders:matched#0",
                " process_order:matched#0",
                "  validate:matched#0",
                "  charge:matched#0",
                "   provider:matched#0",
                "  reserve:matched#0",
            ]
        );
    }

    #[test]
    fn an_extra_retry_is_added_and_the_slow_span_is_the_biggest_delta() {
        let a = checkout(40, 1);
        let b = checkout(1240, 3);
        let c = compare(&a, &b);
        assert_eq!((c.matched, c.added, c.removed), (6, 2, 0));
        assert_eq!(
            names(&c),
            [
                "POST /orders:matched#0",
                " process_order:matched#0",
                "  validate:matched#0",
                "  charge:matched#0",
                "   provider:matched#0",
                "   provider:added#1",
                "   provider:added#2",
                "  reserve:matched#0",
            ]
        );
        let charge = &c.rows[3];
        assert_eq!(charge.delta(), Some(1200), "signed B − A");
        // A's charge: 40 − 5 of provider; B's: 1240 − 3 × 5.
        assert_eq!((charge.own_a, charge.own_b), (Some(35), Some(1225)));
        assert_eq!(c.biggest, Some(3), "charge, not its waiting ancestors");
        assert_eq!(c.rows[0].delta(), Some(1200));
        assert_eq!(c.rows[5].delta(), None, "an added span has no delta");
        assert_eq!(c.rows[5].b, b.index_of("p1"));
        // Synchronous calls: the own-time deltas add up to the root's delta.
        let sum: i64 = c.rows.iter().map(Row::own_delta).sum();
        assert_eq!(sum, c.rows[0].delta().unwrap());
        assert_eq!(c.total_delta(), 1200);
    }

    #[test]
    fn a_missing_span_is_removed_and_faster_is_negative() {
        let a = checkout(1240, 3);
        let mut spans: Vec<S> = vec![
            ("r", None, "gw", "POST /orders", 0, 140),
            ("o", Some("r"), "order", "process_order", 10, 120),
            ("c", Some("o"), "pay", "charge", 30, 40),
            ("p0", Some("c"), "pay", "provider", 30, 5),
        ];
        spans.push(("i", Some("o"), "inv", "reserve", 80, 20));
        let b = model(&spans);
        let c = compare(&a, &b);
        assert_eq!((c.matched, c.added, c.removed), (5, 0, 3));
        let removed: Vec<String> = c
            .rows
            .iter()
            .filter(|r| r.change() == Change::Removed)
            .map(|r| format!("{}#{}", r.operation, r.occurrence))
            .collect();
        assert_eq!(removed, ["validate#0", "provider#1", "provider#2"]);
        let charge = c.rows.iter().find(|r| r.operation == "charge").unwrap();
        assert_eq!(charge.delta(), Some(-1200));
        assert_eq!(c.rows[c.biggest.unwrap()].operation, "charge");
    }

    #[test]
    fn same_names_under_different_parents_or_services_stay_apart() {
        // "POST" twice under the root: once to pay, once to inv; the order of B's siblings
        // differs, yet each pairs with its own (service, operation, occurrence).
        let a = model(&[
            ("r", None, "gw", "root", 0, 100),
            ("x1", Some("r"), "gw", "POST", 10, 10),
            ("x2", Some("r"), "gw", "POST", 30, 20),
            ("y", Some("r"), "pay", "POST", 60, 5),
            ("z", Some("x2"), "gw", "POST", 31, 2),
        ]);
        let b = model(&[
            ("r", None, "gw", "root", 0, 100),
            ("y", Some("r"), "pay", "POST", 5, 7),
            ("x1", Some("r"), "gw", "POST", 10, 13),
            ("x2", Some("r"), "gw", "POST", 30, 20),
            ("n", Some("r"), "inv", "new", 70, 1),
        ]);
        let c = compare(&a, &b);
        let view: Vec<String> = c
            .rows
            .iter()
            .map(|r| {
                let id = |m: &TraceModel, i: Option<usize>| {
                    i.map_or("-".to_string(), |i| m.spans[i].span_id.clone())
                };
                format!("{}:{}/{}", r.depth, id(&a, r.a), id(&b, r.b))
            })
            .collect();
        // Pairs follow A's order; B's `n` follows `x2`, the B sibling before it; `z` is A's only.
        assert_eq!(
            view,
            ["0:r/r", "1:x1/x1", "1:x2/x2", "2:z/-", "1:-/n", "1:y/y"]
        );
        assert_eq!(c.rows[1].delta(), Some(3));
        assert_eq!(
            c.rows[5].delta(),
            Some(2),
            "pay's POST pairs with pay's, though B ran it first"
        );
        assert_eq!((c.matched, c.added, c.removed), (4, 1, 1));
    }

    #[test]
    fn ten_thousand_deep_chains_align_without_recursion() {
        let n = 10_000u64;
        let ids: Vec<String> = (0..n).map(|i| format!("s{i}")).collect();
        let chain = |extra: u64| {
            let spans: Vec<S> = (0..n as usize)
                .map(|i| {
                    let parent = (i > 0).then(|| ids[i - 1].as_str());
                    let i = i as u64;
                    (
                        ids[i as usize].as_str(),
                        parent,
                        "svc",
                        "step",
                        i,
                        2 * n - 2 * i + extra,
                    )
                })
                .collect();
            model(&spans)
        };
        let c = compare(&chain(0), &chain(7));
        assert_eq!(c.rows.len() as u64, n);
        assert_eq!(c.matched as u64, n);
        assert_eq!(c.rows.last().unwrap().depth as u64, n - 1);
        assert!(c.rows.iter().all(|r| r.delta() == Some(7)));
        // Only the deepest span's own time grew (every other is covered by its child).
        assert_eq!(c.biggest, Some(n as usize - 1));
    }

    #[test]
    fn compare_urls_parse_and_bad_ones_say_why() {
        assert_eq!(parse_pair("abc"), None);
        let (a, b) = parse_pair("ABC...0def").unwrap().unwrap();
        assert_eq!(a, format!("{:0>32}", "abc"));
        assert_eq!(b, format!("{:0>32}", "def"));
        let e = parse_pair("abc...xyz").unwrap().unwrap_err();
        assert!(e.contains("trace B") && e.contains("xyz"), "{e}");
        let e = parse_pair("...abc").unwrap().unwrap_err();
        assert!(e.contains("trace A"), "{e}");
        let e = parse_pair("a...b...c").unwrap().unwrap_err();
        assert!(e.contains("two trace ids"), "{e}");
    }

    #[test]
    fn deltas_read_signed() {
        assert_eq!(signed_ms(1_203_400), "+1203 ms");
        assert_eq!(signed_ms(-4_240), "-4.2 ms");
        assert_eq!(signed_ms(850), "+850 µs");
        assert_eq!(signed_ms(0), "±0");
    }
}
