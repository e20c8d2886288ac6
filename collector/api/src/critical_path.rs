//! The critical path of a trace and the bottleneck it names — pure functions over Jaeger spans, so
//! the viewer draws exactly what `tracelab assert` checks (`bottleneck: payment-service`).
//!
//! The algorithm is Jaeger UI's (v1.33, `CriticalPath/index.ts`): start at the root's end; take the
//! child that ended last, walk into it, then continue in the parent from that child's start with
//! the child that ended just before it, and so on; what no child covers is the parent's own time.
//! Children are clipped to their parent's (clipped) range, and a child entirely outside it — a Kafka
//! consumer that starts after its producer span ended — is not on the path: nobody waited for it.
//!
//! Unlike Jaeger UI it is iterative (no recursion limit at 10k spans, jaeger-ui#2720), builds the
//! child lists once (no O(n²) descendant walk, #2179) and ignores FOLLOWS_FROM references, so a
//! link to another trace (#2427) cannot send it off the tree. O(n log n) in the span count.

use std::collections::{BTreeMap, HashMap};

use crate::jaeger::{Process, Span};

/// A stretch of time on the critical path spent in one span's own code (not in a child).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// Index into the slice given to [`critical_path`].
    pub span: usize,
    /// µs since the epoch.
    pub start: u64,
    pub end: u64,
}

impl Segment {
    pub fn duration(&self) -> u64 {
        self.end - self.start
    }
}

/// The root the critical path starts from: among spans whose parent is not in the trace, the
/// earliest, then the longest. `None` for an empty trace.
pub fn root_index(spans: &[Span]) -> Option<usize> {
    let ids: HashMap<&str, usize> = spans
        .iter()
        .enumerate()
        .map(|(i, s)| (s.span_id.as_str(), i))
        .collect();
    spans
        .iter()
        .enumerate()
        .filter(|(_, s)| s.parent_span_id().is_none_or(|p| !ids.contains_key(p)))
        .min_by_key(|(_, s)| (s.start_time, std::cmp::Reverse(s.duration)))
        .map(|(i, _)| i)
}

/// The critical path of the tree under [`root_index`], in time order. The segments' durations add
/// up to the root's duration.
pub fn critical_path(spans: &[Span]) -> Vec<Segment> {
    let Some(root) = root_index(spans) else {
        return Vec::new();
    };
    let ids: HashMap<&str, usize> = spans
        .iter()
        .enumerate()
        .map(|(i, s)| (s.span_id.as_str(), i))
        .collect();
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); spans.len()];
    for (i, s) in spans.iter().enumerate() {
        if let Some(&p) = s.parent_span_id().and_then(|p| ids.get(p))
            && p != i
        {
            children[p].push(i);
        }
    }
    critical_path_in(
        |i| (spans[i].start_time, spans[i].end_time()),
        &children,
        root,
    )
}

/// The same walk over any tree: `range(i)` is node `i`'s (start, end) in µs and `children[i]` its
/// children (any order). The collector runs it over its cached span headers, so a 100,000-span
/// trace's path is found without building Jaeger spans.
pub fn critical_path_in(
    range: impl Fn(usize) -> (u64, u64),
    children: &[Vec<usize>],
    root: usize,
) -> Vec<Segment> {
    struct Frame {
        span: usize,
        /// The span's range clipped to its parent's clipped range.
        lo: u64,
        /// Where the walk stands in this span, moving backwards from `hi`.
        cursor: u64,
        /// Children clipped to `[lo, hi]` as (end, start, index), latest end first.
        kids: Vec<(u64, u64, usize)>,
        next: usize,
    }
    let frame = |span: usize, lo: u64, hi: u64, visited: &mut [bool]| -> Frame {
        visited[span] = true;
        let mut kids: Vec<(u64, u64, usize)> = children[span]
            .iter()
            .filter(|&&c| !visited[c])
            .filter_map(|&c| {
                let (s, e) = range(c);
                let (start, end) = (s.max(lo), e.min(hi));
                (start < end).then_some((end, start, c))
            })
            .collect();
        kids.sort_unstable_by(|a, b| b.cmp(a));
        Frame {
            span,
            lo,
            cursor: hi,
            kids,
            next: 0,
        }
    };

    if root >= children.len() {
        return Vec::new();
    }
    let mut visited = vec![false; children.len()];
    let (r_start, r_end) = range(root);
    let mut stack = vec![frame(root, r_start, r_end, &mut visited)];
    let mut out = Vec::new();
    while let Some(f) = stack.last_mut() {
        // The next child that ended no later than where the walk stands in this span.
        while f.next < f.kids.len() && f.kids[f.next].0 > f.cursor {
            f.next += 1;
        }
        if let Some(&(end, start, child)) = f.kids.get(f.next) {
            f.next += 1;
            if end < f.cursor {
                out.push(Segment {
                    span: f.span,
                    start: end,
                    end: f.cursor,
                });
            }
            // Back in this span, the walk resumes where the child started.
            f.cursor = start;
            if visited[child] {
                continue;
            }
            let child_frame = frame(child, start, end, &mut visited);
            stack.push(child_frame);
        } else {
            if f.lo < f.cursor {
                out.push(Segment {
                    span: f.span,
                    start: f.lo,
                    end: f.cursor,
                });
            }
            stack.pop();
        }
    }
    out.reverse();
    out
}

