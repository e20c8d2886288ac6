//! Sampling statistics, one set per sampling processor (keyed by component id), and the queues of
//! decisions waiting to be persisted, one per trace store.
//!
//! - [`SamplingStats`]: one `tail_sampling[/NAME]` processor's per-policy counts, eviction, span-cap
//!   and late-span counters, span counters and a bounded ring of recent decisions.
//! - [`ProbabilisticStats`]: one `probabilistic_sampler[/NAME]` processor's kept / dropped spans and
//!   log records (it decides per item; there are no traces to count).
//! - [`SamplingRegistry`]: all of them by component id, with the pipelines each sits in; the query
//!   API's `/api/v1/sampling` is [`SamplingRegistry::snapshot`].
//! - [`DecisionQueue`]: the decisions a `tracelab` store has yet to persist. Each tail sampler pushes
//!   its decisions into the queues of the stores downstream of it (see `pipeline::build`).
//!
//! The builder makes one processor instance per pipeline (like the OpenTelemetry Collector), so a
//! processor id listed in two pipelines is two instances sharing one set of statistics: counters
//! and pending traces are summed, each instance persists its decisions to its own pipeline's stores.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use collector_api::v1::{
    PolicyStats, ProcessorSampling, SamplerType, SamplingDecision, SamplingStatsResponse,
};

/// How many recent decisions `/api/v1/sampling` shows.
pub const DEFAULT_RECENT_CAPACITY: usize = 1000;
/// Decisions waiting to be persisted by one store; beyond this the oldest are dropped (and counted)
/// rather than letting memory grow when the store falls behind.
const UNPERSISTED_CAPACITY: usize = 50_000;

/// One tail sampler's counters. Cheap to update from the hot path: the counters are atomics, and
/// the mutex-protected parts are touched once per decided trace.
#[derive(Debug)]
pub struct SamplingStats {
    /// The processor's component id (`tail_sampling/tail`), recorded in its decisions.
    id: String,
    policies: Mutex<Vec<PolicyStats>>,
    /// The first top-level `latency` policy: its name and `threshold_ms` (the dashboard's "slow").
    latency_threshold: Mutex<Option<(String, u64)>>,
    /// The stores its decisions are persisted into.
    stores: Mutex<Vec<String>>,
    recent: Mutex<VecDeque<SamplingDecision>>,
    recent_capacity: usize,
    pub traces_sampled: AtomicU64,
    pub traces_not_sampled: AtomicU64,
    pub traces_evicted_early: AtomicU64,
    pub traces_span_capped: AtomicU64,
    pub late_spans_forwarded: AtomicU64,
    pub late_spans_dropped: AtomicU64,
    /// Summed over the instances sharing these statistics (each adds its own changes).
    pub pending_traces: AtomicU64,
    /// Spans of kept traces (late ones included), counted when decided.
    pub spans_sampled: AtomicU64,
    /// Spans of dropped traces (late ones included).
    pub spans_not_sampled: AtomicU64,
}

impl Default for SamplingStats {
    fn default() -> Self {
        Self::new(DEFAULT_RECENT_CAPACITY)
    }
}

/// What one top-level policy voted for one trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicyVote {
    /// Index in config order.
    pub policy: usize,
    pub sampled: bool,
}

impl SamplingStats {
    pub fn new(recent_capacity: usize) -> Self {
        Self::named("", recent_capacity)
    }

    /// Statistics of the processor with component id `id`.
    pub fn named(id: &str, recent_capacity: usize) -> Self {
        Self {
            id: id.to_string(),
            policies: Mutex::new(Vec::new()),
            latency_threshold: Mutex::new(None),
            stores: Mutex::new(Vec::new()),
            recent: Mutex::new(VecDeque::with_capacity(recent_capacity.min(4096))),
            recent_capacity: recent_capacity.max(1),
            traces_sampled: AtomicU64::new(0),
            traces_not_sampled: AtomicU64::new(0),
            traces_evicted_early: AtomicU64::new(0),
            traces_span_capped: AtomicU64::new(0),
            late_spans_forwarded: AtomicU64::new(0),
            late_spans_dropped: AtomicU64::new(0),
            pending_traces: AtomicU64::new(0),
            spans_sampled: AtomicU64::new(0),
            spans_not_sampled: AtomicU64::new(0),
        }
    }

