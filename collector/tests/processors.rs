//! Processors through the library API with a capturing consumer: batch (size, timeout,
//! max-size split, flush on shutdown), attributes actions, probabilistic sampler consistency.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use collector::pipeline::{ComponentCounters, ConsumeError, Consumer};
use collector::processors::attributes::{AttributesConfig, AttributesProcessor};
use collector::processors::batch::{BatchConfig, BatchProcessor};
use collector::processors::probabilistic_sampler::{
    ProbabilisticSampler, ProbabilisticSamplerConfig, keep_trace,
};
use common::*;
use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;

#[derive(Default)]
struct Capture(Mutex<Vec<Vec<ResourceSpans>>>);

#[async_trait::async_trait]
impl Consumer<ResourceSpans> for Capture {
    async fn consume(&self, batch: Vec<ResourceSpans>) -> Result<(), ConsumeError> {
        self.0.lock().unwrap().push(batch);
        Ok(())
    }
}

impl Capture {
    fn batch_sizes(&self) -> Vec<usize> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|b| {
                b.iter()
                    .map(|r| r.scope_spans.iter().map(|s| s.spans.len()).sum::<usize>())
                    .sum()
            })
            .collect()
    }
}

fn spans(n: usize, trace: u8) -> Vec<ResourceSpans> {
    let names: Vec<String> = (0..n).map(|i| format!("s{i}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    vec![resource_spans("svc", [trace; 16], &refs, false)]
}

#[tokio::test]
async fn batch_flushes_on_size() {
    let cap = Arc::new(Capture::default());
    let b = BatchProcessor::new(
        BatchConfig {
            timeout: Duration::from_secs(3600),
            send_batch_size: 10,
            send_batch_max_size: 0,
        },
        cap.clone(),
    );
    b.consume(spans(4, 1)).await.unwrap();
    b.consume(spans(4, 2)).await.unwrap();
    assert!(cap.batch_sizes().is_empty(), "8 < 10: nothing sent yet");
    b.consume(spans(4, 3)).await.unwrap();
    assert_eq!(cap.batch_sizes(), [12]);
    b.consume(spans(3, 4)).await.unwrap();
    b.shutdown().await.unwrap();
    assert_eq!(cap.batch_sizes(), [12, 3], "shutdown flushes the rest");
}

#[tokio::test]
async fn batch_splits_above_max_size() {
    let cap = Arc::new(Capture::default());
    let b = BatchProcessor::new(
        BatchConfig {
            timeout: Duration::from_secs(3600),
            send_batch_size: 5,
            send_batch_max_size: 5,
        },
        cap.clone(),
    );
    b.consume(spans(12, 1)).await.unwrap();
    assert_eq!(
        cap.batch_sizes(),
        [5, 5],
        "batches go while at least send_batch_size remain"
    );
    b.shutdown().await.unwrap();
    assert_eq!(cap.batch_sizes(), [5, 5, 2], "the rest at shutdown");
}

/// Encoded requests (`pipeline::wire`): batched by concatenation without being cut, the rest
/// waiting for the next batch; one larger than the max is decoded and split; a batch mixing
/// decoded and encoded items goes out encoded, all of it.
#[tokio::test]
async fn batch_keeps_encoded_requests_whole() {
    use collector::pipeline::wire::Encoded;
    use prost::Message;

    #[derive(Default)]
    struct Kinds(Mutex<Vec<(&'static str, usize)>>);
    #[async_trait::async_trait]
    impl Consumer<ResourceSpans> for Kinds {
        async fn consume(&self, batch: Vec<ResourceSpans>) -> Result<(), ConsumeError> {
            let n = collector::pipeline::signal::count(&batch);
            self.0.lock().unwrap().push(("decoded", n));
            Ok(())
        }
        async fn consume_encoded(&self, batch: Encoded<ResourceSpans>) -> Result<(), ConsumeError> {
            let decoded = batch.decode().expect("a valid concatenation");
            assert_eq!(collector::pipeline::signal::count(&decoded), batch.items);
            self.0.lock().unwrap().push(("encoded", batch.items));
            Ok(())
        }
    }
    let encoded = |n: usize, trace: u8| {
        let req = opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest {
            resource_spans: spans(n, trace),
        };
        Encoded::one(req.encode_to_vec().into(), n)
    };
    let next = Arc::new(Kinds::default());
    let b = BatchProcessor::new(
        BatchConfig {
            timeout: Duration::from_secs(3600),
            send_batch_size: 8,
            send_batch_max_size: 8,
        },
        next.clone(),
    );
    for t in 1..=3 {
        b.consume_encoded(encoded(3, t)).await.unwrap();
    }
    // 9 ≥ 8: the first two requests (6) go whole; the third waits.
    assert_eq!(*next.0.lock().unwrap(), [("encoded", 6)]);
    // 3 + 12: the 12-span request alone exceeds the max, so it is decoded and split.
    b.consume_encoded(encoded(12, 4)).await.unwrap();
    assert_eq!(
        *next.0.lock().unwrap(),
        [("encoded", 6), ("encoded", 8)],
        "3 encoded + 5 decoded go out encoded together"
    );
    b.consume(spans(1, 5)).await.unwrap();
    b.shutdown().await.unwrap();
    assert_eq!(
        *next.0.lock().unwrap(),
        [("encoded", 6), ("encoded", 8), ("decoded", 8)],
        "the split's 7 and a decoded span: all decoded, so they stay decoded"
    );
}

#[tokio::test]
async fn batch_flushes_on_timeout() {
    let cap = Arc::new(Capture::default());
    let b = BatchProcessor::new(
        BatchConfig {
            timeout: Duration::from_millis(50),
            send_batch_size: 1000,
            send_batch_max_size: 0,
        },
        cap.clone(),
    );
    b.consume(spans(3, 1)).await.unwrap();
    eventually("timed flush", async || {
        (cap.batch_sizes() == [3]).then_some(())
    })
    .await;
    b.consume(spans(2, 2)).await.unwrap();
    eventually("second timed flush", async || {
        (cap.batch_sizes() == [3, 2]).then_some(())
    })
    .await;
}

fn attrs_of(rs: &ResourceSpans) -> Vec<(String, String)> {
    rs.scope_spans[0].spans[0]
        .attributes
        .iter()
        .map(|kv| {
            let v = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(any_value::Value::StringValue(s)) => s.clone(),
                Some(any_value::Value::IntValue(i)) => i.to_string(),
                other => format!("{other:?}"),
            };
            (kv.key.clone(), v)
        })
        .collect()
}

#[tokio::test]
async fn attributes_actions_apply_in_order_and_respect_filters() {
    let cfg: AttributesConfig = serde_json::from_value(serde_json::json!({
        "actions": [
            {"key": "env", "value": "production", "action": "insert"},
            {"key": "keep", "value": "new", "action": "insert"},
            {"key": "keep", "value": "updated", "action": "update"},
            {"key": "absent", "value": "x", "action": "update"},
            {"key": "copy", "from_attribute": "user.id", "action": "upsert"},
            {"key": "count", "value": 3, "action": "upsert"},
            {"key": "user.id", "action": "hash"},
            {"key": "secret", "action": "delete"}
        ],
        "exclude": {"match_type": "strict", "services": ["payment-service"]}
    }))
    .unwrap();
    cfg.validate().unwrap();
    let cap = Arc::new(Capture::default());
    let p = AttributesProcessor::new(cfg, cap.clone());
    let mut order = resource_spans("order-service", [1; 16], &["op"], false);
    order.scope_spans[0].spans[0].attributes =
        vec![kv("keep", "old"), kv("user.id", "u-42"), kv("secret", "s")];
    let payment = resource_spans("payment-service", [2; 16], &["op"], false);
    p.consume(vec![order, payment]).await.unwrap();
    let got = cap.0.lock().unwrap()[0].clone();
    let a = attrs_of(&got[0]);
    let get = |k: &str| a.iter().find(|(kk, _)| kk == k).map(|(_, v)| v.clone());
    assert_eq!(get("env").as_deref(), Some("production"));
    assert_eq!(
        get("keep").as_deref(),
        Some("updated"),
        "insert does not overwrite, update does"
    );
    assert_eq!(get("absent"), None, "update does not create");
    assert_eq!(get("copy").as_deref(), Some("u-42"));
    assert_eq!(get("count").as_deref(), Some("3"));
    let hashed = get("user.id").unwrap();
    assert_eq!(hashed.len(), 64, "SHA-256 hex");
    assert_ne!(hashed, "u-42");
    assert_eq!(get("secret"), None);
    assert!(attrs_of(&got[1]).is_empty(), "excluded service untouched");
}

#[tokio::test]
async fn probabilistic_sampler_is_consistent_per_trace_and_near_the_rate() {
    let cfg = ProbabilisticSamplerConfig {
        sampling_percentage: 25.0,
        hash_seed: 22,
        ..Default::default()
    };
    let cap = Arc::new(Capture::default());
    let counters = Arc::new(ComponentCounters::default());
    let stats = Arc::new(collector::sampling::ProbabilisticStats::default());
    let p = ProbabilisticSampler::new(cfg, cap.clone(), counters.clone(), stats.clone());
    let mut kept_traces = 0;
    for t in 0..2000u32 {
        let mut id = [0u8; 16];
        id[..4].copy_from_slice(&t.to_be_bytes());
        id[15] = 1;
        // Each trace arrives in two separate batches: both halves must agree.
        let first = vec![resource_spans("a", id, &["x", "y"], false)];
        let second = vec![resource_spans("b", id, &["z"], false)];
        p.consume(first).await.unwrap();
        p.consume(second).await.unwrap();
        let expected = keep_trace(&id, 22, 25.0);
        kept_traces += usize::from(expected);
    }
    let batches = cap.0.lock().unwrap().clone();
    let mut per_trace: std::collections::HashMap<Vec<u8>, usize> = Default::default();
    for b in &batches {
        for rs in b {
            for s in &rs.scope_spans[0].spans {
                *per_trace.entry(s.trace_id.clone()).or_default() += 1;
            }
        }
    }
    assert!(
        per_trace.values().all(|n| *n == 3),
        "a kept trace keeps all its spans"
    );
    assert_eq!(per_trace.len(), kept_traces);
    let share = kept_traces as f64 / 2000.0;
    assert!((0.18..0.32).contains(&share), "kept share {share}");
    let dropped = counters.dropped.load(std::sync::atomic::Ordering::Relaxed) as usize;
    assert_eq!(dropped, (2000 - kept_traces) * 3);
    let get =
        |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed) as usize;
    assert_eq!(
        (get(&stats.spans_sampled), get(&stats.spans_not_sampled)),
        (kept_traces * 3, (2000 - kept_traces) * 3),
        "its own statistics count every span's decision"
    );
    assert_eq!(get(&stats.log_records_sampled), 0, "no logs went through");
}