/// The (service, operation) that holds the most time on the critical path.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Bottleneck {
    pub service: String,
    pub operation: String,
    /// The span of that operation with the most critical-path time (to link to it).
    pub span_id: String,
    /// µs of the critical path spent in this operation's own code.
    pub critical_us: u64,
    /// µs of the whole critical path (the root span's duration).
    pub total_us: u64,
}

impl Bottleneck {
    /// Share of the critical path, 0–100, rounded down.
    pub fn percent(&self) -> u64 {
        (self.critical_us * 100)
            .checked_div(self.total_us)
            .unwrap_or(0)
    }

    /// "payment-service · charge: 1204 of 1244 ms (96 %)" — the seeds' way of naming a bottleneck.
    pub fn sentence(&self) -> String {
        format!(
            "{} · {}: {} of {} ({} %)",
            self.service,
            self.operation,
            ms(self.critical_us, false),
            ms(self.total_us, true),
            self.percent()
        )
    }
}

/// Milliseconds for the sentence: whole ms from 10 ms up, one decimal below.
fn ms(us: u64, unit: bool) -> String {
    let n = if us >= 10_000 {
        format!("{}", (us + 500) / 1000)
    } else {
        format!("{:.1}", us as f64 / 1000.0)
    };
    if unit { format!("{n} ms") } else { n }
}

/// Critical-path time per (service, operation), largest first; `service` comes from the span's process.
pub fn critical_time_by_operation(
    spans: &[Span],
    processes: &BTreeMap<String, Process>,
    path: &[Segment],
) -> Vec<((String, String), u64)> {
    time_by_name(|i| span_name(spans, processes, i), path)
}

fn span_name<'a>(
    spans: &'a [Span],
    processes: &'a BTreeMap<String, Process>,
    i: usize,
) -> (&'a str, &'a str) {
    let s = &spans[i];
    let service = processes
        .get(&s.process_id)
        .map_or("unknown", |p| p.service_name.as_str());
    (service, s.operation_name.as_str())
}

/// Critical-path time per name (`name(i)` is node `i`'s (service, operation)), largest first.
fn time_by_name<'a>(
    name: impl Fn(usize) -> (&'a str, &'a str),
    path: &[Segment],
) -> Vec<((String, String), u64)> {
    let mut by: HashMap<(&str, &str), u64> = HashMap::new();
    for seg in path {
        *by.entry(name(seg.span)).or_default() += seg.duration();
    }
    let mut v: Vec<_> = by
        .into_iter()
        .map(|((s, o), t)| ((s.to_string(), o.to_string()), t))
        .collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v
}

/// The bottleneck of a trace: the (service, operation) with the most critical-path time.
pub fn bottleneck(
    spans: &[Span],
    processes: &BTreeMap<String, Process>,
    path: &[Segment],
) -> Option<Bottleneck> {
    let root = root_index(spans)?;
    bottleneck_in(
        |i| span_name(spans, processes, i),
        |i| spans[i].span_id.clone(),
        path,
        spans[root].duration,
    )
}