    /// The processor's component id (empty when built outside a pipeline).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Notes the first top-level `latency` policy (name, `threshold_ms`), or that there is none.
    pub fn set_latency_threshold(&self, policy: Option<(String, u64)>) {
        *lock(&self.latency_threshold) = policy;
    }

    /// The first top-level `latency` policy's name and `threshold_ms`.
    pub fn latency_threshold(&self) -> Option<(String, u64)> {
        lock(&self.latency_threshold).clone()
    }

    /// Notes that decisions are persisted into store `id`.
    pub fn add_store(&self, id: &str) {
        let mut s = lock(&self.stores);
        if !s.iter().any(|x| x == id) {
            s.push(id.to_string());
            s.sort();
        }
    }

    /// The policies (name, type) in config order.
    pub fn policy_types(&self) -> Vec<(String, String)> {
        lock(&self.policies)
            .iter()
            .map(|p| (p.name.clone(), p.policy_type.clone()))
            .collect()
    }

    /// Declares the policies (name, type) in config order; keeps counts of policies that stay.
    pub fn register_policies(&self, policies: &[(String, String)]) {
        let mut cur = lock(&self.policies);
        let old = std::mem::take(&mut *cur);
        *cur = policies
            .iter()
            .map(|(name, ty)| {
                old.iter()
                    .find(|p| &p.name == name && &p.policy_type == ty)
                    .cloned()
                    .unwrap_or_else(|| PolicyStats {
                        name: name.clone(),
                        policy_type: ty.clone(),
                        ..Default::default()
                    })
            })
            .collect();
    }

    /// Records one final decision with the votes that led to it. `decider` is the index of the
    /// policy credited with the decision (see [`SamplingDecision::policy`]). The trace's spans
    /// count as sampled or not sampled.
    pub fn record(&self, decision: SamplingDecision, votes: &[PolicyVote], decider: Option<usize>) {
        use collector_api::v1::Decision;
        let kept = decision.decision == Decision::Sampled;
        if kept {
            ComponentCounter::inc(&self.traces_sampled, 1);
            ComponentCounter::inc(&self.spans_sampled, decision.span_count);
        } else {
            ComponentCounter::inc(&self.traces_not_sampled, 1);
            ComponentCounter::inc(&self.spans_not_sampled, decision.span_count);
        }
        {
            let mut p = lock(&self.policies);
            for v in votes {
                if let Some(s) = p.get_mut(v.policy) {
                    if v.sampled {
                        s.sampled += 1;
                    } else {
                        s.not_sampled += 1;
                    }
                }
            }
            if let Some(s) = decider.and_then(|d| p.get_mut(d)) {
                if kept {
                    s.kept += 1;
                } else {
                    s.dropped += 1;
                }
            }
        }
        let mut r = lock(&self.recent);
        if r.len() >= self.recent_capacity {
            r.pop_back();
        }
        r.push_front(decision);
    }

    /// Counts `n` spans that arrived after their trace was decided: forwarded (`kept`) or dropped.
    pub fn record_late_spans(&self, n: u64, kept: bool) {
        if kept {
            ComponentCounter::inc(&self.late_spans_forwarded, n);
            ComponentCounter::inc(&self.spans_sampled, n);
        } else {
            ComponentCounter::inc(&self.late_spans_dropped, n);
            ComponentCounter::inc(&self.spans_not_sampled, n);
        }
    }

    /// Counts of the policy named `name`.
    pub fn policy(&self, name: &str) -> Option<PolicyStats> {
        lock(&self.policies)
            .iter()
            .find(|p| p.name == name)
            .cloned()
    }

    /// The most recent decisions, most recent first.
    pub fn recent(&self, limit: usize) -> Vec<SamplingDecision> {
        lock(&self.recent).iter().take(limit).cloned().collect()
    }

    /// A point-in-time copy of this sampler alone, in `/api/v1/sampling`'s shape (`processors` empty).
    pub fn snapshot(&self, recent_limit: usize) -> SamplingStatsResponse {
        let mut out = SamplingStatsResponse::default();
        add_tail_sampler(&mut out, &self.processor("", &[]));
        out.recent = self.recent(recent_limit);
        out
    }

