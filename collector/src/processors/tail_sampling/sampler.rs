//! The pure tail-sampling core: buffers spans per trace, decides each trace `decision_wait` after
//! its first span (or earlier when `num_traces` or the per-trace span cap is reached), remembers
//! decisions so late spans follow them, reports every decision to [`SamplingStats`] and queues it
//! for the stores downstream ([`DecisionQueue`]). No I/O, no timers: time comes from an injected
//! [`Clock`], so tests drive it without sleeping.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use collector_api::v1::{Decision, DecisionTrigger, SamplingDecision};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};

use super::config::{PolicyType, TailSamplingConfig};
use super::policy::{EvalContext, Evaluator, TraceView, Vote, combine, second_of};
use crate::component::FieldError;
use crate::sampling::{ComponentCounter, DecisionQueue, PolicyVote, SamplingStats};

/// With `record_policy_attribute`: the attribute naming the policy that kept a trace (contrib's
/// name), set on every scope of the kept trace (as contrib) and on its root span (tracelab: the
/// store keeps span attributes, not scope attributes, so the viewer reads it there).
pub const POLICY_ATTRIBUTE: &str = "tailsampling.policy";
/// Likewise for the `composite` sub-policy that sampled the trace (contrib's name).
pub const COMPOSITE_POLICY_ATTRIBUTE: &str = "tailsampling.composite_policy";

pub type TraceId = [u8; 16];

/// Time source: monotonic time for waits, wall time for recorded decisions.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Instant;
    fn unix_ms(&self) -> i64;
}

/// The real clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
    fn unix_ms(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64)
    }
}

/// A clock tests advance by hand.
#[derive(Debug)]
pub struct ManualClock {
    origin: Instant,
    offset: Mutex<Duration>,
    unix_origin_ms: i64,
}

impl Default for ManualClock {
    fn default() -> Self {
        Self {
            origin: Instant::now(),
            offset: Mutex::new(Duration::ZERO),
            unix_origin_ms: 1_700_000_000_000,
        }
    }
}

impl ManualClock {
    pub fn advance(&self, d: Duration) {
        *self.offset.lock().unwrap_or_else(|e| e.into_inner()) += d;
    }
    fn offset(&self) -> Duration {
        *self.offset.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.origin + self.offset()
    }
    fn unix_ms(&self) -> i64 {
        self.unix_origin_ms + self.offset().as_millis() as i64
    }
}

impl Clock for Arc<ManualClock> {
    fn now(&self) -> Instant {
        self.as_ref().now()
    }
    fn unix_ms(&self) -> i64 {
        self.as_ref().unix_ms()
    }
}

#[derive(Debug)]
struct Pending {
    fragments: Vec<ResourceSpans>,
    span_count: u64,
    seq: u64,
}

/// A bounded set of decided trace ids; the oldest are forgotten first.
#[derive(Debug)]
struct IdCache {
    set: HashSet<TraceId>,
    order: VecDeque<TraceId>,
    cap: usize,
}

impl IdCache {
    fn new(cap: usize) -> Self {
        Self {
            set: HashSet::new(),
            order: VecDeque::new(),
            cap,
        }
    }
    fn insert(&mut self, id: TraceId) {
        if self.cap == 0 || !self.set.insert(id) {
            return;
        }
        self.order.push_back(id);
        while self.order.len() > self.cap {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
    }
    fn contains(&self, id: &TraceId) -> bool {
        self.set.contains(id)
    }
}

struct NamedPolicy {
    name: String,
    evaluator: Evaluator,
}

/// The tail-sampling state machine. Every method returns the spans to forward downstream now.
pub struct TailSampler {
    decision_wait: Duration,
    num_traces: usize,
    max_spans_per_trace: u64,
    record_policy_attribute: bool,
    policies: Vec<NamedPolicy>,
    pending: HashMap<TraceId, Pending>,
    /// Arrival order of pending traces; entries whose seq no longer matches were decided early.
    arrivals: VecDeque<(TraceId, u64, Instant)>,
    next_seq: u64,
    sampled: IdCache,
    not_sampled: IdCache,
    stats: Arc<SamplingStats>,
    /// The decision queues of the stores this sampler feeds.
    persist: Vec<Arc<DecisionQueue>>,
    /// Pending traces this instance has added to `stats.pending_traces` (instances may share stats).
    published_pending: u64,
    clock: Arc<dyn Clock>,
    origin: Instant,
}

impl std::fmt::Debug for TailSampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TailSampler")
            .field("pending", &self.pending.len())
            .finish_non_exhaustive()
    }
}

