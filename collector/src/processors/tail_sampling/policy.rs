//! Policy evaluators: each turns a buffered trace into a vote, with the semantics the OpenTelemetry
//! Collector contrib documents (`Sampled`, `NotSampled`, the inverted variants of `invert_match`, and
//! `Dropped` from a `drop` policy), and [`combine`] which turns the votes into the final decision.

use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use regex::Regex;

use super::config::{PolicyConfig, PolicyType};
use crate::component::FieldError;

/// One policy's verdict on one trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vote {
    Sampled,
    NotSampled,
    /// `invert_match` and the condition did NOT match: counts as sampled.
    InvertSampled,
    /// `invert_match` and the condition matched: the trace is not sampled, overriding other
    /// policies' `Sampled` (contrib's documented precedence).
    InvertNotSampled,
    /// A `drop` policy matched: the trace is dropped whatever the others say.
    Dropped,
}

impl Vote {
    pub fn is_sampled(self) -> bool {
        matches!(self, Self::Sampled | Self::InvertSampled)
    }
}

/// The buffered spans of one trace plus what the evaluators need precomputed.
#[derive(Debug)]
pub struct TraceView<'a> {
    pub trace_id: &'a [u8; 16],
    pub fragments: &'a [ResourceSpans],
    pub span_count: u64,
}

impl TraceView<'_> {
    fn spans(&self) -> impl Iterator<Item = &opentelemetry_proto::tonic::trace::v1::Span> {
        self.fragments
            .iter()
            .flat_map(|rs| rs.scope_spans.iter().flat_map(|ss| ss.spans.iter()))
    }

    /// True when a resource attribute or a span attribute named `key` satisfies `pred`.
    fn any_attr(&self, key: &str, pred: &dyn Fn(&AnyValue) -> bool) -> bool {
        let hit = |attrs: &[KeyValue]| {
            attrs
                .iter()
                .any(|kv| kv.key == key && kv.value.as_ref().is_some_and(pred))
        };
        self.fragments.iter().any(|rs| {
            rs.resource.as_ref().is_some_and(|r| hit(&r.attributes))
                || rs
                    .scope_spans
                    .iter()
                    .any(|ss| ss.spans.iter().any(|s| hit(&s.attributes)))
        })
    }

    /// Latest end minus earliest start, in ms.
    fn duration_ms(&self) -> i64 {
        (self.duration_us() / 1000) as i64
    }

    /// Latest end minus earliest start of the held spans, in µs (what a decision records).
    pub fn duration_us(&self) -> u64 {
        let (mut lo, mut hi) = (u64::MAX, 0u64);
        for s in self.spans() {
            lo = lo.min(s.start_time_unix_nano);
            hi = hi.max(s.end_time_unix_nano);
        }
        if lo == u64::MAX || hi < lo {
            0
        } else {
            (hi - lo) / 1000
        }
    }

    /// Whether a held span has status ERROR (what a decision records).
    pub fn has_error(&self) -> bool {
        self.spans()
            .any(|s| s.status.as_ref().is_some_and(|st| st.code == 2))
    }
}

/// A compiled policy.
#[derive(Debug)]
pub enum Evaluator {
    AlwaysSample,
    StatusCode(Vec<i32>),
    Latency {
        threshold_ms: i64,
        upper_threshold_ms: i64,
    },
    Probabilistic {
        threshold: u64,
        salt: String,
    },
    RateLimiting(TokenBucket),
    StringAttribute {
        key: String,
        matcher: StringMatcher,
        invert: bool,
    },
    NumericAttribute {
        key: String,
        min: f64,
        max: f64,
        invert: bool,
    },
    BooleanAttribute {
        key: String,
        value: bool,
        invert: bool,
    },
    SpanCount {
        min: u64,
        max: u64,
    },
    TraceState {
        key: String,
        values: Vec<String>,
    },
    And(Vec<Evaluator>),
    Drop(Vec<Evaluator>),
    Composite(Composite),
}

#[derive(Debug)]
pub enum StringMatcher {
    Exact(Vec<String>),
    Regex(Vec<Regex>),
}

impl StringMatcher {
    fn matches(&self, s: &str) -> bool {
        match self {
            Self::Exact(v) => v.iter().any(|x| x == s),
            Self::Regex(v) => v.iter().any(|r| r.is_match(s)),
        }
    }
}

/// Spans allowed per wall-clock second (of the injected clock), reset each second: the counters
/// of contrib's `composite` policy.
#[derive(Debug)]
pub struct SpanBudget {
    pub per_second: u64,
    second: Option<u64>,
    used: u64,
}

impl SpanBudget {
    fn new(per_second: u64) -> Self {
        Self {
            per_second,
            second: None,
            used: 0,
        }
    }