    fn processor(&self, id: &str, pipelines: &[String]) -> ProcessorSampling {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ProcessorSampling {
            id: id.to_string(),
            processor_type: SamplerType::TailSampling,
            pipelines: pipelines.to_vec(),
            traces_sampled: get(&self.traces_sampled),
            traces_not_sampled: get(&self.traces_not_sampled),
            traces_evicted_early: get(&self.traces_evicted_early),
            traces_span_capped: get(&self.traces_span_capped),
            late_spans_forwarded: get(&self.late_spans_forwarded),
            late_spans_dropped: get(&self.late_spans_dropped),
            pending_traces: get(&self.pending_traces),
            policies: lock(&self.policies).clone(),
            stores: lock(&self.stores).clone(),
            spans_sampled: get(&self.spans_sampled),
            spans_not_sampled: get(&self.spans_not_sampled),
            ..Default::default()
        }
    }
}

/// Adds a tail sampler's counters and policies to the top level of `/api/v1/sampling`.
fn add_tail_sampler(out: &mut SamplingStatsResponse, p: &ProcessorSampling) {
    out.traces_sampled += p.traces_sampled;
    out.traces_not_sampled += p.traces_not_sampled;
    out.traces_evicted_early += p.traces_evicted_early;
    out.traces_span_capped += p.traces_span_capped;
    out.late_spans_forwarded += p.late_spans_forwarded;
    out.late_spans_dropped += p.late_spans_dropped;
    out.pending_traces += p.pending_traces;
    out.policies.extend(p.policies.iter().cloned());
}

/// One probabilistic sampler's decisions, per item.
#[derive(Debug, Default)]
pub struct ProbabilisticStats {
    pub spans_sampled: AtomicU64,
    pub spans_not_sampled: AtomicU64,
    pub log_records_sampled: AtomicU64,
    pub log_records_not_sampled: AtomicU64,
}

impl ProbabilisticStats {
    fn processor(&self, id: &str, pipelines: &[String]) -> ProcessorSampling {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ProcessorSampling {
            id: id.to_string(),
            processor_type: SamplerType::ProbabilisticSampler,
            pipelines: pipelines.to_vec(),
            spans_sampled: get(&self.spans_sampled),
            spans_not_sampled: get(&self.spans_not_sampled),
            log_records_sampled: get(&self.log_records_sampled),
            log_records_not_sampled: get(&self.log_records_not_sampled),
            ..Default::default()
        }
    }
}

#[derive(Debug, Clone)]
enum Sampler {
    Tail(Arc<SamplingStats>),
    Probabilistic(Arc<ProbabilisticStats>),
}

#[derive(Debug, Clone)]
struct Registered {
    sampler: Sampler,
    pipelines: Vec<String>,
}

/// The statistics of every sampling processor, by component id. Filled by the pipeline builder,
/// read by the query API.
#[derive(Debug, Default)]
pub struct SamplingRegistry {
    processors: BTreeMap<String, Registered>,
}

impl SamplingRegistry {
    /// Registers `id` (with `new()` on first use) in `pipeline`; `pick` chooses the statistics
    /// of the expected kind, `None` (and nothing noted) when `id` has the other kind.
    fn register<S>(
        &mut self,
        id: &str,
        pipeline: &str,
        new: impl FnOnce() -> Sampler,
        pick: impl Fn(&Sampler) -> Option<S>,
    ) -> Option<S> {
        let e = self
            .processors
            .entry(id.to_string())
            .or_insert_with(|| Registered {
                sampler: new(),
                pipelines: Vec::new(),
            });
        let s = pick(&e.sampler)?;
        if !e.pipelines.iter().any(|p| p == pipeline) {
            e.pipelines.push(pipeline.to_string());
        }
        Some(s)
    }

    /// The statistics of tail sampler `id` (created on first use), noting that it sits in
    /// `pipeline`. `None` when `id` is registered as another kind of sampler.
    pub fn tail_sampling(&mut self, id: &str, pipeline: &str) -> Option<Arc<SamplingStats>> {
        self.register(
            id,
            pipeline,
            || Sampler::Tail(Arc::new(SamplingStats::named(id, DEFAULT_RECENT_CAPACITY))),
            |s| match s {
                Sampler::Tail(s) => Some(s.clone()),
                Sampler::Probabilistic(_) => None,
            },
        )
    }

    /// The statistics of probabilistic sampler `id` (created on first use) in `pipeline`.
    pub fn probabilistic(&mut self, id: &str, pipeline: &str) -> Option<Arc<ProbabilisticStats>> {
        self.register(
            id,
            pipeline,
            || Sampler::Probabilistic(Arc::new(ProbabilisticStats::default())),
            |s| match s {
                Sampler::Probabilistic(s) => Some(s.clone()),
                Sampler::Tail(_) => None,
            },
        )
    }

