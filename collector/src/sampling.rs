//! Shared sampling statistics: per-policy counts, eviction/late-span counters and a bounded ring of
//! recent decisions. One instance per collector, written by the tail sampler and read by the query
//! API (`/api/v1/sampling`) and the trace store (which persists decisions for the dashboard).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use collector_api::v1::{PolicyStats, SamplingDecision, SamplingStatsResponse};

/// How many recent decisions `/api/v1/sampling` shows.
pub const DEFAULT_RECENT_CAPACITY: usize = 1000;
/// Decisions waiting to be persisted by the store; beyond this the oldest are dropped (and counted)
/// rather than letting memory grow when no store drains them.
const UNPERSISTED_CAPACITY: usize = 50_000;

/// Counters shared between the tail sampler and readers. Cheap to update from the hot path: the
/// counters are atomics, and the mutex-protected parts are touched once per decided trace.
#[derive(Debug)]
pub struct SamplingStats {
    policies: Mutex<Vec<PolicyStats>>,
    recent: Mutex<VecDeque<SamplingDecision>>,
    unpersisted: Mutex<VecDeque<SamplingDecision>>,
    recent_capacity: usize,
    pub traces_sampled: AtomicU64,
    pub traces_not_sampled: AtomicU64,
    pub traces_evicted_early: AtomicU64,
    pub traces_span_capped: AtomicU64,
    pub late_spans_forwarded: AtomicU64,
    pub late_spans_dropped: AtomicU64,
    pub pending_traces: AtomicU64,
    pub unpersisted_overflow: AtomicU64,
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
        Self {
            policies: Mutex::new(Vec::new()),
            recent: Mutex::new(VecDeque::with_capacity(recent_capacity.min(4096))),
            unpersisted: Mutex::new(VecDeque::new()),
            recent_capacity: recent_capacity.max(1),
            traces_sampled: AtomicU64::new(0),
            traces_not_sampled: AtomicU64::new(0),
            traces_evicted_early: AtomicU64::new(0),
            traces_span_capped: AtomicU64::new(0),
            late_spans_forwarded: AtomicU64::new(0),
            late_spans_dropped: AtomicU64::new(0),
            pending_traces: AtomicU64::new(0),
            unpersisted_overflow: AtomicU64::new(0),
        }
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
    /// policy credited with the decision (see [`SamplingDecision::policy`]).
    pub fn record(&self, decision: SamplingDecision, votes: &[PolicyVote], decider: Option<usize>) {
        use collector_api::v1::Decision;
        let kept = decision.decision == Decision::Sampled;
        if kept {
            ComponentCounter::inc(&self.traces_sampled, 1);
        } else {
            ComponentCounter::inc(&self.traces_not_sampled, 1);
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
        {
            let mut r = lock(&self.recent);
            if r.len() >= self.recent_capacity {
                r.pop_back();
            }
            r.push_front(decision.clone());
        }
        let mut u = lock(&self.unpersisted);
        if u.len() >= UNPERSISTED_CAPACITY {
            u.pop_front();
            ComponentCounter::inc(&self.unpersisted_overflow, 1);
        }
        u.push_back(decision);
    }

    /// Takes the decisions not yet handed to the store (oldest first).
    pub fn drain_unpersisted(&self) -> Vec<SamplingDecision> {
        lock(&self.unpersisted).drain(..).collect()
    }

    /// Counts of the policy named `name`.
    pub fn policy(&self, name: &str) -> Option<PolicyStats> {
        lock(&self.policies)
            .iter()
            .find(|p| p.name == name)
            .cloned()
    }

    /// A point-in-time copy for `/api/v1/sampling` (recent decisions most recent first).
    pub fn snapshot(&self, recent_limit: usize) -> SamplingStatsResponse {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        SamplingStatsResponse {
            policies: lock(&self.policies).clone(),
            traces_sampled: get(&self.traces_sampled),
            traces_not_sampled: get(&self.traces_not_sampled),
            traces_evicted_early: get(&self.traces_evicted_early),
            traces_span_capped: get(&self.traces_span_capped),
            late_spans_forwarded: get(&self.late_spans_forwarded),
            late_spans_dropped: get(&self.late_spans_dropped),
            pending_traces: get(&self.pending_traces),
            recent: lock(&self.recent)
                .iter()
                .take(recent_limit)
                .cloned()
                .collect(),
            processors: Vec::new(),
        }
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
        assert_eq!(s.drain_unpersisted().len(), 3);
        assert!(s.drain_unpersisted().is_empty());
    }
}