impl TailSampler {
    /// A sampler reporting to `stats` and queueing every decision into each of `persist`.
    pub fn new(
        cfg: &TailSamplingConfig,
        stats: Arc<SamplingStats>,
        persist: Vec<Arc<DecisionQueue>>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, FieldError> {
        cfg.validate()?;
        let mut policies = Vec::with_capacity(cfg.policies.len());
        for (i, p) in cfg.policies.iter().enumerate() {
            let evaluator = Evaluator::build(p)
                .map_err(|e| FieldError::new(format!("policies[{i}].{}", e.path), e.message))?;
            policies.push(NamedPolicy {
                name: p.name.clone(),
                evaluator,
            });
        }
        stats.register_policies(
            &cfg.policies
                .iter()
                .map(|p| (p.name.clone(), p.policy_type.as_str().to_string()))
                .collect::<Vec<_>>(),
        );
        // What the sampling dashboard calls slow by default: the bar this sampler keeps traces at.
        stats.set_latency_threshold(cfg.policies.iter().find_map(|p| {
            let l = p
                .latency
                .as_ref()
                .filter(|_| p.policy_type == PolicyType::Latency)?;
            Some((p.name.clone(), l.threshold_ms.max(0) as u64))
        }));
        let origin = clock.now();
        Ok(Self {
            decision_wait: cfg.decision_wait,
            num_traces: cfg.num_traces.min(usize::MAX as u64) as usize,
            max_spans_per_trace: cfg.max_spans_per_trace,
            record_policy_attribute: cfg.record_policy_attribute,
            policies,
            pending: HashMap::with_capacity(
                (cfg.expected_new_traces_per_sec as usize).min(1 << 20),
            ),
            arrivals: VecDeque::new(),
            next_seq: 0,
            sampled: IdCache::new(cfg.decision_cache.sampled_cache_size),
            not_sampled: IdCache::new(cfg.decision_cache.non_sampled_cache_size),
            stats,
            persist,
            published_pending: 0,
            clock,
            origin,
        })
    }

    /// Undecided traces held.
    pub fn pending_traces(&self) -> usize {
        self.pending.len()
    }

    /// Buffers a batch. Returns spans to forward now: late spans of sampled traces, and traces
    /// decided early (oldest evicted at `num_traces`, or a trace reaching the span cap).
    pub fn ingest(&mut self, batch: Vec<ResourceSpans>) -> Vec<ResourceSpans> {
        let mut out = Vec::new();
        let now = self.clock.now();
        for rs in batch {
            for (id, frag, n) in split_by_trace(rs) {
                if let Some(p) = self.pending.get_mut(&id) {
                    p.fragments.push(frag);
                    p.span_count += n;
                } else if self.sampled.contains(&id) {
                    self.stats.record_late_spans(n, true);
                    out.push(frag);
                    continue;
                } else if self.not_sampled.contains(&id) {
                    self.stats.record_late_spans(n, false);
                    continue;
                } else {
                    if self.pending.len() >= self.num_traces {
                        self.evict_oldest(&mut out);
                    }
                    let seq = self.next_seq;
                    self.next_seq += 1;
                    self.pending.insert(
                        id,
                        Pending {
                            fragments: vec![frag],
                            span_count: n,
                            seq,
                        },
                    );
                    self.arrivals.push_back((id, seq, now));
                }
                if self
                    .pending
                    .get(&id)
                    .is_some_and(|p| p.span_count >= self.max_spans_per_trace)
                {
                    ComponentCounter::inc(&self.stats.traces_span_capped, 1);
                    self.decide(id, DecisionTrigger::SpanCap, &mut out);
                }
            }
        }
        self.publish_pending();
        out
    }

    /// Decides every trace whose `decision_wait` has elapsed.
    pub fn tick(&mut self) -> Vec<ResourceSpans> {
        let now = self.clock.now();
        let mut out = Vec::new();
        while let Some(&(id, seq, arrived)) = self.arrivals.front() {
            if !self.is_current(&id, seq) {
                self.arrivals.pop_front();
                continue;
            }
            if now.saturating_duration_since(arrived) < self.decision_wait {
                break;
            }
            self.arrivals.pop_front();
            self.decide(id, DecisionTrigger::DecisionWait, &mut out);
        }
        self.publish_pending();
        out
    }

    /// Decides everything pending (shutdown).
    pub fn flush(&mut self) -> Vec<ResourceSpans> {
        let mut out = Vec::new();
        while let Some((id, seq, _)) = self.arrivals.pop_front() {
            if self.is_current(&id, seq) {
                self.decide(id, DecisionTrigger::Shutdown, &mut out);
            }
        }
        self.publish_pending();
        out
    }

    fn is_current(&self, id: &TraceId, seq: u64) -> bool {
        self.pending.get(id).is_some_and(|p| p.seq == seq)
    }

    /// Adds this instance's change in pending traces to the (possibly shared) gauge.
    fn publish_pending(&mut self) {
        use std::sync::atomic::Ordering::Relaxed;
        let now = self.pending.len() as u64;
        if now > self.published_pending {
            self.stats
                .pending_traces
                .fetch_add(now - self.published_pending, Relaxed);
        } else if now < self.published_pending {
            self.stats
                .pending_traces
                .fetch_sub(self.published_pending - now, Relaxed);
        }
        self.published_pending = now;
    }

    fn evict_oldest(&mut self, out: &mut Vec<ResourceSpans>) {
        while let Some((id, seq, _)) = self.arrivals.pop_front() {
            if self.is_current(&id, seq) {
                ComponentCounter::inc(&self.stats.traces_evicted_early, 1);
                self.decide(id, DecisionTrigger::EvictedEarly, out);
                return;
            }
        }
    }

    fn decide(&mut self, id: TraceId, trigger: DecisionTrigger, out: &mut Vec<ResourceSpans>) {
        let Some(mut p) = self.pending.remove(&id) else {
            return;
        };
        let now = self.clock.now();
        let cx = EvalContext {
            second: second_of(self.origin, now),
            elapsed: now.saturating_duration_since(self.origin),
        };
        let view = TraceView {
            trace_id: &id,
            fragments: &p.fragments,
            span_count: p.span_count,
        };
        // Recorded with the decision, so the dashboard can tell which error and slow traces it kept.
        let (error, duration_us) = (view.has_error(), view.duration_us());
        let mut votes = Vec::with_capacity(self.policies.len());
        let mut sub_names = Vec::with_capacity(self.policies.len());
        for pol in &mut self.policies {
            let (v, sub) = pol.evaluator.evaluate(&view, cx);
            votes.push(v);
            sub_names.push(sub);
        }
        let (keep, decider) = combine(&votes);
        let policy_name = decider.map(|i| match &sub_names[i] {
            Some(sub) => format!("{}/{sub}", self.policies[i].name),
            None => self.policies[i].name.clone(),
        });
        let decision = SamplingDecision {
            trace_id: collector_api::ids::hex_id(&id),
            decision: if keep {
                Decision::Sampled
            } else {
                Decision::NotSampled
            },
            policy: policy_name.clone(),
            trigger,
            span_count: p.span_count,
            decided_at_ms: self.clock.unix_ms(),
            error,
            duration_us,
            processor: self.stats.id().to_string(),
        };
        let policy_votes: Vec<PolicyVote> = votes
            .iter()
            .enumerate()
            .map(|(i, v)| PolicyVote {
                policy: i,
                sampled: v.is_sampled() && *v != Vote::Dropped,
            })
            .collect();
        for q in &self.persist {
            q.push(decision.clone());
        }
        self.stats.record(decision, &policy_votes, decider);
        if keep {
            self.sampled.insert(id);
            if self.record_policy_attribute
                && let Some(i) = decider
            {
                let mut attrs = vec![(POLICY_ATTRIBUTE, self.policies[i].name.as_str())];
                if let Some(sub) = &sub_names[i] {
                    attrs.push((COMPOSITE_POLICY_ATTRIBUTE, sub.as_str()));
                }
                tag_kept_trace(&mut p.fragments, &attrs);
            }
            out.append(&mut p.fragments);
        } else {
            self.not_sampled.insert(id);
        }
    }
}

/// Puts `attrs` on every scope of the trace (contrib's `SetAttrOnScopeSpans`) and on the spans
/// without a parent (the trace's root, if it has arrived), replacing earlier values.
fn tag_kept_trace(fragments: &mut [ResourceSpans], attrs: &[(&str, &str)]) {
    fn put(list: &mut Vec<KeyValue>, key: &str, value: &str) {
        list.retain(|kv| kv.key != key);
        list.push(KeyValue {
            key: key.to_string(),
            value: Some(AnyValue {
                value: Some(Value::StringValue(value.to_string())),
            }),
            ..Default::default()
        });
    }
    for ss in fragments
        .iter_mut()
        .flat_map(|rs| rs.scope_spans.iter_mut())
    {
        let scope = ss.scope.get_or_insert_with(Default::default);
        for (k, v) in attrs {
            put(&mut scope.attributes, k, v);
        }
        for span in ss.spans.iter_mut() {
            if span.parent_span_id.iter().all(|b| *b == 0) {
                for (k, v) in attrs {
                    put(&mut span.attributes, k, v);
                }
            }
        }
    }
}

fn trace_id_of(bytes: &[u8]) -> TraceId {
    let mut id = [0u8; 16];
    let n = bytes.len().min(16);
    id[16 - n..].copy_from_slice(&bytes[bytes.len() - n..]);
    id
}

/// Splits a ResourceSpans into one per trace (resource and scope copied), with span counts. The
/// common case — all spans of one trace — moves the message without copying.
pub fn split_by_trace(rs: ResourceSpans) -> Vec<(TraceId, ResourceSpans, u64)> {
    let mut first: Option<TraceId> = None;
    let mut single = true;
    let mut count = 0u64;
    for s in rs.scope_spans.iter().flat_map(|ss| ss.spans.iter()) {
        let id = trace_id_of(&s.trace_id);
        count += 1;
        match first {
            None => first = Some(id),
            Some(f) if f != id => single = false,
            _ => {}
        }
    }
    let Some(first) = first else {
        return Vec::new();
    };
    if single {
        return vec![(first, rs, count)];
    }
    let ResourceSpans {
        resource,
        scope_spans,
        schema_url,
    } = rs;
    let mut by_trace: Vec<(TraceId, ResourceSpans, u64)> = Vec::new();
    let mut index: HashMap<TraceId, usize> = HashMap::new();
    for ss in scope_spans {
        let ScopeSpans {
            scope,
            spans,
            schema_url: scope_schema,
        } = ss;
        for span in spans {
            let id = trace_id_of(&span.trace_id);
            let i = *index.entry(id).or_insert_with(|| {
                by_trace.push((
                    id,
                    ResourceSpans {
                        resource: resource.clone(),
                        scope_spans: Vec::new(),
                        schema_url: schema_url.clone(),
                    },
                    0,
                ));
                by_trace.len() - 1
            });
            let entry = &mut by_trace[i];
            entry.2 += 1;
            // Spans of one scope stay together: reuse the last ScopeSpans if it is this scope.
            match entry.1.scope_spans.last_mut() {
                Some(last) if last.scope == scope && last.schema_url == scope_schema => {
                    last.spans.push(span)
                }
                _ => entry.1.scope_spans.push(ScopeSpans {
                    scope: scope.clone(),
                    spans: vec![span],
                    schema_url: scope_schema.clone(),
                }),
            }
        }
    }
    by_trace
}