    /// The tail sampler `id`'s statistics, if there is one.
    pub fn tail(&self, id: &str) -> Option<Arc<SamplingStats>> {
        match self.processors.get(id).map(|r| &r.sampler) {
            Some(Sampler::Tail(s)) => Some(s.clone()),
            _ => None,
        }
    }

    /// The tail samplers whose decisions are persisted into store `store`, by id.
    pub fn tail_samplers_feeding(&self, store: &str) -> Vec<Arc<SamplingStats>> {
        self.processors
            .values()
            .filter_map(|r| match &r.sampler {
                Sampler::Tail(s) if lock(&s.stores).iter().any(|x| x == store) => Some(s.clone()),
                _ => None,
            })
            .collect()
    }

    /// `/api/v1/sampling`: the tail samplers aggregated (counters summed, policies concatenated in
    /// id order, the `recent_limit` most recent decisions of all of them) and every processor.
    pub fn snapshot(&self, recent_limit: usize) -> SamplingStatsResponse {
        let mut out = SamplingStatsResponse::default();
        for (id, r) in &self.processors {
            let p = match &r.sampler {
                Sampler::Tail(s) => {
                    let p = s.processor(id, &r.pipelines);
                    add_tail_sampler(&mut out, &p);
                    out.recent.extend(s.recent(recent_limit));
                    p
                }
                Sampler::Probabilistic(s) => s.processor(id, &r.pipelines),
            };
            out.processors.push(p);
        }
        // Each sampler's ring is most recent first; a stable sort keeps that order among equal times.
        out.recent
            .sort_by_key(|d| std::cmp::Reverse(d.decided_at_ms));
        out.recent.truncate(recent_limit);
        out
    }
}

/// Decisions one trace store has yet to persist, oldest first, bounded.
#[derive(Debug, Default)]
pub struct DecisionQueue {
    queue: Mutex<VecDeque<SamplingDecision>>,
    /// Decisions dropped because the queue was full.
    pub overflow: AtomicU64,
}

impl DecisionQueue {
    pub fn push(&self, decision: SamplingDecision) {
        let mut q = lock(&self.queue);
        if q.len() >= UNPERSISTED_CAPACITY {
            q.pop_front();
            ComponentCounter::inc(&self.overflow, 1);
        }
        q.push_back(decision);
    }

    /// Takes everything queued (oldest first).
    pub fn drain(&self) -> Vec<SamplingDecision> {
        lock(&self.queue).drain(..).collect()
    }
}

/// Relaxed increments: these are statistics, not synchronisation.
pub(crate) struct ComponentCounter;

impl ComponentCounter {
    pub(crate) fn inc(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }
}

