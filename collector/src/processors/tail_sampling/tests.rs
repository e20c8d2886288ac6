//! Tail sampling decides as documented: table-driven policy cases, late spans, early eviction,
//! the span cap, per-policy counts and the processor wrapper — all on an injected clock.

use std::sync::Arc;
use std::time::Duration;

use collector_api::v1::{Decision, DecisionTrigger};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};

use super::config::TailSamplingConfig;
use super::sampler::{ManualClock, POLICY_ATTRIBUTE, TailSampler};
use crate::pipeline::{ConsumeError, Consumer};
use crate::sampling::SamplingStats;

const T0_NS: u64 = 1_700_000_000_000_000_000;

fn kv(key: &str, v: Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    }
}

fn tid(n: u8) -> Vec<u8> {
    let mut v = vec![0u8; 16];
    v[15] = n;
    v[0] = 0xab;
    v
}

/// A span of trace `t`: starts `start_ms` after T0 and lasts `dur_ms`.
fn span(t: u8, id: u8, parent: u8, start_ms: u64, dur_ms: u64) -> Span {
    Span {
        trace_id: tid(t),
        span_id: vec![0, 0, 0, 0, 0, 0, t, id],
        parent_span_id: if parent == 0 {
            vec![]
        } else {
            vec![0, 0, 0, 0, 0, 0, t, parent]
        },
        name: format!("op{id}"),
        start_time_unix_nano: T0_NS + start_ms * 1_000_000,
        end_time_unix_nano: T0_NS + (start_ms + dur_ms) * 1_000_000,
        ..Default::default()
    }
}

fn rs(spans: Vec<Span>) -> ResourceSpans {
    rs_with(
        vec![kv("service.name", Value::StringValue("svc".into()))],
        spans,
    )
}

