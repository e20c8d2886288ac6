//! Tail sampling end to end: a stack whose collector runs the shipped
//! `collector/config/tail-sampling.yaml` (seed 000's policies: errors always, traces over 2 s,
//! a percentage of the rest), made deterministic for a test: the percentage is 0 %, so a fast
//! happy trace must never be stored while error and slow traces always are. `decision_wait` is
//! shortened from 10 s to 6 s (still longer than the slowest scenario's request).

mod common;

use std::time::{Duration, Instant};

use collector_api::v1::{Decision, SamplingStatsResponse};
use common::{Shared, place_order, start_shared};
use lab::{SpanMatcher, SpanStatus, Stack, TraceClient, Wait};
use std::sync::OnceLock;

fn deterministic_tail_config(dir: &std::path::Path) -> std::path::PathBuf {
    let shipped = lab::launcher::default_collector_config_dir().join("tail-sampling.yaml");
    let text = std::fs::read_to_string(&shipped).expect("shipped tail-sampling.yaml");
    for needle in ["decision_wait: 10s", "sampling_percentage: 10 "] {
        assert!(
            text.contains(needle),
            "{} no longer contains `{needle}`: update this test",
            shipped.display()
        );
    }
    let text = text
        .replace("decision_wait: 10s", "decision_wait: 6s")
        .replace("sampling_percentage: 10 ", "sampling_percentage: 0 ");
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("tail-sampling-deterministic.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

fn stack() -> &'static Stack {
    static S: OnceLock<Result<Shared, String>> = OnceLock::new();
    match S.get_or_init(|| {
        start_shared("tail", |o| {
            o.collector_config = Some(deterministic_tail_config(&o.data_dir.join("config")));
        })
    }) {
        Ok(s) => &s.stack,
        Err(e) => panic!("{e}"),
    }
}

/// Polls the sampler's statistics until every id has a recorded decision.
async fn decisions_for(
    client: &TraceClient,
    ids: &[String],
    timeout: Duration,
) -> SamplingStatsResponse {
    let deadline = Instant::now() + timeout;
    loop {
        let stats = client
            .sampling_stats()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        if ids
            .iter()
            .all(|id| stats.recent.iter().any(|d| &d.trace_id == id))
        {
            return stats;
        }
        assert!(
            Instant::now() < deadline,
            "no decision for all of {ids:?} within {timeout:?}: {stats:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn an_error_trace_is_always_kept() {
    let s = stack();
    let (status, id, body) = place_order(&s.urls.gateway, "payment.declined").await;
    assert_eq!(status, 402, "{body}");
    let id = id.expect("X-Trace-Id");
    let client = TraceClient::new(&s.urls.query);
    let stats = decisions_for(&client, std::slice::from_ref(&id), Duration::from_secs(60)).await;
    let d = stats.recent.iter().find(|d| d.trace_id == id).unwrap();
    assert_eq!(d.decision, Decision::Sampled, "{d:?}");
    assert_eq!(d.policy.as_deref(), Some("errors-always"), "{d:?}");
    let trace = client
        .fetch_trace(&id, &Wait::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    trace
        .assert_span(
            &SpanMatcher::name("charge")
                .service("payment-service")
                .status(SpanStatus::Error),
        )
        .unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test]
async fn fast_happy_traces_are_dropped_at_zero_percent() {
    let s = stack();
    let mut ids = Vec::new();
    for _ in 0..5 {
        let (status, id, body) = place_order(&s.urls.gateway, "checkout").await;
        assert_eq!(status, 201, "{body}");
        ids.push(id.expect("X-Trace-Id"));
    }
    let client = TraceClient::new(&s.urls.query);
    let stats = decisions_for(&client, &ids, Duration::from_secs(60)).await;
    for id in &ids {
        let d = stats.recent.iter().find(|d| &d.trace_id == id).unwrap();
        assert_eq!(d.decision, Decision::NotSampled, "{d:?}");
        assert!(
            client.get_trace(id).await.unwrap().is_none(),
            "trace {id} was dropped by the sampler but is stored"
        );
    }
}

#[tokio::test]
async fn a_slow_trace_is_kept_by_the_latency_policy() {
    let s = stack();
    let (status, id, body) = place_order(&s.urls.gateway, "provider.slow").await;
    assert_eq!(status, 201, "{body}");
    let id = id.expect("X-Trace-Id");
    let client = TraceClient::new(&s.urls.query);
    let stats = decisions_for(&client, std::slice::from_ref(&id), Duration::from_secs(60)).await;
    let d = stats.recent.iter().find(|d| d.trace_id == id).unwrap();
    assert_eq!(d.decision, Decision::Sampled, "{d:?}");
    assert_eq!(d.policy.as_deref(), Some("slow-traces"), "{d:?}");
    let trace = client
        .fetch_trace(&id, &Wait::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    trace
        .assert_root_duration_below(Duration::from_secs(2))
        .expect_err("the kept trace is the slow one");
}