/// A poisoned lock only means another thread panicked mid-update of counters; the data is still
/// usable, so recover instead of propagating the panic.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use collector_api::v1::{Decision, DecisionTrigger};

    fn decision(n: u8, d: Decision, policy: Option<&str>) -> SamplingDecision {
        SamplingDecision {
            trace_id: format!("{n:032x}"),
            decision: d,
            policy: policy.map(str::to_string),
            trigger: DecisionTrigger::DecisionWait,
            span_count: 1,
            decided_at_ms: n as i64,
            error: false,
            duration_us: 0,
            processor: String::new(),
        }
    }

    #[test]
    fn counts_votes_credits_and_keeps_a_bounded_recent_ring() {
        let s = SamplingStats::new(2);
        s.register_policies(&[
            ("errors".into(), "status_code".into()),
            ("p".into(), "probabilistic".into()),
        ]);
        let votes = [
            PolicyVote {
                policy: 0,
                sampled: true,
            },
            PolicyVote {
                policy: 1,
                sampled: true,
            },
        ];
        s.record(
            decision(1, Decision::Sampled, Some("errors")),
            &votes,
            Some(0),
        );
        let votes = [
            PolicyVote {
                policy: 0,
                sampled: false,
            },
            PolicyVote {
                policy: 1,
                sampled: false,
            },
        ];
        s.record(decision(2, Decision::NotSampled, None), &votes, None);
        s.record(decision(3, Decision::NotSampled, None), &votes, None);

        let snap = s.snapshot(10);
        assert_eq!(snap.traces_sampled, 1);
        assert_eq!(snap.traces_not_sampled, 2);
        let errors = &snap.policies[0];
        assert_eq!(
            (
                errors.kept,
                errors.dropped,
                errors.sampled,
                errors.not_sampled
            ),
            (1, 0, 1, 2)
        );
        let p = &snap.policies[1];
        assert_eq!((p.kept, p.sampled, p.not_sampled), (0, 1, 2));
        assert_eq!(snap.recent.len(), 2, "ring is bounded");
        assert_eq!(snap.recent[0].decided_at_ms, 3, "most recent first");
        assert_eq!(
            (
                s.spans_sampled.load(Ordering::Relaxed),
                s.spans_not_sampled.load(Ordering::Relaxed)
            ),
            (1, 2),
            "one span per decided trace"
        );
    }

    #[test]
    fn the_registry_sums_tail_samplers_and_lists_every_processor() {
        let mut reg = SamplingRegistry::default();
        let a = reg.tail_sampling("tail_sampling/a", "traces/a").unwrap();
        let b = reg.tail_sampling("tail_sampling/b", "traces/b").unwrap();
        let again = reg.tail_sampling("tail_sampling/a", "traces/c").unwrap();
        assert!(Arc::ptr_eq(&a, &again), "one set of statistics per id");
        let head = reg
            .probabilistic("probabilistic_sampler/head", "traces/head")
            .unwrap();
        assert!(
            reg.probabilistic("tail_sampling/a", "traces/x").is_none(),
            "an id keeps its kind"
        );
        a.register_policies(&[("errors".into(), "status_code".into())]);
        b.register_policies(&[("all".into(), "always_sample".into())]);
        a.record(decision(1, Decision::Sampled, Some("errors")), &[], Some(0));
        b.record(decision(3, Decision::Sampled, Some("all")), &[], Some(0));
        b.record(decision(2, Decision::NotSampled, None), &[], None);
        a.record_late_spans(4, false);
        ComponentCounter::inc(&head.spans_sampled, 5);
        ComponentCounter::inc(&head.spans_not_sampled, 6);

        let snap = reg.snapshot(2);
        assert_eq!((snap.traces_sampled, snap.traces_not_sampled), (2, 1));
        assert_eq!(snap.late_spans_dropped, 4);
        let names: Vec<&str> = snap.policies.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["errors", "all"], "concatenated in id order");
        let recent: Vec<i64> = snap.recent.iter().map(|d| d.decided_at_ms).collect();
        assert_eq!(recent, [3, 2], "merged most recent first, bounded");

        let ids: Vec<&str> = snap.processors.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "probabilistic_sampler/head",
                "tail_sampling/a",
                "tail_sampling/b"
            ]
        );
        let p_head = &snap.processors[0];
        assert_eq!(p_head.processor_type, SamplerType::ProbabilisticSampler);
        assert_eq!((p_head.spans_sampled, p_head.spans_not_sampled), (5, 6));
        let p_a = &snap.processors[1];
        assert_eq!(p_a.pipelines, ["traces/a", "traces/c"]);
        assert_eq!(
            (p_a.traces_sampled, p_a.spans_sampled, p_a.spans_not_sampled),
            (1, 1, 4)
        );
        assert_eq!(p_a.policies[0].kept, 1);
        assert_eq!(reg.tail("tail_sampling/b").unwrap().recent(5).len(), 2);
        assert_eq!(a.id(), "tail_sampling/a", "named by the registry");
        a.add_store("tracelab/x");
        a.add_store("tracelab");
        a.add_store("tracelab");
        let feeding: Vec<String> = reg
            .tail_samplers_feeding("tracelab")
            .iter()
            .map(|s| s.id().to_string())
            .collect();
        assert_eq!(feeding, ["tail_sampling/a"]);
        assert_eq!(
            reg.snapshot(0).processors[1].stores,
            ["tracelab", "tracelab/x"],
            "each store once, in id order"
        );
        assert!(reg.tail("probabilistic_sampler/head").is_none());
    }

    #[test]
    fn a_decision_queue_is_bounded_and_drains_oldest_first() {
        let q = DecisionQueue::default();
        for n in 0..3 {
            q.push(decision(n, Decision::Sampled, None));
        }
        let d = q.drain();
        assert_eq!(
            d.iter().map(|d| d.decided_at_ms).collect::<Vec<_>>(),
            [0, 1, 2]
        );
        assert!(q.drain().is_empty());
        for _ in 0..UNPERSISTED_CAPACITY + 2 {
            q.push(decision(9, Decision::Sampled, None));
        }
        assert_eq!(q.overflow.load(Ordering::Relaxed), 2);
        assert_eq!(q.drain().len(), UNPERSISTED_CAPACITY);
    }
}