    fn roll(&mut self, second: u64) {
        if self.second != Some(second) {
            self.second = Some(second);
            self.used = 0;
        }
    }
}

/// `rate_limiting`: a token bucket as contrib's (golang.org/x/time/rate): `rate` tokens (spans)
/// per second refilled continuously, at most `burst` held, full at start. A trace passes when its
/// span count can be taken whole; a trace bigger than `burst` never passes.
#[derive(Debug)]
pub struct TokenBucket {
    pub rate: f64,
    pub burst: f64,
    tokens: f64,
    last: Option<Duration>,
}

impl TokenBucket {
    pub fn new(rate: f64, burst: f64) -> Self {
        Self {
            rate,
            burst,
            tokens: burst,
            last: None,
        }
    }

    /// Takes `n` tokens at `now` (time since any fixed origin) if they are available.
    pub fn allow(&mut self, now: Duration, n: u64) -> bool {
        if let Some(last) = self.last {
            let dt = now.saturating_sub(last).as_secs_f64();
            self.tokens = (self.tokens + dt * self.rate).min(self.burst);
        }
        if self.last.is_none_or(|l| now > l) {
            self.last = Some(now);
        }
        let n = n as f64;
        if n <= self.tokens {
            self.tokens -= n;
            true
        } else {
            false
        }
    }
}

/// `composite`: every sub-policy in config order, each with its spans-per-second allocation, all
/// within `max_total_spans_per_second`.
#[derive(Debug)]
pub struct Composite {
    total: SpanBudget,
    subs: Vec<(String, Evaluator, SpanBudget)>,
}

/// What evaluation needs from the outside world.
#[derive(Debug, Clone, Copy)]
pub struct EvalContext {
    /// Whole seconds of the injected clock, for composite's per-second budgets.
    pub second: u64,
    /// Time of the injected clock since the sampler's origin, for token buckets.
    pub elapsed: Duration,
}

impl Evaluator {
    /// Compiles a validated policy config.
    pub fn build(p: &PolicyConfig) -> Result<Self, FieldError> {
        let missing = || {
            FieldError::new(
                p.policy_type.as_str(),
                "settings missing (validate the config first)",
            )
        };
        Ok(match p.policy_type {
            PolicyType::AlwaysSample => Self::AlwaysSample,
            PolicyType::StatusCode => {
                let c = p.status_code.as_ref().ok_or_else(missing)?;
                Self::StatusCode(c.status_codes.iter().map(|s| s.otlp_code()).collect())
            }
            PolicyType::Latency => {
                let c = p.latency.as_ref().ok_or_else(missing)?;
                Self::Latency {
                    threshold_ms: c.threshold_ms,
                    upper_threshold_ms: c.upper_threshold_ms,
                }
            }
            PolicyType::Probabilistic => {
                let c = p.probabilistic.as_ref().ok_or_else(missing)?;
                let threshold = probabilistic_threshold(c.sampling_percentage / 100.0);
                let salt = if c.hash_salt.is_empty() {
                    DEFAULT_HASH_SALT.to_string()
                } else {
                    c.hash_salt.clone()
                };
                Self::Probabilistic { threshold, salt }
            }
            PolicyType::RateLimiting => {
                let c = p.rate_limiting.as_ref().ok_or_else(missing)?;
                let rate = c.spans_per_second.max(0);
                let burst = if c.burst_capacity > 0 {
                    c.burst_capacity
                } else {
                    rate.saturating_mul(2)
                };
                Self::RateLimiting(TokenBucket::new(rate as f64, burst as f64))
            }
            PolicyType::StringAttribute => {
                let c = p.string_attribute.as_ref().ok_or_else(missing)?;
                let matcher = if c.enabled_regex_matching {
                    let mut v = Vec::with_capacity(c.values.len());
                    for (i, s) in c.values.iter().enumerate() {
                        v.push(Regex::new(s).map_err(|e| {
                            FieldError::new(
                                format!("string_attribute.values[{i}]"),
                                format!("invalid regex: {e}"),
                            )
                        })?);
                    }
                    StringMatcher::Regex(v)
                } else {
                    StringMatcher::Exact(c.values.clone())
                };
                Self::StringAttribute {
                    key: c.key.clone(),
                    matcher,
                    invert: c.invert_match,
                }
            }
            PolicyType::NumericAttribute => {
                let c = p.numeric_attribute.as_ref().ok_or_else(missing)?;
                Self::NumericAttribute {
                    key: c.key.clone(),
                    min: c.min_value.unwrap_or(f64::NEG_INFINITY),
                    max: c.max_value.unwrap_or(f64::INFINITY),
                    invert: c.invert_match,
                }
            }
            PolicyType::BooleanAttribute => {
                let c = p.boolean_attribute.as_ref().ok_or_else(missing)?;
                Self::BooleanAttribute {
                    key: c.key.clone(),
                    value: c.value,
                    invert: c.invert_match,
                }
            }
            PolicyType::SpanCount => {
                let c = p.span_count.as_ref().ok_or_else(missing)?;
                let max = if c.max_spans <= 0 {
                    u64::MAX
                } else {
                    c.max_spans as u64
                };
                Self::SpanCount {
                    min: c.min_spans.max(0) as u64,
                    max,
                }
            }
            PolicyType::TraceState => {
                let c = p.trace_state.as_ref().ok_or_else(missing)?;
                Self::TraceState {
                    key: c.key.clone(),
                    values: c.values.clone(),
                }
            }
            PolicyType::And => {
                let c = p.and.as_ref().ok_or_else(missing)?;
                Self::And(
                    c.and_sub_policy
                        .iter()
                        .map(Self::build)
                        .collect::<Result<_, _>>()?,
                )
            }
            PolicyType::Drop => {
                let c = p.drop.as_ref().ok_or_else(missing)?;
                Self::Drop(
                    c.drop_sub_policy
                        .iter()
                        .map(Self::build)
                        .collect::<Result<_, _>>()?,
                )
            }
            PolicyType::Composite => {
                let c = p.composite.as_ref().ok_or_else(missing)?;
                let total = c.max_total_spans_per_second.max(0);
                // contrib's rate allocation: `percent` > 0 gets that share of the total, `percent: 0`
                // an even share (total / number of sub-policies), a sub-policy without an entry 0.
                let even = total as f64 / c.composite_sub_policy.len().max(1) as f64;
                let mut subs = Vec::with_capacity(c.composite_sub_policy.len());
                for s in &c.composite_sub_policy {
                    let share = match c.rate_allocation.iter().find(|a| a.policy == s.name) {
                        Some(a) if a.percent > 0 => a.percent as f64 / 100.0 * total as f64,
                        Some(_) => even,
                        None => 0.0,
                    };
                    subs.push((
                        s.name.clone(),
                        Self::build(s)?,
                        SpanBudget::new(share as u64),
                    ));
                }
                Self::Composite(Composite {
                    total: SpanBudget::new(total as u64),
                    subs,
                })
            }
        })
    }

