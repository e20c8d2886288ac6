//! `GET /api/v1/metrics/red` through the real collector: OTLP/JSON spans in → spanmetrics
//! connector's time series → the query API, with the overview and per-service forms, exemplars
//! naming the slow span's trace, parameter errors, and the 404 of a collector without spanmetrics.

mod common;

use std::path::Path;
use std::time::Instant;

use collector_api::metrics::RedResponse;
use common::{eventually, start};

fn config(dir: &Path, spanmetrics: bool) -> String {
    let (connectors, exporters, metrics) = if spanmetrics {
        (
            "connectors:\n  spanmetrics:\n    time_series: {bucket_width: 5s, buckets: 120}\n",
            "tracelab, spanmetrics",
            "    metrics: {receivers: [spanmetrics], exporters: [nop]}\n",
        )
    } else {
        ("", "tracelab", "")
    };
    format!(
        "receivers:
  otlp:
    protocols: {{http: {{endpoint: 127.0.0.1:0}}}}
{connectors}exporters:
  nop:
  tracelab:
    storage: {{directory: {}}}
    query: {{endpoint: 127.0.0.1:0}}
service:
  pipelines:
    traces: {{receivers: [otlp], exporters: [{exporters}]}}
{metrics}",
        dir.display()
    )
}

fn now_ns() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// One span ending now that lasted `ms`, under a resource of `service` (kind 2 = SERVER).
fn span(service: &str, trace: &str, name: &str, kind: u8, ms: u64, error: bool) -> String {
    let end = now_ns();
    let status = if error { r#","status":{"code":2}"# } else { "" };
    format!(
        r#"{{"resourceSpans":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"{service}"}}}}]}},
          "scopeSpans":[{{"spans":[{{"traceId":"{trace}","spanId":"{}","name":"{name}",
          "kind":{kind},"startTimeUnixNano":"{}","endTimeUnixNano":"{end}"{status}}}]}}]}}]}}"#,
        &trace[..16],
        end - u128::from(ms) * 1_000_000,
    )
}

const SLOW: &str = "5100000000000000000000000000000a";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn red_series_with_exemplars_are_served_from_spanmetrics() {
    let dir = tempfile::tempdir().unwrap();
    let c = start(&config(dir.path(), true)).await;
    let otlp = format!("http://{}/v1/traces", c.addr("otlp/http").unwrap());
    let api = format!("http://{}/api/v1/metrics/red", c.addr("query").unwrap());
    let http = reqwest::Client::new();
    let mut bodies = Vec::new();
    for i in 0..8u8 {
        let trace = format!("{:02x}{}", i + 1, "0".repeat(30));
        bodies.push(span("api-gateway", &trace, "POST /orders", 2, 40, false));
        bodies.push(span(
            "payment-service",
            &trace,
            "POST /charges",
            2,
            20,
            i == 3,
        ));
        bodies.push(span("payment-service", &trace, "charge", 1, 15, i == 3));
    }
    bodies.push(span("api-gateway", SLOW, "POST /orders", 2, 1300, false));
    bodies.push(span(
        "payment-service",
        SLOW,
        "POST /charges",
        2,
        1210,
        false,
    ));
    for b in bodies {
        let r = http
            .post(&otlp)
            .header("content-type", "application/json")
            .body(b)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }

    // The overview: one row per service over its SERVER spans, counted as soon as received.
    let overview: RedResponse = eventually("both services counted", async || {
        let r: RedResponse = http.get(&api).send().await.ok()?.json().await.ok()?;
        let calls: Vec<u64> = r.services.iter().map(|s| s.total.calls).collect();
        (calls == [9, 9]).then_some(r)
    })
    .await;
    assert_eq!(overview.connector, "spanmetrics");
    assert_eq!(overview.bucket_ms, 5_000);
    let names: Vec<&str> = overview
        .services
        .iter()
        .map(|s| s.service.as_str())
        .collect();
    assert_eq!(names, ["api-gateway", "payment-service"]);
    assert!(overview.operations.is_empty());
    assert!(
        overview
            .services
            .iter()
            .all(|s| s.entry_spans && s.exemplars.is_empty())
    );
    // The default lookback (15 minutes) shortened to the 10 minutes kept, in 5 s points.
    assert_eq!(overview.services[0].points.len(), 120);
    let pay = &overview.services[1].total;
    assert_eq!(pay.errors, 1);
    assert!(pay.rate > 0.0);
    assert!(pay.p99_ms.unwrap() > 1000.0, "{pay:?}");

    // One service: its row with exemplars, its operations; the slowest is the slow trace's.
    let t = Instant::now();
    let r: RedResponse = http
        .get(format!(
            "{api}?service=payment-service&lookback=5m&step=30s"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let took = t.elapsed();
    println!("GET /api/v1/metrics/red?service=payment-service: {took:?}");
    assert_eq!(r.step_ms, 30_000);
    assert_eq!(r.services.len(), 1);
    let svc = &r.services[0];
    let slowest = svc
        .exemplars
        .iter()
        .max_by(|a, b| a.duration_ms.total_cmp(&b.duration_ms))
        .expect("exemplars");
    assert_eq!(slowest.trace_id, SLOW);
    assert_eq!(slowest.span_id, &SLOW[..16]);
    assert_eq!(slowest.operation, "POST /charges");
    assert!(svc.exemplars.iter().any(|e| e.error), "{:?}", svc.exemplars);
    let ops: Vec<(&str, &str, u64)> = r
        .operations
        .iter()
        .map(|o| {
            (
                o.operation.as_deref().unwrap(),
                o.span_kind.as_deref().unwrap(),
                o.total.calls,
            )
        })
        .collect();
    assert_eq!(
        ops,
        [("POST /charges", "server", 9), ("charge", "internal", 8)]
    );

    let status = async |q: &str| {
        http.get(format!("{api}?{q}"))
            .send()
            .await
            .unwrap()
            .status()
    };
    assert_eq!(status("lookback=2h").await, 400, "longer than 5 s × 120");
    assert_eq!(
        status("operation=charge").await,
        400,
        "operation without service"
    );
    assert_eq!(status("service=x&spanKind=sideways").await, 400);
    assert_eq!(status("step=0s").await, 400);
    assert_eq!(status("connector=spanmetrics/other").await, 404);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_spanmetrics_the_endpoint_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let c = start(&config(dir.path(), false)).await;
    let api = format!("http://{}/api/v1/metrics/red", c.addr("query").unwrap());
    let r = reqwest::get(&api).await.unwrap();
    assert_eq!(r.status(), 404);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "not_found");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(msg.contains("no spanmetrics connector"), "{msg}");
    c.shutdown().await;
}
