//! OTLP in → tail_sampling → tracelab store → query API, through the real collector: the error
//! trace is kept (credited to the `errors` policy, tagged on its root span), the healthy one is
//! dropped, late spans of the kept trace still arrive, and `/api/v1/sampling` counts it all.

mod common;

use collector_api::jaeger::{JaegerResponse, Trace};
use collector_api::v1::{Decision, SamplingStatsResponse};
use common::*;

fn config(dir: &std::path::Path) -> String {
    format!(
        "receivers:
  otlp:
    protocols:
      http: {{endpoint: 127.0.0.1:0}}
processors:
  tail_sampling:
    decision_wait: 300ms
    record_policy_attribute: true
    policies:
      - name: errors
        type: status_code
        status_code: {{status_codes: [ERROR]}}
      - name: slow
        type: latency
        latency: {{threshold_ms: 2000}}
      - name: rest
        type: probabilistic
        probabilistic: {{sampling_percentage: 0}}
exporters:
  tracelab:
    storage: {{directory: {}}}
    query: {{endpoint: 127.0.0.1:0}}
service:
  pipelines:
    traces: {{receivers: [otlp], processors: [tail_sampling], exporters: [tracelab]}}
",
        dir.display()
    )
}

fn now_ns() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// An OTLP/JSON request with one span of `trace` (status code 2 = ERROR when `error`).
fn span_json(trace: &str, span: &str, parent: &str, name: &str, error: bool) -> String {
    let start = now_ns();
    let status = if error {
        r#","status":{"code":2,"message":"card declined"}"#
    } else {
        ""
    };
    format!(
        r#"{{"resourceSpans":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"payment-service"}}}}]}},
          "scopeSpans":[{{"spans":[{{"traceId":"{trace}","spanId":"{span}","parentSpanId":"{parent}","name":"{name}",
          "kind":2,"startTimeUnixNano":"{start}","endTimeUnixNano":"{}"{status}}}]}}]}}]}}"#,
        start + 5_000_000
    )
}

const KEPT: &str = "0af7651916cd43dd8448eb211c80319c";
const DROPPED: &str = "1af7651916cd43dd8448eb211c80319c";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_traces_are_kept_with_their_policy_and_healthy_ones_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let c = start(&config(dir.path())).await;
    let otlp = format!("http://{}/v1/traces", c.addr("otlp/http").unwrap());
    let query = c.addr("query").unwrap();
    let http = reqwest::Client::new();
    let send = async |body: String| {
        let r = http
            .post(&otlp)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    };
    send(span_json(
        KEPT,
        "b7ad6b7169203331",
        "",
        "POST /charges",
        false,
    ))
    .await;
    send(span_json(
        KEPT,
        "b7ad6b7169203332",
        "b7ad6b7169203331",
        "charge",
        true,
    ))
    .await;
    send(span_json(
        DROPPED,
        "c7ad6b7169203331",
        "",
        "POST /charges",
        false,
    ))
    .await;

    let trace_url = format!("http://{query}/api/traces/{KEPT}");
    let kept: JaegerResponse<Vec<Trace>> = eventually("the error trace in the store", async || {
        let r = reqwest::get(&trace_url).await.ok()?;
        if !r.status().is_success() {
            return None;
        }
        r.json().await.ok()
    })
    .await;
    let t = &kept.data[0];
    assert_eq!(t.spans.len(), 2);
    let root = t.root_spans()[0];
    assert_eq!(root.tag_str("tailsampling.policy"), Some("errors"));

    let stats_url = format!("http://{query}/api/v1/sampling");
    let stats: SamplingStatsResponse = eventually("both traces decided", async || {
        let s: SamplingStatsResponse = reqwest::get(&stats_url).await.ok()?.json().await.ok()?;
        (s.traces_sampled + s.traces_not_sampled == 2).then_some(s)
    })
    .await;
    let errors = stats.policies.iter().find(|p| p.name == "errors").unwrap();
    assert_eq!((errors.kept, errors.sampled, errors.not_sampled), (1, 1, 1));
    assert_eq!(stats.traces_not_sampled, 1);
    let dropped = stats.recent.iter().find(|d| d.trace_id == DROPPED).unwrap();
    assert_eq!(
        (dropped.decision, dropped.policy.as_deref()),
        (Decision::NotSampled, None)
    );
    let r = reqwest::get(format!("http://{query}/api/traces/{DROPPED}"))
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "the healthy trace was not stored");

    // A late span of the kept trace follows its decision straight into the store.
    send(span_json(
        KEPT,
        "b7ad6b7169203333",
        "b7ad6b7169203331",
        "refund",
        false,
    ))
    .await;
    eventually("the late span stored", async || {
        let t: JaegerResponse<Vec<Trace>> =
            reqwest::get(&trace_url).await.ok()?.json().await.ok()?;
        (t.data[0].spans.len() == 3).then_some(())
    })
    .await;
    let s: SamplingStatsResponse = reqwest::get(&stats_url)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(s.late_spans_forwarded, 1);
    assert_eq!(
        s.traces_sampled + s.traces_not_sampled,
        2,
        "the late span did not start a new decision"
    );
    c.shutdown().await;
}