/// [`bottleneck`] over any tree: `name(i)` is node `i`'s (service, operation), `span_id(i)` its id,
/// `total_us` the root's duration (what the collector computes from its span headers).
pub fn bottleneck_in<'a>(
    name: impl Fn(usize) -> (&'a str, &'a str),
    span_id: impl Fn(usize) -> String,
    path: &[Segment],
    total_us: u64,
) -> Option<Bottleneck> {
    let ((service, operation), critical_us) = time_by_name(&name, path).into_iter().next()?;
    let mut per_span: HashMap<usize, u64> = HashMap::new();
    for seg in path {
        if name(seg.span) == (service.as_str(), operation.as_str()) {
            *per_span.entry(seg.span).or_default() += seg.duration();
        }
    }
    let span = per_span
        .into_iter()
        .max_by_key(|&(i, t)| (t, std::cmp::Reverse(i)))
        .map(|(i, _)| i)?;
    Some(Bottleneck {
        service,
        operation,
        span_id: span_id(span),
        critical_us,
        total_us,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jaeger::{KeyValue, RefType, Reference};

    /// (id, parent, service, operation, start ms, end ms)
    type Row<'a> = (&'a str, Option<&'a str>, &'a str, &'a str, u64, u64);

    fn trace(rows: &[Row]) -> (Vec<Span>, BTreeMap<String, Process>) {
        let mut processes = BTreeMap::new();
        let spans = rows
            .iter()
            .map(|&(id, parent, svc, op, start, end)| {
                processes.insert(
                    svc.to_string(),
                    Process {
                        service_name: svc.to_string(),
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
                    start_time: start * 1000,
                    duration: (end - start) * 1000,
                    tags: vec![KeyValue::string("span.kind", "internal")],
                    logs: vec![],
                    process_id: svc.into(),
                    warnings: vec![],
                }
            })
            .collect();
        (spans, processes)
    }

    /// The path as (span id, start ms, end ms).
    fn path(spans: &[Span]) -> Vec<(String, u64, u64)> {
        critical_path(spans)
            .iter()
            .map(|s| (spans[s.span].span_id.clone(), s.start / 1000, s.end / 1000))
            .collect()
    }

    fn p(v: &[(&str, u64, u64)]) -> Vec<(String, u64, u64)> {
        v.iter().map(|&(s, a, b)| (s.to_string(), a, b)).collect()
    }

    #[test]
    fn sequential_children_each_take_their_turn() {
        let (spans, _) = trace(&[
            ("root", None, "gw", "POST /orders", 0, 100),
            ("a", Some("root"), "gw", "auth", 5, 20),
            ("b", Some("root"), "order", "POST", 25, 90),
            ("b1", Some("b"), "payment", "charge", 30, 80),
        ]);
        assert_eq!(
            path(&spans),
            p(&[
                ("root", 0, 5),
                ("a", 5, 20),
                ("root", 20, 25),
                ("b", 25, 30),
                ("b1", 30, 80),
                ("b", 80, 90),
                ("root", 90, 100),
            ])
        );
        let total: u64 = critical_path(&spans).iter().map(Segment::duration).sum();
        assert_eq!(total, 100_000, "the path covers the root exactly");
    }

    #[test]
    fn of_overlapping_children_the_later_finishing_one_blocks() {
        // Two parallel calls: `slow` ends last, so it is on the path; `fast` overlaps it entirely
        // and is skipped; `early` ends before `slow` starts and is on the path again.
        let (spans, _) = trace(&[
            ("root", None, "gw", "root", 0, 100),
            ("early", Some("root"), "gw", "early", 0, 10),
            ("fast", Some("root"), "a", "fast", 20, 50),
            ("slow", Some("root"), "b", "slow", 15, 95),
        ]);
        assert_eq!(
            path(&spans),
            p(&[
                ("early", 0, 10),
                ("root", 10, 15),
                ("slow", 15, 95),
                ("root", 95, 100),
            ])
        );
    }

    #[test]
    fn children_overflowing_the_parent_are_clipped() {
        let (spans, _) = trace(&[
            ("root", None, "gw", "root", 10, 100),
            ("c", Some("root"), "a", "c", 0, 120),
        ]);
        assert_eq!(path(&spans), p(&[("c", 10, 100)]));
    }

    #[test]
    fn an_async_consumer_after_its_producer_is_not_on_the_path() {
        // order's producer span ends at 62; the consumer runs 70..900 in another service. Nobody
        // waited for it: the request's critical path stays inside the root.
        let (spans, procs) = trace(&[
            ("root", None, "api-gateway", "POST /orders", 0, 65),
            (
                "order",
                Some("root"),
                "order-service",
                "process_order",
                2,
                63,
            ),
            ("pay", Some("order"), "payment-service", "charge", 5, 55),
            (
                "send",
                Some("order"),
                "order-service",
                "send orders",
                58,
                62,
            ),
            (
                "consume",
                Some("send"),
                "inventory-service",
                "process orders",
                70,
                900,
            ),
            (
                "mail",
                Some("consume"),
                "inventory-service",
                "send_confirmation_email",
                80,
                890,
            ),
        ]);
        let cp = critical_path(&spans);
        let ids: Vec<&str> = cp.iter().map(|s| spans[s.span].span_id.as_str()).collect();
        assert!(
            !ids.contains(&"consume") && !ids.contains(&"mail"),
            "{ids:?}"
        );
        assert!(ids.contains(&"send"));
        let b = bottleneck(&spans, &procs, &cp).unwrap();
        assert_eq!(
            (b.service.as_str(), b.operation.as_str()),
            ("payment-service", "charge")
        );
        assert_eq!(
            (b.critical_us, b.total_us, b.percent()),
            (50_000, 65_000, 76)
        );
        assert_eq!(b.span_id, "pay");
        assert_eq!(b.sentence(), "payment-service · charge: 50 of 65 ms (76 %)");
    }

    #[test]
    fn the_bottleneck_of_seed_000s_slow_payment() {
        let (spans, procs) = trace(&[
            ("r", None, "api-gateway", "POST /orders", 0, 1300),
            ("o", Some("r"), "order-service", "POST /orders", 20, 1290),
            ("c", Some("o"), "payment-service", "charge", 40, 1240),
            (
                "s",
                Some("c"),
                "payment-service",
                "stripe.create_charge",
                1200,
                1230,
            ),
        ]);
        let cp = critical_path(&spans);
        let b = bottleneck(&spans, &procs, &cp).unwrap();
        assert_eq!(
            b.sentence(),
            "payment-service · charge: 1170 of 1300 ms (90 %)"
        );
    }

    #[test]
    fn fragments_and_cycles_do_not_derail_the_walk() {
        // A span whose parent never arrived (a second root) and a self-parented span.
        let (mut spans, _) = trace(&[
            ("root", None, "gw", "root", 0, 50),
            ("orphan", Some("missing"), "pay", "POST /charges", 10, 40),
            ("self", Some("self"), "x", "loop", 12, 14),
        ]);
        assert_eq!(root_index(&spans), Some(0));
        assert_eq!(path(&spans), p(&[("root", 0, 50)]));
        // FOLLOWS_FROM to another trace is a link, not a parent.
        spans[1].references = vec![Reference {
            ref_type: RefType::FollowsFrom,
            trace_id: "other".into(),
            span_id: "root".into(),
        }];
        assert_eq!(path(&spans), p(&[("root", 0, 50)]));
        assert!(critical_path(&[]).is_empty());
    }

    #[test]
    fn a_deep_trace_does_not_overflow_the_stack() {
        // 50,000 nested spans: Jaeger UI's recursion dies near 10k.
        let n = 50_000u64;
        let ids: Vec<String> = (0..n).map(|i| format!("s{i}")).collect();
        let rows: Vec<Row> = (0..n as usize)
            .map(|i| {
                let parent = (i > 0).then(|| ids[i - 1].as_str());
                (
                    ids[i].as_str(),
                    parent,
                    "svc",
                    "op",
                    i as u64,
                    2 * n - i as u64,
                )
            })
            .collect();
        let (spans, _) = trace(&rows);
        let cp = critical_path(&spans);
        let total: u64 = cp.iter().map(Segment::duration).sum();
        assert_eq!(total, spans[0].duration);
        assert_eq!(cp.len() as u64, 2 * n - 1);
    }
}