fn rs_with(resource_attrs: Vec<KeyValue>, spans: Vec<Span>) -> ResourceSpans {
    ResourceSpans {
        resource: Some(Resource {
            attributes: resource_attrs,
            ..Default::default()
        }),
        scope_spans: vec![ScopeSpans {
            spans,
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn cfg(json: serde_json::Value) -> TailSamplingConfig {
    let c: TailSamplingConfig = serde_json::from_value(json).expect("config parses");
    c.validate().expect("config valid");
    c
}

fn sampler(c: &TailSamplingConfig) -> (TailSampler, Arc<ManualClock>, Arc<SamplingStats>) {
    let clock = Arc::new(ManualClock::default());
    let stats = Arc::new(SamplingStats::default());
    let s = TailSampler::new(c, stats.clone(), Vec::new(), Arc::new(clock.clone()))
        .expect("sampler builds");
    (s, clock, stats)
}

fn trace_ids(out: &[ResourceSpans]) -> Vec<u8> {
    let mut v: Vec<u8> = out
        .iter()
        .flat_map(|r| r.scope_spans.iter().flat_map(|s| s.spans.iter()))
        .map(|s| s.trace_id[15])
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

fn span_total(out: &[ResourceSpans]) -> usize {
    out.iter()
        .flat_map(|r| r.scope_spans.iter())
        .map(|s| s.spans.len())
        .sum()
}

/// Feeds one trace, waits out decision_wait, returns whether it was kept and by which policy.
fn decide_one(policies: serde_json::Value, trace: Vec<ResourceSpans>) -> (bool, Option<String>) {
    let c = cfg(serde_json::json!({"decision_wait": "1s", "policies": policies}));
    let (mut s, clock, stats) = sampler(&c);
    assert!(
        s.ingest(trace).is_empty(),
        "nothing is forwarded before the decision"
    );
    assert!(s.tick().is_empty(), "not decided before decision_wait");
    clock.advance(Duration::from_millis(1000));
    let out = s.tick();
    let snap = stats.snapshot(1);
    let d = &snap.recent[0];
    assert_eq!(!out.is_empty(), d.decision == Decision::Sampled);
    (d.decision == Decision::Sampled, d.policy.clone())
}

fn with_status(mut s: Span, code: i32) -> Span {
    s.status = Some(Status {
        code,
        message: String::new(),
    });
    s
}

fn with_attr(mut s: Span, a: KeyValue) -> Span {
    s.attributes.push(a);
    s
}

#[test]
fn each_policy_decides_as_documented() {
    use serde_json::json;
    let str_attr = |v: &str| kv("http.route", Value::StringValue(v.into()));
    let cases: Vec<(&str, serde_json::Value, Vec<ResourceSpans>, bool)> = vec![
        (
            "always_sample",
            json!([{"name": "all", "type": "always_sample"}]),
            vec![rs(vec![span(1, 1, 0, 0, 5)])],
            true,
        ),
        (
            "status_code ERROR matches an error span",
            json!([{"name": "e", "type": "status_code", "status_code": {"status_codes": ["ERROR"]}}]),
            vec![rs(vec![
                span(1, 1, 0, 0, 5),
                with_status(span(1, 2, 1, 1, 2), 2),
            ])],
            true,
        ),
        (
            "status_code ERROR ignores OK/UNSET",
            json!([{"name": "e", "type": "status_code", "status_code": {"status_codes": ["ERROR"]}}]),
            vec![rs(vec![
                with_status(span(1, 1, 0, 0, 5), 1),
                span(1, 2, 1, 1, 2),
            ])],
            false,
        ),
        (
            "status_code UNSET matches a span without status",
            json!([{"name": "u", "type": "status_code", "status_code": {"status_codes": ["UNSET"]}}]),
            vec![rs(vec![span(1, 1, 0, 0, 5)])],
            true,
        ),
        (
            "latency: trace duration is max end - min start across spans",
            json!([{"name": "slow", "type": "latency", "latency": {"threshold_ms": 2000}}]),
            vec![
                rs(vec![span(1, 1, 0, 0, 1500)]),
                rs(vec![span(1, 2, 1, 1000, 1000)]),
            ],
            true,
        ),
        (
            "latency below threshold",
            json!([{"name": "slow", "type": "latency", "latency": {"threshold_ms": 2000}}]),
            vec![rs(vec![span(1, 1, 0, 0, 1999)])],
            false,
        ),
        (
            "latency above upper_threshold_ms",
            json!([{"name": "band", "type": "latency", "latency": {"threshold_ms": 100, "upper_threshold_ms": 500}}]),
            vec![rs(vec![span(1, 1, 0, 0, 600)])],
            false,
        ),
        (
            "latency within (threshold, upper]",
            json!([{"name": "band", "type": "latency", "latency": {"threshold_ms": 100, "upper_threshold_ms": 500}}]),
            vec![rs(vec![span(1, 1, 0, 0, 500)])],
            true,
        ),
        (
            "probabilistic 100%",
            json!([{"name": "p", "type": "probabilistic", "probabilistic": {"sampling_percentage": 100}}]),
            vec![rs(vec![span(1, 1, 0, 0, 5)])],
            true,
        ),
        (
            "probabilistic 0%",
            json!([{"name": "p", "type": "probabilistic", "probabilistic": {"sampling_percentage": 0}}]),
            vec![rs(vec![span(1, 1, 0, 0, 5)])],
            false,
        ),
        (
            "rate_limiting within budget",
            json!([{"name": "r", "type": "rate_limiting", "rate_limiting": {"spans_per_second": 2}}]),
            vec![rs(vec![span(1, 1, 0, 0, 5), span(1, 2, 1, 0, 5)])],
            true,
        ),
        (
            "rate_limiting over budget",
            json!([{"name": "r", "type": "rate_limiting", "rate_limiting": {"spans_per_second": 1, "burst_capacity": 1}}]),
            vec![rs(vec![span(1, 1, 0, 0, 5), span(1, 2, 1, 0, 5)])],
            false,
        ),
        (
            "string_attribute exact on a span",
            json!([{"name": "s", "type": "string_attribute", "string_attribute": {"key": "http.route", "values": ["/orders"]}}]),
            vec![rs(vec![with_attr(
                span(1, 1, 0, 0, 5),
                str_attr("/orders"),
            )])],
            true,
        ),
        (
            "string_attribute exact does not match a prefix",
            json!([{"name": "s", "type": "string_attribute", "string_attribute": {"key": "http.route", "values": ["/orders"]}}]),
            vec![rs(vec![with_attr(
                span(1, 1, 0, 0, 5),
                str_attr("/orders/{id}"),
            )])],
            false,
        ),
        (
            "string_attribute regex",
            json!([{"name": "s", "type": "string_attribute", "string_attribute": {"key": "http.route", "values": ["^/orders.*"], "enabled_regex_matching": true}}]),
            vec![rs(vec![with_attr(
                span(1, 1, 0, 0, 5),
                str_attr("/orders/{id}"),
            )])],
            true,
        ),
        (
            "string_attribute on a resource attribute",
            json!([{"name": "s", "type": "string_attribute", "string_attribute": {"key": "service.name", "values": ["payment-service"]}}]),
            vec![rs_with(
                vec![kv(
                    "service.name",
                    Value::StringValue("payment-service".into()),
                )],
                vec![span(1, 1, 0, 0, 5)],
            )],
            true,
        ),
        (
            "string_attribute invert_match, matched -> not sampled",
            json!([{"name": "s", "type": "string_attribute", "string_attribute": {"key": "http.route", "values": ["/health"], "invert_match": true}}]),
            vec![rs(vec![with_attr(
                span(1, 1, 0, 0, 5),
                str_attr("/health"),
            )])],
            false,
        ),
        (
            "string_attribute invert_match, not matched -> sampled",
            json!([{"name": "s", "type": "string_attribute", "string_attribute": {"key": "http.route", "values": ["/health"], "invert_match": true}}]),
            vec![rs(vec![with_attr(
                span(1, 1, 0, 0, 5),
                str_attr("/orders"),
            )])],
            true,
        ),
        (
            "numeric_attribute within [min, max]",
            json!([{"name": "n", "type": "numeric_attribute", "numeric_attribute": {"key": "http.response.status_code", "min_value": 500, "max_value": 599}}]),
            vec![rs(vec![with_attr(
                span(1, 1, 0, 0, 5),
                kv("http.response.status_code", Value::IntValue(503)),
            )])],
            true,
        ),
        (
            "numeric_attribute outside",
            json!([{"name": "n", "type": "numeric_attribute", "numeric_attribute": {"key": "http.response.status_code", "min_value": 500, "max_value": 599}}]),
            vec![rs(vec![with_attr(
                span(1, 1, 0, 0, 5),
                kv("http.response.status_code", Value::IntValue(201)),
            )])],
            false,
        ),
        (
            "numeric_attribute min only, double value",
            json!([{"name": "n", "type": "numeric_attribute", "numeric_attribute": {"key": "order.total", "min_value": 100}}]),
            vec![rs(vec![with_attr(
                span(1, 1, 0, 0, 5),
                kv("order.total", Value::DoubleValue(149.99)),
            )])],
            true,
        ),
        (
            "boolean_attribute",
            json!([{"name": "b", "type": "boolean_attribute", "boolean_attribute": {"key": "retry", "value": true}}]),
            vec![rs(vec![with_attr(
                span(1, 1, 0, 0, 5),
                kv("retry", Value::BoolValue(true)),
            )])],
            true,
        ),
        (
            "boolean_attribute other value",
            json!([{"name": "b", "type": "boolean_attribute", "boolean_attribute": {"key": "retry", "value": true}}]),
            vec![rs(vec![with_attr(
                span(1, 1, 0, 0, 5),
                kv("retry", Value::BoolValue(false)),
            )])],
            false,
        ),
        (
            "span_count within [min, max]",
            json!([{"name": "c", "type": "span_count", "span_count": {"min_spans": 2, "max_spans": 3}}]),
            vec![rs(vec![span(1, 1, 0, 0, 5), span(1, 2, 1, 0, 5)])],
            true,
        ),
        (
            "span_count below min",
            json!([{"name": "c", "type": "span_count", "span_count": {"min_spans": 3}}]),
            vec![rs(vec![span(1, 1, 0, 0, 5), span(1, 2, 1, 0, 5)])],
            false,
        ),
        (
            "trace_state key=value",
            json!([{"name": "ts", "type": "trace_state", "trace_state": {"key": "vendor", "values": ["keep"]}}]),
            vec![rs(vec![Span {
                trace_state: "other=1,vendor=keep".into(),
                ..span(1, 1, 0, 0, 5)
            }])],
            true,
        ),
        (
            "and: all sub-policies must sample",
            json!([{"name": "a", "type": "and", "and": {"and_sub_policy": [
                {"name": "slow", "type": "latency", "latency": {"threshold_ms": 100}},
                {"name": "err", "type": "status_code", "status_code": {"status_codes": ["ERROR"]}}]}}]),
            vec![rs(vec![span(1, 1, 0, 0, 500)])],
            false,
        ),
        (
            "and: both match",
            json!([{"name": "a", "type": "and", "and": {"and_sub_policy": [
                {"name": "slow", "type": "latency", "latency": {"threshold_ms": 100}},
                {"name": "err", "type": "status_code", "status_code": {"status_codes": ["ERROR"]}}]}}]),
            vec![rs(vec![with_status(span(1, 1, 0, 0, 500), 2)])],
            true,
        ),
        (
            "drop overrides a sampling policy",
            json!([{"name": "all", "type": "always_sample"},
                   {"name": "no-health", "type": "drop", "drop": {"drop_sub_policy": [
                       {"name": "h", "type": "string_attribute", "string_attribute": {"key": "http.route", "values": ["/health"]}}]}}]),
            vec![rs(vec![with_attr(
                span(1, 1, 0, 0, 5),
                str_attr("/health"),
            )])],
            false,
        ),
        (
            "drop does not match -> others decide",
            json!([{"name": "all", "type": "always_sample"},
                   {"name": "no-health", "type": "drop", "drop": {"drop_sub_policy": [
                       {"name": "h", "type": "string_attribute", "string_attribute": {"key": "http.route", "values": ["/health"]}}]}}]),
            vec![rs(vec![with_attr(
                span(1, 1, 0, 0, 5),
                str_attr("/orders"),
            )])],
            true,
        ),
        (
            "inverted not-sampled overrides another policy's sample",
            json!([{"name": "all", "type": "always_sample"},
                   {"name": "not-health", "type": "string_attribute", "string_attribute": {"key": "http.route", "values": ["/health"], "invert_match": true}}]),
            vec![rs(vec![with_attr(
                span(1, 1, 0, 0, 5),
                str_attr("/health"),
            )])],
            false,
        ),
        (
            "composite: sub-policy within its allocation",
            json!([{"name": "comp", "type": "composite", "composite": {
                "max_total_spans_per_second": 100, "policy_order": ["err", "rest"],
                "composite_sub_policy": [
                    {"name": "err", "type": "status_code", "status_code": {"status_codes": ["ERROR"]}},
                    {"name": "rest", "type": "always_sample"}],
                "rate_allocation": [{"policy": "err", "percent": 50}, {"policy": "rest", "percent": 1}]}}]),
            vec![rs(vec![span(1, 1, 0, 0, 5), span(1, 2, 1, 0, 5)])],
            false,
        ),
        (
            "composite: the first matching sub-policy samples within its share",
            json!([{"name": "comp", "type": "composite", "composite": {
                "max_total_spans_per_second": 100, "policy_order": ["err", "rest"],
                "composite_sub_policy": [
                    {"name": "err", "type": "status_code", "status_code": {"status_codes": ["ERROR"]}},
                    {"name": "rest", "type": "always_sample"}],
                "rate_allocation": [{"policy": "err", "percent": 50}]}}]),
            vec![rs(vec![span(1, 1, 0, 0, 5), span(1, 2, 1, 0, 5)])],
            false, // contrib: a sub-policy without a rate_allocation entry gets 0 spans/s
        ),
        (
            "composite: percent 0 is an even share of the total",
            json!([{"name": "comp", "type": "composite", "composite": {
                "max_total_spans_per_second": 4, "policy_order": ["err"],
                "composite_sub_policy": [
                    {"name": "err", "type": "status_code", "status_code": {"status_codes": ["ERROR"]}},
                    {"name": "rest", "type": "always_sample"}],
                "rate_allocation": [{"policy": "err", "percent": 50}, {"policy": "rest", "percent": 0}]}}]),
            vec![rs(vec![span(1, 1, 0, 0, 5), span(1, 2, 1, 0, 5)])],
            true, // `rest` is not in policy_order but still evaluated; 4 / 2 sub-policies = 2 spans/s
        ),
    ];
    for (name, policies, trace, expect) in cases {
        let (kept, _) = decide_one(policies, trace);
        assert_eq!(kept, expect, "case {name:?}");
    }
}

#[test]
fn seed_policies_credit_the_deciding_policy_and_tag_the_root() {
    let c = cfg(serde_json::json!({
        "decision_wait": "10s",
        "record_policy_attribute": true,
        "policies": [
            {"name": "errors-always", "type": "status_code", "status_code": {"status_codes": ["ERROR"]}},
            {"name": "slow-traces", "type": "latency", "latency": {"threshold_ms": 2000}},
            {"name": "probabilistic-sample", "type": "probabilistic", "probabilistic": {"sampling_percentage": 10}}
        ]
    }));
    let (mut s, clock, stats) = sampler(&c);
    s.ingest(vec![rs(vec![
        span(1, 1, 0, 0, 100),
        with_status(span(1, 2, 1, 10, 20), 2),
    ])]);
    s.ingest(vec![rs(vec![span(2, 1, 0, 0, 2500)])]);
    clock.advance(Duration::from_secs(10));
    let out = s.tick();
    assert_eq!(trace_ids(&out), vec![1, 2]);
    let roots: Vec<&Span> = out
        .iter()
        .flat_map(|r| r.scope_spans.iter().flat_map(|s| s.spans.iter()))
        .filter(|s| s.parent_span_id.is_empty())
        .collect();
    let policy_of = |t: u8| {
        roots.iter().find(|s| s.trace_id[15] == t).and_then(|s| {
            s.attributes
                .iter()
                .find(|a| a.key == POLICY_ATTRIBUTE)
                .and_then(|a| match &a.value {
                    Some(AnyValue {
                        value: Some(Value::StringValue(v)),
                    }) => Some(v.clone()),
                    _ => None,
                })
        })
    };
    assert_eq!(policy_of(1).as_deref(), Some("errors-always"));
    assert_eq!(policy_of(2).as_deref(), Some("slow-traces"));
    let errors = stats.policy("errors-always").unwrap();
    assert_eq!((errors.kept, errors.sampled, errors.not_sampled), (1, 1, 1));
    let slow = stats.policy("slow-traces").unwrap();
    assert_eq!((slow.kept, slow.sampled, slow.not_sampled), (1, 1, 1));
}

#[test]
fn probabilistic_keeps_about_the_configured_share_and_is_deterministic() {
    let c = cfg(
        serde_json::json!({"decision_wait": "1s", "num_traces": 100000, "policies": [
        {"name": "p", "type": "probabilistic", "probabilistic": {"sampling_percentage": 10}}]}),
    );
    let (mut s, clock, stats) = sampler(&c);
    let n = 20_000u32;
    for i in 0..n {
        let mut sp = span(0, 1, 0, 0, 1);
        // Random-looking ids, as real ones are: FNV-1a (contrib's hash, no final mixing) leaves the
        // high bits almost unchanged when only the last bytes vary, so sequential ids would all
        // land on the same side of the threshold — in contrib too.
        sp.trace_id = {
            let mut z = u64::from(i).wrapping_add(0x9e37_79b9_7f4a_7c15);
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            let mut v = (z ^ (z >> 31)).to_be_bytes().to_vec();
            v.extend_from_slice(&i.to_be_bytes());
            v.extend_from_slice(&[0x11; 4]);
            v
        };
        s.ingest(vec![rs(vec![sp])]);
    }
    clock.advance(Duration::from_secs(1));
    s.tick();
    let kept = stats.snapshot(0).traces_sampled as f64 / n as f64;
    assert!((0.08..=0.12).contains(&kept), "kept share {kept}");
    let id = [7u8; 16];
    assert_eq!(
        super::policy::hash_trace_id("salt", &id),
        super::policy::hash_trace_id("salt", &id)
    );
    assert_ne!(
        super::policy::hash_trace_id("a", &id),
        super::policy::hash_trace_id("b", &id)
    );
}

#[test]
fn late_spans_follow_the_traces_decision() {
    let c = cfg(serde_json::json!({"decision_wait": "5s", "policies": [
        {"name": "e", "type": "status_code", "status_code": {"status_codes": ["ERROR"]}}]}));
    let (mut s, clock, stats) = sampler(&c);
    s.ingest(vec![rs(vec![
        with_status(span(1, 1, 0, 0, 5), 2),
        span(2, 1, 0, 0, 5),
    ])]);
    clock.advance(Duration::from_secs(5));
    assert_eq!(trace_ids(&s.tick()), vec![1]);

    // Late spans: sampled trace 1 → forwarded at once; not-sampled trace 2 → dropped; nothing pending.
    let out = s.ingest(vec![rs(vec![
        span(1, 5, 1, 1, 1),
        span(1, 6, 1, 1, 1),
        span(2, 5, 1, 1, 1),
    ])]);
    assert_eq!(trace_ids(&out), vec![1]);
    assert_eq!(span_total(&out), 2);
    assert_eq!(
        s.pending_traces(),
        0,
        "late spans are not buffered as a new trace"
    );
    let snap = stats.snapshot(10);
    assert_eq!((snap.late_spans_forwarded, snap.late_spans_dropped), (2, 1));
    assert_eq!(
        snap.traces_sampled + snap.traces_not_sampled,
        2,
        "each trace decided once"
    );
    let spans = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(
        (spans(&stats.spans_sampled), spans(&stats.spans_not_sampled)),
        (1 + 2, 1 + 1),
        "decided spans plus late ones, kept and dropped"
    );
}

#[test]
fn instances_sharing_statistics_sum_pending_traces_and_queue_decisions_for_their_own_stores() {
    let c = cfg(serde_json::json!({"decision_wait": "5s", "policies": [
        {"name": "e", "type": "status_code", "status_code": {"status_codes": ["ERROR"]}}]}));
    let clock = Arc::new(ManualClock::default());
    let stats = Arc::new(SamplingStats::default());
    let (store_a, store_b) = (
        Arc::new(crate::sampling::DecisionQueue::default()),
        Arc::new(crate::sampling::DecisionQueue::default()),
    );
    let mut a = TailSampler::new(
        &c,
        stats.clone(),
        vec![store_a.clone()],
        Arc::new(clock.clone()),
    )
    .unwrap();
    let mut b = TailSampler::new(
        &c,
        stats.clone(),
        vec![store_b.clone()],
        Arc::new(clock.clone()),
    )
    .unwrap();
    a.ingest(vec![rs(vec![with_status(span(1, 1, 0, 0, 5), 2)])]);
    b.ingest(vec![rs(vec![span(2, 1, 0, 0, 5), span(3, 1, 0, 0, 5)])]);
    assert_eq!(stats.snapshot(0).pending_traces, 3, "1 + 2 pending");
    clock.advance(Duration::from_secs(5));
    a.tick();
    assert_eq!(stats.snapshot(0).pending_traces, 2);
    b.tick();
    assert_eq!(stats.snapshot(0).pending_traces, 0);
    let ids = |q: &crate::sampling::DecisionQueue| {
        q.drain()
            .into_iter()
            .map(|d| (d.trace_id[30..].to_string(), d.decision))
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&store_a), [("01".to_string(), Decision::Sampled)]);
    assert_eq!(
        ids(&store_b),
        [
            ("02".to_string(), Decision::NotSampled),
            ("03".to_string(), Decision::NotSampled)
        ]
    );
    assert_eq!(
        stats.snapshot(0).traces_not_sampled,
        2,
        "counted once, shared"
    );
}

#[test]
fn reaching_num_traces_decides_the_oldest_undecided_trace_early() {
    let c = cfg(
        serde_json::json!({"decision_wait": "30s", "num_traces": 2, "policies": [
        {"name": "all", "type": "always_sample"}]}),
    );
    let (mut s, clock, stats) = sampler(&c);
    assert!(s.ingest(vec![rs(vec![span(1, 1, 0, 0, 5)])]).is_empty());
    clock.advance(Duration::from_secs(1));
    assert!(s.ingest(vec![rs(vec![span(2, 1, 0, 0, 5)])]).is_empty());
    clock.advance(Duration::from_secs(1));
    let out = s.ingest(vec![rs(vec![span(3, 1, 0, 0, 5)])]);
    assert_eq!(
        trace_ids(&out),
        vec![1],
        "the oldest trace is decided, not lost"
    );
    assert_eq!(s.pending_traces(), 2);
    let snap = stats.snapshot(10);
    assert_eq!(snap.traces_evicted_early, 1);
    assert_eq!(snap.recent[0].trigger, DecisionTrigger::EvictedEarly);
    assert_eq!(snap.recent[0].trace_id, format!("ab{}01", "0".repeat(28)));

    // The others still wait their full decision_wait, counted from their own first span.
    clock.advance(Duration::from_secs(28));
    assert!(s.tick().is_empty());
    clock.advance(Duration::from_secs(1));
    assert_eq!(trace_ids(&s.tick()), vec![2]);
    clock.advance(Duration::from_secs(1));
    assert_eq!(trace_ids(&s.tick()), vec![3]);
}

#[test]
fn a_huge_trace_is_decided_at_the_span_cap_and_its_later_spans_follow() {
    let c = cfg(
        serde_json::json!({"decision_wait": "30s", "max_spans_per_trace": 100, "policies": [
        {"name": "all", "type": "always_sample"}]}),
    );
    let (mut s, _clock, stats) = sampler(&c);
    let batch: Vec<Span> = (0..100)
        .map(|i| span(9, (i % 250) as u8 + 1, 0, i, 1))
        .collect();
    let out = s.ingest(vec![rs(batch)]);
    assert_eq!(
        span_total(&out),
        100,
        "decided as soon as the cap is reached"
    );
    let out = s.ingest(vec![rs(vec![span(9, 200, 1, 0, 1)])]);
    assert_eq!(
        span_total(&out),
        1,
        "later spans forwarded per the decision"
    );
    let snap = stats.snapshot(10);
    assert_eq!(snap.traces_span_capped, 1);
    assert_eq!(snap.recent[0].trigger, DecisionTrigger::SpanCap);
    assert_eq!(snap.recent[0].span_count, 100);
}

#[test]
fn a_batch_mixing_traces_is_split_per_trace() {
    let c = cfg(serde_json::json!({"decision_wait": "1s", "policies": [
        {"name": "e", "type": "status_code", "status_code": {"status_codes": ["ERROR"]}}]}));
    let (mut s, clock, _stats) = sampler(&c);
    s.ingest(vec![rs(vec![
        span(1, 1, 0, 0, 5),
        with_status(span(2, 1, 0, 0, 5), 2),
        span(1, 2, 1, 0, 5),
    ])]);
    assert_eq!(s.pending_traces(), 2);
    clock.advance(Duration::from_secs(1));
    let out = s.tick();
    assert_eq!(trace_ids(&out), vec![2]);
    assert_eq!(
        out[0].resource.as_ref().unwrap().attributes[0].key,
        "service.name",
        "resource kept"
    );
}

#[test]
fn invalid_configs_name_the_key_path() {
    let bad = |json: serde_json::Value| {
        serde_json::from_value::<TailSamplingConfig>(json).map(|c| c.validate().unwrap_err())
    };
    let e = bad(serde_json::json!({"policies": [
        {"name": "a", "type": "always_sample"},
        {"name": "b", "type": "latency", "latency": {"threshold_ms": -5}}]}))
    .unwrap();
    assert_eq!(e.path, "policies[1].latency.threshold_ms");
    let e = bad(serde_json::json!({"policies": [{"name": "b", "type": "latency"}]})).unwrap();
    assert_eq!(e.path, "policies[0].latency");
    let e = bad(serde_json::json!({"policies": [
        {"name": "b", "type": "status_code", "latency": {"threshold_ms": 5}}]}))
    .unwrap();
    assert_eq!(e.path, "policies[0].latency");
    let e = bad(serde_json::json!({"policies": [{"name": "a", "type": "and", "and": {"and_sub_policy": [
        {"name": "x", "type": "string_attribute", "string_attribute": {"key": "k", "values": ["("], "enabled_regex_matching": true}}]}}]}))
    .unwrap();
    assert_eq!(
        e.path,
        "policies[0].and.and_sub_policy[0].string_attribute.values[0]"
    );
    let e = bad(serde_json::json!({"policies": [{"name": "a", "type": "always_sample"}, {"name": "a", "type": "always_sample"}]})).unwrap();
    assert_eq!(e.path, "policies[1].name");
    let e = bad(serde_json::json!({"policies": []})).unwrap();
    assert_eq!(e.path, "policies");
    assert!(
        serde_json::from_value::<TailSamplingConfig>(serde_json::json!({"decision_wiat": "1s"}))
            .is_err()
    );
    assert!(
        serde_json::from_value::<TailSamplingConfig>(
            serde_json::json!({"policies": [{"name": "x", "type": "bogus"}]})
        )
        .is_err()
    );
    let c: TailSamplingConfig = serde_json::from_value(serde_json::json!({"decision_wait": "10s", "decision_cache": {"sampled_cache_size": 5, "non_sampled_cache_size": 6}, "policies": [{"name": "a", "type": "always_sample"}]})).unwrap();
    assert_eq!(c.decision_wait, Duration::from_secs(10));
    assert_eq!(c.decision_cache.non_sampled_cache_size, 6);
}

/// Collects what the processor forwards.
#[derive(Default)]
struct Sink(std::sync::Mutex<Vec<ResourceSpans>>);

#[async_trait::async_trait]
impl Consumer<ResourceSpans> for Sink {
    async fn consume(&self, batch: Vec<ResourceSpans>) -> Result<(), ConsumeError> {
        self.0.lock().unwrap().extend(batch);
        Ok(())
    }
}

#[tokio::test]
async fn the_processor_ticker_decides_due_traces_and_shutdown_flushes_the_rest() {
    let c = cfg(
        serde_json::json!({"decision_wait": "5s", "policies": [{"name": "all", "type": "always_sample"}]}),
    );
    let sink = Arc::new(Sink::default());
    let clock = Arc::new(ManualClock::default());
    let stats = Arc::new(SamplingStats::default());
    let p = super::TailSamplingProcessor::with_clock(
        c,
        sink.clone(),
        stats.clone(),
        Vec::new(),
        Arc::new(clock.clone()),
    )
    .unwrap();
    p.consume(vec![rs(vec![span(1, 1, 0, 0, 5)])])
        .await
        .unwrap();
    clock.advance(Duration::from_secs(5));
    p.consume(vec![rs(vec![span(2, 1, 0, 0, 5)])])
        .await
        .unwrap();
    // The ticker polls in real time; wait (bounded) for it to decide trace 1.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while trace_ids(&sink.0.lock().unwrap()) != vec![1] {
        assert!(
            std::time::Instant::now() < deadline,
            "ticker never decided the due trace"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(p.pending_traces(), 1);
    p.shutdown().await.unwrap();
    assert_eq!(trace_ids(&sink.0.lock().unwrap()), vec![1, 2]);
    assert_eq!(
        stats.snapshot(1).recent[0].trigger,
        DecisionTrigger::Shutdown
    );
}

/// An independent FNV-1a 64 (the published algorithm, byte at a time) for the test vectors.
fn reference_fnv1a64(data: &[u8]) -> u64 {
    const OFFSET: u64 = 14_695_981_039_346_656_037;
    const PRIME: u64 = 1_099_511_628_211;
    data.iter()
        .fold(OFFSET, |h, b| (h ^ u64::from(*b)).wrapping_mul(PRIME))
}

#[test]
fn fnv1a64_reference_matches_published_vectors() {
    assert_eq!(reference_fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
    assert_eq!(reference_fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
    assert_eq!(reference_fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
}

#[test]
fn probabilistic_hash_is_contribs_fnv1a_over_salt_then_trace_id() {
    use super::policy::hash_trace_id;
    for (salt, id) in [
        ("default-hash-seed", [0u8; 16]),
        ("default-hash-seed", *b"0123456789abcdef"),
        ("", [0xffu8; 16]),
        ("tier-2", [7u8; 16]),
    ] {
        let mut bytes = salt.as_bytes().to_vec();
        bytes.extend_from_slice(&id);
        assert_eq!(
            hash_trace_id(salt, &id),
            reference_fnv1a64(&bytes),
            "salt {salt:?}"
        );
    }
}

#[test]
fn probabilistic_threshold_is_contribs_big_float_product() {
    use super::policy::probabilistic_threshold as t;
    // MaxUint64 × ratio rounded to 64 significant bits, truncated (contrib's calculateThreshold).
    assert_eq!(t(0.0), 0);
    assert_eq!(t(1.0), u64::MAX);
    assert_eq!(t(1.5), u64::MAX);
    assert_eq!(t(0.5), 0x7fff_ffff_ffff_ffff); // (2^64-1)/2 = 2^63 - 0.5, exact, truncated
    assert_eq!(t(0.25), 0x3fff_ffff_ffff_ffff);
    // 0.1 = m × 2^-56 (m = 0x1999999999999a): (2^64-1)·m rounds down to (m·2^11 - 1)·2^53, so
    // the threshold is m·2^8 - 1 — one below float64's floor(0.1 × 2^64) = 0x1999999999999a00.
    assert_eq!(t(0.1), 0x1999_9999_9999_99ff);
    // Never more than one away from the exact product.
    for pct in [0.001, 0.37, 1.0, 12.5, 33.3, 66.6, 99.99] {
        let r = pct / 100.0;
        let exact = r * 18_446_744_073_709_551_616.0; // 2^64 as f64, exact scaling
        let diff = (t(r) as f64 - exact).abs();
        assert!(diff <= 4096.0, "pct {pct}: {} vs {exact}", t(r));
    }
}

#[test]
fn probabilistic_decisions_match_the_reference_algorithm() {
    for (salt, pct, threshold) in [
        ("", 10.0, 0x1999_9999_9999_99ffu64),
        ("tier-2", 50.0, 0x7fff_ffff_ffff_ffff),
    ] {
        let c = cfg(
            serde_json::json!({"decision_wait": "1s", "num_traces": 100000, "policies": [
            {"name": "p", "type": "probabilistic",
             "probabilistic": {"sampling_percentage": pct, "hash_salt": salt}}]}),
        );
        let (mut s, clock, _) = sampler(&c);
        let mut expected = Vec::new();
        let eff_salt = if salt.is_empty() {
            "default-hash-seed"
        } else {
            salt
        };
        for i in 0..400u32 {
            let mut id = [0x5au8; 16];
            id[..4].copy_from_slice(&i.wrapping_mul(2_654_435_761).to_be_bytes());
            id[12..].copy_from_slice(&i.to_be_bytes());
            let mut bytes = eff_salt.as_bytes().to_vec();
            bytes.extend_from_slice(&id);
            if reference_fnv1a64(&bytes) <= threshold {
                expected.push(id.to_vec());
            }
            let mut sp = span(0, 1, 0, 0, 1);
            sp.trace_id = id.to_vec();
            s.ingest(vec![rs(vec![sp])]);
        }
        clock.advance(Duration::from_secs(1));
        let mut kept: Vec<Vec<u8>> = s
            .tick()
            .iter()
            .flat_map(|r| r.scope_spans.iter().flat_map(|s| s.spans.iter()))
            .map(|s| s.trace_id.clone())
            .collect();
        kept.sort();
        expected.sort();
        assert!(!expected.is_empty() && expected.len() < 400);
        assert_eq!(kept, expected, "salt {salt:?} pct {pct}");
    }
}

#[test]
fn rate_limiting_is_a_token_bucket_with_burst() {
    use super::policy::TokenBucket;
    // contrib: spans_per_second refills continuously, burst defaults to 2 × spans_per_second.
    let mut b = TokenBucket::new(10.0, 20.0);
    let at = Duration::from_millis;
    assert!(b.allow(at(0), 15), "the bucket starts full");
    assert!(!b.allow(at(0), 6), "5 tokens left");
    assert!(b.allow(at(0), 5));
    assert!(!b.allow(at(100), 2), "100 ms refill 1 token");
    assert!(b.allow(at(200), 2), "200 ms refill 2 tokens");
    assert!(b.allow(at(60_000), 20), "refill caps at the burst");
    assert!(
        !b.allow(at(120_000), 21),
        "a trace larger than the burst never passes"
    );

    // Through the sampler: burst_capacity given explicitly, time from the injected clock.
    let c = cfg(serde_json::json!({"decision_wait": "1s", "policies": [
        {"name": "r", "type": "rate_limiting", "rate_limiting": {"spans_per_second": 2, "burst_capacity": 3}}]}));
    let (mut s, clock, _) = sampler(&c);
    s.ingest(vec![rs(vec![
        span(1, 1, 0, 0, 1),
        span(1, 2, 1, 0, 1),
        span(1, 3, 1, 0, 1),
    ])]);
    s.ingest(vec![rs(vec![span(2, 1, 0, 0, 1)])]);
    clock.advance(Duration::from_secs(1));
    assert_eq!(
        trace_ids(&s.tick()),
        vec![1],
        "trace 1 took the whole burst"
    );
    s.ingest(vec![rs(vec![span(3, 1, 0, 0, 1), span(3, 2, 1, 0, 1)])]);
    clock.advance(Duration::from_secs(1));
    assert_eq!(
        trace_ids(&s.tick()),
        vec![3],
        "2 tokens refilled per second"
    );

    let default = cfg(serde_json::json!({"policies": [
        {"name": "r", "type": "rate_limiting", "rate_limiting": {"spans_per_second": 2}}]}));
    assert!(matches!(
        super::policy::Evaluator::build(&default.policies[0]).unwrap(),
        super::policy::Evaluator::RateLimiting(b) if b.burst == 4.0 && b.rate == 2.0
    ));
}

#[test]
fn composite_evaluates_every_sub_policy_in_config_order_and_allows_and() {
    let policies = serde_json::json!([{"name": "comp", "type": "composite", "composite": {
        "max_total_spans_per_second": 100, "policy_order": [],
        "composite_sub_policy": [
            {"name": "slow-errors", "type": "and", "and": {"and_sub_policy": [
                {"name": "e", "type": "status_code", "status_code": {"status_codes": ["ERROR"]}},
                {"name": "s", "type": "latency", "latency": {"threshold_ms": 50}}]}},
            {"name": "rest", "type": "always_sample"}],
        "rate_allocation": [{"policy": "slow-errors", "percent": 50}, {"policy": "rest", "percent": 10}]}}]);
    let (kept, policy) = decide_one(
        policies.clone(),
        vec![rs(vec![with_status(span(1, 1, 0, 0, 100), 2)])],
    );
    assert!(kept);
    assert_eq!(policy.as_deref(), Some("comp/slow-errors"));
    let (kept, policy) = decide_one(policies, vec![rs(vec![span(1, 1, 0, 0, 100)])]);
    assert!(kept, "`rest` is evaluated although policy_order is empty");
    assert_eq!(policy.as_deref(), Some("comp/rest"));

    // Only `and` may nest inside composite; composite / drop may not.
    let bad: Result<TailSamplingConfig, _> =
        serde_json::from_value(serde_json::json!({"policies": [
        {"name": "comp", "type": "composite", "composite": {"max_total_spans_per_second": 1,
         "composite_sub_policy": [{"name": "d", "type": "drop", "drop": {"drop_sub_policy": [
            {"name": "a", "type": "always_sample"}]}}]}}]}));
    let err = bad.unwrap().validate().unwrap_err();
    assert!(
        err.path.ends_with("composite_sub_policy[0].type"),
        "{}",
        err.path
    );
}

#[test]
fn record_policy_attribute_is_off_by_default_and_tags_scopes_and_root_when_on() {
    let policies = serde_json::json!([
        {"name": "comp", "type": "composite", "composite": {
            "max_total_spans_per_second": 100, "composite_sub_policy": [{"name": "all", "type": "always_sample"}],
            "rate_allocation": [{"policy": "all", "percent": 100}]}}]);
    let attrs_of = |out: &[ResourceSpans]| -> (Vec<String>, Vec<String>) {
        let mut scope = Vec::new();
        let mut root = Vec::new();
        for ss in out.iter().flat_map(|r| r.scope_spans.iter()) {
            for a in ss.scope.iter().flat_map(|s| s.attributes.iter()) {
                scope.push(format!(
                    "{}={:?}",
                    a.key,
                    a.value.as_ref().and_then(|v| v.value.clone())
                ));
            }
            for sp in ss.spans.iter().filter(|s| s.parent_span_id.is_empty()) {
                for a in &sp.attributes {
                    root.push(a.key.clone());
                }
            }
        }
        (scope, root)
    };
    for (on, expect_scope) in [(false, 0usize), (true, 2)] {
        let c = cfg(
            serde_json::json!({"decision_wait": "1s", "record_policy_attribute": on, "policies": policies}),
        );
        if !on {
            let d = cfg(serde_json::json!({"policies": policies}));
            assert!(!d.record_policy_attribute, "contrib's default: off");
        }
        let (mut s, clock, _) = sampler(&c);
        s.ingest(vec![rs(vec![span(1, 1, 0, 0, 1), span(1, 2, 1, 0, 1)])]);
        clock.advance(Duration::from_secs(1));
        let out = s.tick();
        let (scope, root) = attrs_of(&out);
        assert_eq!(scope.len(), expect_scope, "{scope:?}");
        if on {
            assert!(
                scope
                    .iter()
                    .any(|a| a.starts_with("tailsampling.policy=") && a.contains("\"comp\""))
            );
            assert!(
                scope
                    .iter()
                    .any(|a| a.starts_with("tailsampling.composite_policy=")
                        && a.contains("\"all\""))
            );
            assert_eq!(
                root,
                vec![
                    POLICY_ATTRIBUTE.to_string(),
                    "tailsampling.composite_policy".into()
                ]
            );
        } else {
            assert!(root.is_empty());
        }
    }
}

#[test]
fn a_decision_records_the_traces_error_duration_and_its_processor() {
    let c = cfg(serde_json::json!({"decision_wait": "1s", "policies": [
        {"name": "e", "type": "status_code", "status_code": {"status_codes": ["ERROR"]}},
        {"name": "slow", "type": "latency", "latency": {"threshold_ms": 1500}}]}));
    let clock = Arc::new(ManualClock::default());
    let stats = Arc::new(SamplingStats::named("tail_sampling/tail", 10));
    let queue = Arc::new(crate::sampling::DecisionQueue::default());
    let mut s = TailSampler::new(
        &c,
        stats.clone(),
        vec![queue.clone()],
        Arc::new(clock.clone()),
    )
    .unwrap();
    assert_eq!(
        stats.latency_threshold(),
        Some(("slow".to_string(), 1500)),
        "the latency policy is what the dashboard calls slow"
    );
    // Trace 1: an error in a child, spans from 10 ms to 1310 ms. Trace 2: no error, 5 ms.
    s.ingest(vec![rs(vec![
        span(1, 1, 0, 10, 1300),
        with_status(span(1, 2, 1, 100, 50), 2),
        span(2, 1, 0, 0, 5),
    ])]);
    clock.advance(Duration::from_secs(1));
    s.tick();
    let mut d = queue.drain();
    d.sort_by(|a, b| a.trace_id.cmp(&b.trace_id));
    let facts: Vec<_> = d
        .iter()
        .map(|d| (d.error, d.duration_us, d.processor.as_str(), d.decision))
        .collect();
    assert_eq!(
        facts,
        [
            (true, 1_300_000, "tail_sampling/tail", Decision::Sampled),
            (false, 5_000, "tail_sampling/tail", Decision::NotSampled)
        ]
    );
    assert_eq!(stats.recent(1)[0].processor, "tail_sampling/tail");
    // A sampler without a latency policy has no threshold to offer.
    let c = cfg(serde_json::json!({"decision_wait": "1s", "policies": [
        {"name": "all", "type": "always_sample"}]}));
    let _ = TailSampler::new(&c, stats.clone(), Vec::new(), Arc::new(clock.clone())).unwrap();
    assert_eq!(stats.latency_threshold(), None);
}
