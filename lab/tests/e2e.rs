//! End to end: the real collector and four services as processes (free ports, SQLite files,
//! the embedded MockCluster), one stack for this whole test binary, every scenario of the
//! catalogue sent through the gateway with `X-Tracelab-Scenario`, its trace asserted with the kit.
//! Most tests run the shipped spec of their scenario (`lab/specs/*.yaml`), exactly as
//! `tracelab assert` would; the first one spells seed 000's test out in code.

mod common;

use std::time::Duration;

use common::{place_order, run_spec, stack};
use lab::{SpanKind, SpanMatcher, TraceClient, Wait};

const ALL_SERVICES: [&str; 4] = [
    "api-gateway",
    "order-service",
    "payment-service",
    "inventory-service",
];

/// Seed 000's "Trace-Based Testing" example, in full, with the kit's API.
#[tokio::test]
async fn checkout_trace_passes_seed_000s_test() {
    let s = stack();
    let resp = common::http()
        .post(format!("{}/orders", s.urls.gateway))
        .json(&common::checkout_body())
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let trace_id = resp
        .headers()
        .get("x-trace-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .expect("X-Trace-Id header on the gateway's response");
    let body = resp.text().await.unwrap_or_default();
    assert_eq!(status, 201, "{body}");
    assert_eq!(trace_id.len(), 32, "{trace_id}");

    let trace = TraceClient::new(&s.urls.query)
        .fetch_trace(&trace_id, &Wait::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(trace.is_complete(), "{}", trace.tree());
    let check = |r: Result<(), lab::AssertionError>| r.unwrap_or_else(|e| panic!("{e}"));
    check(trace.assert_services_present(&ALL_SERVICES));
    check(trace.assert_ends_before_starts(&"charge_payment".into(), &"reserve_inventory".into()));
    check(trace.assert_root_duration_below(Duration::from_secs(3)));
    check(trace.assert_no_error_spans());
    assert_eq!(trace.root().map(|r| r.service), Some("api-gateway"));
}

/// The Kafka hop keeps the trace: inventory's `process orders` CONSUMER span is a child of
/// order-service's `send orders` PRODUCER span, in the checkout's own trace.
#[tokio::test]
async fn kafka_consumer_span_is_in_the_checkout_trace() {
    let s = stack();
    let (status, trace_id, body) = place_order(&s.urls.gateway, "checkout").await;
    assert_eq!(status, 201, "{body}");
    let consumer = SpanMatcher::name("process orders")
        .service("inventory-service")
        .kind(SpanKind::Consumer);
    let trace = TraceClient::new(&s.urls.query)
        .fetch_trace(
            &trace_id.unwrap(),
            &Wait::default().until_present(consumer.clone()),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let producer = SpanMatcher::name("send orders")
        .service("order-service")
        .kind(SpanKind::Producer);
    trace
        .assert_child_of(&consumer, &producer)
        .and_then(|_| trace.assert_attribute(&producer, "messaging.system", "kafka"))
        .and_then(|_| trace.assert_attribute(&consumer, "messaging.destination.name", "orders"))
        .unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test]
async fn checkout_spec_passes() {
    run_spec(stack(), "checkout").await;
}

/// PUTs a run-time fix (or its undo) and checks it was taken.
/// PUT to an `/admin` route, with the stack's admin token.
async fn put_json(url: &str, body: serde_json::Value) {
    let resp = stack()
        .admin_http()
        .put(url)
        .json(&body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("PUT {url}: {e}"));
    let status = resp.status();
    assert!(
        status.is_success(),
        "PUT {url}: {status} {}",
        resp.text().await.unwrap_or_default()
    );
}

/// The trace of one order placed under `scenario`, once `until` has arrived.
async fn order_trace(scenario: &str, expect: u16, until: SpanMatcher) -> lab::TraceView {
    let s = stack();
    let (status, trace_id, body) = place_order(&s.urls.gateway, scenario).await;
    assert_eq!(status, expect, "{scenario}: {body}");
    TraceClient::new(&s.urls.query)
        .fetch_trace(
            &trace_id.expect("trace id"),
            &Wait::default().until_present(until),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

fn longest(view: &lab::TraceView, m: &SpanMatcher) -> Duration {
    view.find(m)
        .iter()
        .map(|s| s.duration())
        .max()
        .unwrap_or_else(|| panic!("no {m} in\n{}", view.tree()))
}

fn ms(d: Duration) -> u128 {
    d.as_millis()
}

/// The provider policy payment-service ships with (what each fix test restores).
fn shipped_policy() -> serde_json::Value {
    serde_json::json!({"timeout_ms": 10000, "max_attempts": 3, "retry_backoff_ms": 600})
}

#[tokio::test]
async fn payment_slow_is_retry_backoff_and_a_short_backoff_fixes_it() {
    let s = stack();
    let charge = SpanMatcher::name("charge").service("payment-service");
    let before = run_spec(s, "payment.slow").await;
    let url = format!("{}/admin/provider", s.urls.payment);
    put_json(
        &url,
        serde_json::json!({"timeout_ms": 10000, "max_attempts": 3, "retry_backoff_ms": 25}),
    )
    .await;
    let after = order_trace("payment.slow", 201, SpanMatcher::name("reserve_inventory")).await;
    put_json(&url, shipped_policy()).await;
    let attempts = SpanMatcher::name("stripe.create_charge").service("payment-service");
    println!(
        "payment.slow: charge {} ms of {} ms before the fix, {} ms of {} ms after ({} attempts both times)",
        ms(longest(&before, &charge)),
        ms(before.duration()),
        ms(longest(&after, &charge)),
        ms(after.duration()),
        after.find(&attempts).len()
    );
    assert_eq!(after.find(&attempts).len(), 3, "the fix keeps the retries");
    assert!(
        longest(&after, &charge) < longest(&before, &charge) / 4,
        "the wait between attempts is gone:\n{}",
        after.tree()
    );
}

#[tokio::test]
async fn provider_slow_puts_the_time_in_the_provider_call_and_a_timeout_bounds_it() {
    let s = stack();
    let stripe = SpanMatcher::name("stripe.create_charge").service("payment-service");
    let before = run_spec(s, "provider.slow").await;
    let url = format!("{}/admin/provider", s.urls.payment);
    put_json(
        &url,
        serde_json::json!({"timeout_ms": 1000, "max_attempts": 3, "retry_backoff_ms": 600}),
    )
    .await;
    let after = order_trace("provider.slow", 504, stripe.clone()).await;
    put_json(&url, shipped_policy()).await;
    println!(
        "provider.slow: stripe.create_charge {} ms, request {} ms before the fix; {} ms (timed out), request {} ms, 504 after",
        ms(longest(&before, &stripe)),
        ms(before.duration()),
        ms(longest(&after, &stripe)),
        ms(after.duration())
    );
    assert!(longest(&after, &stripe) >= Duration::from_millis(1000));
    assert!(
        after.duration() < before.duration() / 2,
        "the checkout fails fast:\n{}",
        after.tree()
    );
    assert!(
        after
            .find(&stripe.clone().status(lab::SpanStatus::Error))
            .len()
            == 1,
        "one timed-out CLIENT span, not retried:\n{}",
        after.tree()
    );
}

#[tokio::test]
async fn payment_declined_is_an_error_trace_and_402() {
    run_spec(stack(), "payment.declined").await;
}

#[tokio::test]
async fn inventory_out_of_stock_is_409_with_a_refund_and_checking_stock_first_avoids_the_charge() {
    let s = stack();
    let before = run_spec(s, "inventory.out_of_stock").await;
    let url = format!("{}/admin/checkout", s.urls.order);
    put_json(&url, serde_json::json!({"check_stock_first": true})).await;
    let resp = common::http()
        .post(format!("{}/orders", s.urls.gateway))
        .header("x-tracelab-scenario", "inventory.out_of_stock")
        .json(&serde_json::json!({
            "items": [{"sku": "SOLDOUT-1", "qty": 1}],
            "payment": {"method": "card", "token": "tok_test_123"}
        }))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let trace_id = lab::spec::trace_id_of(resp.headers()).expect("trace id");
    put_json(&url, serde_json::json!({"check_stock_first": false})).await;
    assert_eq!(status, 409);
    let after = TraceClient::new(&s.urls.query)
        .fetch_trace(
            &trace_id,
            &Wait::default().until_present(SpanMatcher::name("check_stock")),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    println!(
        "inventory.out_of_stock: services {:?} and {} spans (charge + refund) before the fix, {:?} and {} spans after (check_stock, no charge)",
        before.services(),
        before.spans().count(),
        after.services(),
        after.spans().count()
    );
    assert!(
        !after.services().contains(&"payment-service"),
        "no charge, no refund:\n{}",
        after.tree()
    );
    after
        .assert_span(&SpanMatcher::name("check_stock").status(lab::SpanStatus::Error))
        .unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test]
async fn inventory_slow_query_dominates_inventory_and_the_index_fixes_it() {
    let s = stack();
    let query = SpanMatcher::name("SELECT stock_movements").service("inventory-service");
    let before = run_spec(s, "inventory.slow_query").await;
    let url = format!("{}/admin/slow-query", s.urls.inventory);
    put_json(&url, serde_json::json!({"indexed": true})).await;
    let after = order_trace("inventory.slow_query", 201, query.clone()).await;
    put_json(&url, serde_json::json!({"indexed": false})).await;
    println!(
        "inventory.slow_query: SELECT stock_movements {:.1} ms unindexed, {:.1} ms with the index",
        longest(&before, &query).as_secs_f64() * 1000.0,
        longest(&after, &query).as_secs_f64() * 1000.0
    );
    assert!(
        longest(&after, &query) < longest(&before, &query) / 2,
        "{}",
        after.tree()
    );
    // The database layer says so itself: sqlx's slow-statement warning, an event of the db span.
    before
        .assert_event(
            &query,
            "slow statement: execution time exceeded alert threshold",
        )
        .unwrap_or_else(|e| panic!("{e}"));
}

/// The fix is in code (every outgoing call through `telemetry::http::client()`), so the trace
/// change is shown against the same request on the instrumented path.
#[tokio::test]
async fn propagation_broken_splits_the_trace_and_the_instrumented_client_joins_it() {
    let broken = run_spec(stack(), "propagation.broken").await;
    let fixed = order_trace("checkout", 201, SpanMatcher::name("POST /charges")).await;
    println!(
        "propagation.broken: services in the trace {:?} with the plain client, {:?} with the instrumented one",
        broken.services(),
        fixed.services()
    );
    assert!(!broken.services().contains(&"payment-service"));
    fixed
        .assert_services_present(&ALL_SERVICES)
        .unwrap_or_else(|e| panic!("{e}"));
}

/// The gap between a message's PRODUCER span ending and its CONSUMER span starting.
fn queued(view: &lab::TraceView) -> Duration {
    let producer = SpanMatcher::name("send orders").kind(SpanKind::Producer);
    let consumer = SpanMatcher::name("process orders").kind(SpanKind::Consumer);
    let end = view
        .find(&producer)
        .iter()
        .map(|s| s.start_us() + s.duration().as_micros() as u64)
        .max()
        .expect("producer");
    let start = view
        .find(&consumer)
        .iter()
        .map(|s| s.start_us())
        .min()
        .expect("consumer");
    Duration::from_micros(start.saturating_sub(end))
}

#[tokio::test]
async fn kafka_consumer_lag_is_a_slow_mail_step_and_concurrency_fixes_it() {
    let s = stack();
    let before = run_spec(s, "kafka.consumer_lag").await;
    let url = format!("{}/admin/consumer", s.urls.inventory);
    put_json(&url, serde_json::json!({"concurrency": 8})).await;
    // The spec's shape again: three orders queued ahead, then the measured one.
    let backlog = (0..3).map(|_| place_order(&s.urls.gateway, "kafka.consumer_lag"));
    for (status, _, body) in futures::future::join_all(backlog).await {
        assert_eq!(status, 201, "{body}");
    }
    let after = order_trace(
        "kafka.consumer_lag",
        201,
        SpanMatcher::name("send_confirmation_email"),
    )
    .await;
    put_json(&url, serde_json::json!({"concurrency": 1})).await;
    println!(
        "kafka.consumer_lag: consumer started {} ms after its producer behind 3 queued messages at concurrency 1, {} ms at concurrency 8",
        ms(queued(&before)),
        ms(queued(&after))
    );
    assert!(queued(&after) < queued(&before) / 2, "{}", after.tree());
}

/// `tracelab assert` as a user runs it: a passing spec exits 0 with PASS; a spec whose
/// expectation is wrong exits 1 and prints the expectation and the trace tree.
#[tokio::test]
async fn tracelab_assert_cli_passes_and_fails_with_the_tree() {
    let s = stack();
    let bin = common::bin_dir().join("tracelab");
    let run = |spec: std::path::PathBuf| {
        let bin = bin.clone();
        let (gateway, query) = (s.urls.gateway.clone(), s.urls.query.clone());
        async move {
            tokio::process::Command::new(bin)
                .arg("assert")
                .arg(spec)
                .args(["--gateway", &gateway, "--query", &query])
                .output()
                .await
                .expect("run tracelab assert")
        }
    };
    let ok = run(common::spec_path("payment.declined")).await;
    let out = String::from_utf8_lossy(&ok.stdout);
    assert!(ok.status.success(), "{out}");
    assert!(
        out.contains("PASS payment.declined") && out.contains("1 passed, 0 failed"),
        "{out}"
    );

    let dir = common::fresh_dir("assert-cli");
    let wrong = dir.join("wrong.yaml");
    let text = std::fs::read_to_string(common::spec_path("checkout"))
        .unwrap()
        .replace("root_duration_below_ms: 3000", "root_duration_below_ms: 1");
    std::fs::write(&wrong, text).unwrap();
    let bad = run(wrong).await;
    let out = String::from_utf8_lossy(&bad.stdout);
    assert_eq!(bad.status.code(), Some(1), "{out}");
    assert!(
        out.contains("FAIL checkout") && out.contains("expected: root span under 1.0ms"),
        "{out}"
    );
    assert!(
        out.contains("api-gateway POST /orders [SERVER]"),
        "the tree is printed:\n{out}"
    );
    assert!(out.contains("0 passed, 1 failed"), "{out}");
}

/// No card data in any error: a card number sent in the wrong type to every JSON endpoint of
/// every service comes back nowhere — not in the 4xx body, not in any service's log, not in any
/// stored span (attributes, events, resource).
#[tokio::test]
async fn a_card_number_in_the_wrong_type_is_echoed_nowhere() {
    const PAN: &str = "4242424242424242";
    let s = stack();
    let pan: u64 = PAN.parse().unwrap();
    let endpoints: Vec<(&str, String, serde_json::Value)> = vec![
        (
            "POST",
            format!("{}/orders", s.urls.gateway),
            serde_json::json!({"items":[{"sku":"LAPTOP-1","qty":1}],"payment":{"method":"card","token":pan}}),
        ),
        (
            "POST",
            format!("{}/orders", s.urls.gateway),
            serde_json::json!({"items":[{"sku":"LAPTOP-1","qty":PAN}],"payment":{"method":"card","token":"tok_test_123"}}),
        ),
        (
            "PUT",
            format!("{}/admin/flags", s.urls.gateway),
            serde_json::json!({"scenario": pan}),
        ),
        (
            "POST",
            format!("{}/orders", s.urls.order),
            serde_json::json!({"items":[{"sku":"LAPTOP-1","qty":1}],"payment":{"method":"card","token":pan}}),
        ),
        (
            "POST",
            format!("{}/charges", s.urls.payment),
            serde_json::json!({"order_id":"ord_1","amount_cents":PAN,"currency":"USD","payment":{"method":"card","token":pan}}),
        ),
        (
            "POST",
            format!("{}/refunds", s.urls.payment),
            serde_json::json!({"charge_id": pan, "order_id":"ord_1","amount_cents":1}),
        ),
        (
            "POST",
            format!("{}/reservations", s.urls.inventory),
            serde_json::json!({"order_id": pan, "items":[{"sku":"LAPTOP-1","qty":PAN}]}),
        ),
        (
            "PUT",
            format!("{}/admin/slow-query", s.urls.inventory),
            serde_json::json!({"indexed": pan}),
        ),
        (
            "PUT",
            format!("{}/admin/consumer", s.urls.inventory),
            serde_json::json!({"concurrency": pan}),
        ),
        (
            "PUT",
            format!("{}/admin/provider", s.urls.payment),
            serde_json::json!({"timeout_ms": pan, "max_attempts": 3, "retry_backoff_ms": 25}),
        ),
    ];
    let from = lab::client::now_us();
    for (method, url, body) in &endpoints {
        // The admin routes with their token, so the body reaches the handler's parsing.
        let http = if url.contains("/admin/") {
            s.admin_http()
        } else {
            common::http()
        };
        let resp = http
            .request(method.parse().unwrap(), url)
            .header("idempotency-key", "card-data-test")
            .json(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        assert!(
            (400..500).contains(&status),
            "{method} {url} with a card number in the wrong type: {status} {text}"
        );
        let v: serde_json::Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{method} {url}: a JSON error body, got {text:?}: {e}"));
        assert!(v["error"]["message"].is_string(), "{method} {url}: {text}");
        assert!(
            !text.contains(PAN),
            "{method} {url} echoed the card number: {text}"
        );
    }

    // The stored spans of every service since the requests (give the batch exporters time).
    let client = TraceClient::new(&s.urls.query);
    let mut scanned = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    for service in ALL_SERVICES {
        let traces = loop {
            let t = client
                .find_traces(&lab::TraceQuery {
                    service: service.to_string(),
                    start_us: Some(from),
                    limit: Some(200),
                    ..Default::default()
                })
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            if !t.is_empty() || std::time::Instant::now() > deadline {
                break t;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        for t in traces {
            let json = serde_json::to_string(t.trace()).unwrap();
            assert!(
                !json.contains(PAN),
                "a stored {service} span holds the card number: {json}"
            );
            scanned += 1;
        }
    }
    assert!(
        scanned >= 4,
        "the rejected requests left traces to scan ({scanned})"
    );

    // Every child's log file.
    let logs = s.log_dir.clone().expect("the e2e stack logs to files");
    for name in ALL_SERVICES.iter().chain(&["collector"]) {
        let path = logs.join(format!("{name}.log"));
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            !text.contains(PAN),
            "{} holds the card number",
            path.display()
        );
    }
}