    /// Evaluates the trace. Returns the vote and, for `composite`, the sub-policy that sampled.
    pub fn evaluate(&mut self, t: &TraceView<'_>, cx: EvalContext) -> (Vote, Option<String>) {
        let bool_vote = |b: bool| if b { Vote::Sampled } else { Vote::NotSampled };
        let inverted = |matched: bool, invert: bool| match (matched, invert) {
            (true, false) => Vote::Sampled,
            (false, false) => Vote::NotSampled,
            (true, true) => Vote::InvertNotSampled,
            (false, true) => Vote::InvertSampled,
        };
        let vote = match self {
            Self::AlwaysSample => Vote::Sampled,
            Self::StatusCode(codes) => bool_vote(
                t.spans()
                    .any(|s| codes.contains(&s.status.as_ref().map_or(0, |st| st.code))),
            ),
            Self::Latency {
                threshold_ms,
                upper_threshold_ms,
            } => {
                let d = t.duration_ms();
                bool_vote(if *upper_threshold_ms == 0 {
                    d >= *threshold_ms
                } else {
                    *threshold_ms < d && d <= *upper_threshold_ms
                })
            }
            Self::Probabilistic { threshold, salt } => {
                bool_vote(hash_trace_id(salt, t.trace_id) <= *threshold)
            }
            Self::RateLimiting(bucket) => bool_vote(bucket.allow(cx.elapsed, t.span_count)),
            Self::StringAttribute {
                key,
                matcher,
                invert,
            } => {
                let m = t.any_attr(key, &|v| match &v.value {
                    Some(Value::StringValue(s)) => matcher.matches(s),
                    _ => false,
                });
                inverted(m, *invert)
            }
            Self::NumericAttribute {
                key,
                min,
                max,
                invert,
            } => {
                let m = t.any_attr(key, &|v| {
                    let n = match &v.value {
                        Some(Value::IntValue(i)) => *i as f64,
                        Some(Value::DoubleValue(d)) => *d,
                        _ => return false,
                    };
                    *min <= n && n <= *max
                });
                inverted(m, *invert)
            }
            Self::BooleanAttribute { key, value, invert } => {
                let m = t.any_attr(
                    key,
                    &|v| matches!(&v.value, Some(Value::BoolValue(b)) if b == value),
                );
                inverted(m, *invert)
            }
            Self::SpanCount { min, max } => bool_vote(*min <= t.span_count && t.span_count <= *max),
            Self::TraceState { key, values } => bool_vote(t.spans().any(|s| {
                s.trace_state.split(',').any(|kv| {
                    kv.trim()
                        .split_once('=')
                        .is_some_and(|(k, v)| k == key && values.iter().any(|x| x == v))
                })
            })),
            Self::And(subs) => {
                let all = subs.iter_mut().all(|e| e.evaluate(t, cx).0.is_sampled());
                bool_vote(all)
            }
            Self::Drop(subs) => {
                let all = subs.iter_mut().all(|e| e.evaluate(t, cx).0.is_sampled());
                if all { Vote::Dropped } else { Vote::NotSampled }
            }
            Self::Composite(c) => {
                c.total.roll(cx.second);
                for (name, eval, budget) in c.subs.iter_mut() {
                    budget.roll(cx.second);
                    if eval.evaluate(t, cx).0.is_sampled() {
                        // The first sub-policy (config order) that wants the trace decides: within its
                        // allocation and the total → sampled; otherwise not (later ones are not asked).
                        let fits = budget.used + t.span_count <= budget.per_second
                            && c.total.used + t.span_count <= c.total.per_second;
                        if fits {
                            budget.used += t.span_count;
                            c.total.used += t.span_count;
                            return (Vote::Sampled, Some(name.clone()));
                        }
                        return (Vote::NotSampled, None);
                    }
                }
                Vote::NotSampled
            }
        };
        (vote, None)
    }
}

/// Salt used when `hash_salt` is empty (contrib's default).
pub const DEFAULT_HASH_SALT: &str = "default-hash-seed";

/// 64-bit FNV-1a over the salt's bytes, then the 16 trace-id bytes: contrib's `hashTraceID`, so a
/// tracelab collector and a contrib collector with the same salt and percentage keep the same traces.
pub fn hash_trace_id(salt: &str, trace_id: &[u8; 16]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in salt.as_bytes().iter().chain(trace_id.iter()) {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// contrib's `calculateThreshold(ratio)`: `MaxUint64 × ratio` in a `big.Float` of 64-bit precision
/// (the product rounded to 64 significant bits, to nearest even), then truncated to a `uint64`
/// (saturating). Exact in integers here: `ratio = m × 2^e` with `m` < 2^53.
pub fn probabilistic_threshold(ratio: f64) -> u64 {
    if ratio.is_nan() || ratio <= 0.0 {
        return 0;
    }
    if ratio >= 1.0 {
        return u64::MAX;
    }
    let bits = ratio.to_bits();
    let exp = ((bits >> 52) & 0x7ff) as i64;
    let frac = bits & ((1u64 << 52) - 1);
    // value = m × 2^e
    let (m, e) = if exp == 0 {
        (frac, -1074i64)
    } else {
        (frac | (1u64 << 52), exp - 1075)
    };
    let mut p = (u64::MAX as u128) * (m as u128);
    let mut e = e;
    // Round p to 64 significant bits, nearest even.
    let len = 128 - p.leading_zeros() as i64;
    if len > 64 {
        let drop = (len - 64) as u32;
        let rem = p & ((1u128 << drop) - 1);
        let half = 1u128 << (drop - 1);
        p >>= drop;
        if rem > half || (rem == half && p & 1 == 1) {
            p += 1;
        }
        e += drop as i64;
    }
    // Truncate p × 2^e toward zero (e < 0 here since ratio < 1).
    if e >= 0 {
        return u64::try_from(p << e.min(64)).unwrap_or(u64::MAX);
    }
    let shift = (-e) as u32;
    if shift >= 128 {
        0
    } else {
        u64::try_from(p >> shift).unwrap_or(u64::MAX)
    }
}

/// The final decision over all top-level votes (in config order), and the index of the policy
/// credited with it. Precedence: any `Dropped` → not sampled; else any `InvertNotSampled` → not
/// sampled; else the first `Sampled`/`InvertSampled` → sampled; else not sampled (no policy credited).
pub fn combine(votes: &[Vote]) -> (bool, Option<usize>) {
    if let Some(i) = votes.iter().position(|v| *v == Vote::Dropped) {
        return (false, Some(i));
    }
    if let Some(i) = votes.iter().position(|v| *v == Vote::InvertNotSampled) {
        return (false, Some(i));
    }
    if let Some(i) = votes.iter().position(|v| v.is_sampled()) {
        return (true, Some(i));
    }
    (false, None)
}

/// For `Instant`-based clocks: whole seconds since a fixed origin.
pub fn second_of(origin: Instant, now: Instant) -> u64 {
    now.saturating_duration_since(origin).as_secs()
}
