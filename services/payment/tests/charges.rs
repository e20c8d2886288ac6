//! POST /charges end to end on the real app: span shapes of every payment scenario, idempotency
//! (sequential and concurrent retries), declines, bad input, and no token anywhere in a trace.

mod common;

use common::*;
use opentelemetry::trace::SpanKind;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkout_charge_has_the_seed_span_tree() {
    let app = spawn_sqlite().await;
    let order = unique("ord");
    let resp = app
        .charge(&unique("key"), &charge_body(&order, "tok_test_123"), None)
        .await;
    assert_eq!(resp.status(), 201);
    let tid = trace_id(&resp);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["status"], "succeeded");
    assert_eq!(body["card_last4"], "4242");
    assert_eq!(body["amount_cents"], 14_999);
    assert!(body["charge_id"].as_str().unwrap().starts_with("ch_"));

    let spans = app
        .trace(
            &tid,
            &[
                "POST /charges",
                "charge",
                "stripe.create_charge",
                "fraud_check",
                "UPDATE charges",
            ],
        )
        .await;
    let server = span(&spans, "POST /charges");
    let charge = span(&spans, "charge");
    let stripe = span(&spans, "stripe.create_charge");
    println!(
        "checkout: POST /charges {:.1} ms, charge {:.1} ms, stripe.create_charge {:.1} ms",
        duration(server).as_secs_f64() * 1000.0,
        duration(charge).as_secs_f64() * 1000.0,
        duration(stripe).as_secs_f64() * 1000.0
    );
    assert_eq!(server.span_kind, SpanKind::Server);
    assert_eq!(charge.span_kind, SpanKind::Internal);
    assert!(
        is_child_of(charge, server),
        "charge is a child of the server span"
    );
    assert!(
        is_child_of(stripe, charge),
        "stripe.create_charge is a child of charge"
    );
    assert!(is_child_of(span(&spans, "fraud_check"), charge));
    assert!(is_child_of(span(&spans, "UPDATE charges"), charge));
    assert!(is_child_of(span(&spans, "INSERT charges"), server));

    assert_eq!(stripe.span_kind, SpanKind::Client);
    assert_eq!(attr(stripe, "peer.service").as_deref(), Some("stripe"));
    assert_eq!(
        attr(stripe, "server.address").as_deref(),
        Some("api.stripe.com")
    );
    assert_eq!(attr(stripe, "server.port").as_deref(), Some("443"));
    assert_eq!(
        attr(stripe, "http.response.status_code").as_deref(),
        Some("200")
    );
    assert!(!is_error(stripe));

    let events = event_names(charge);
    assert!(
        events.contains(&"payment_started".to_string()),
        "{events:?}"
    );
    assert!(
        events.contains(&"payment_completed".to_string()),
        "{events:?}"
    );
    assert!(!events.contains(&"payment_failed".to_string()));
    assert!(
        events
            .iter()
            .any(|e| e == "charging $149.99 to card ending 4242"),
        "{events:?}"
    );
    assert_eq!(attr(charge, "payment.method").as_deref(), Some("card"));
    assert_eq!(attr(charge, "payment.processor").as_deref(), Some("stripe"));
    assert_eq!(attr(charge, "payment.status").as_deref(), Some("succeeded"));
    assert_eq!(attr(charge, "order.id").as_deref(), Some(order.as_str()));
    assert_eq!(
        attr(charge, "tracelab.scenario").as_deref(),
        Some("checkout")
    );
    assert!(!is_error(charge));

    let db = span(&spans, "INSERT charges");
    assert_eq!(db.span_kind, SpanKind::Client);
    assert_eq!(attr(db, "db.system.name").as_deref(), Some("sqlite"));
    assert!(
        attr(db, "db.query.text")
            .unwrap()
            .starts_with("INSERT INTO charges")
    );

    let text = all_text(&spans);
    assert!(
        !text.contains("tok_test_123"),
        "the token leaked into the trace:\n{text}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declined_card_is_402_with_error_status_and_exception_events() {
    let app = spawn_sqlite().await;
    for (token, scenario) in [
        ("tok_declined", None),
        ("tok_test_123", Some("payment.declined")),
    ] {
        let order = unique("ord");
        let resp = app
            .charge(&unique("key"), &charge_body(&order, token), scenario)
            .await;
        assert_eq!(resp.status(), 402, "{token} {scenario:?}");
        let tid = trace_id(&resp);
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], "card_declined");
        assert!(
            !body.to_string().contains(token),
            "no token in the error body"
        );

        let spans = app
            .trace(&tid, &["POST /charges", "charge", "stripe.create_charge"])
            .await;
        let charge = span(&spans, "charge");
        let stripe = span(&spans, "stripe.create_charge");
        assert!(is_error(charge), "charge span is ERROR ({token})");
        assert!(is_error(stripe), "provider span is ERROR ({token})");
        let events = event_names(charge);
        assert!(events.contains(&"payment_started".to_string()));
        assert!(events.contains(&"payment_failed".to_string()), "{events:?}");
        assert!(events.contains(&"exception".to_string()), "{events:?}");
        assert_eq!(
            event_attr(charge, "exception", "exception.type").as_deref(),
            Some("CardDeclined")
        );
        assert!(
            event_attr(charge, "exception", "exception.message")
                .unwrap()
                .contains("declined")
        );
        assert_eq!(
            event_attr(stripe, "exception", "exception.type").as_deref(),
            Some("CardDeclined")
        );
        assert_eq!(
            attr(stripe, "http.response.status_code").as_deref(),
            Some("402")
        );
        assert_eq!(attr(charge, "payment.status").as_deref(), Some("declined"));
        assert!(
            !all_text(&spans).contains(token),
            "the token leaked into the trace"
        );
        if let Some(s) = scenario {
            assert_eq!(attr(charge, "tracelab.scenario").as_deref(), Some(s));
        }
        assert_eq!(app.store.count_charges_for_order(&order).await.unwrap(), 1);
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payment_slow_makes_charge_the_bottleneck() {
    let app = spawn_sqlite().await;
    let resp = app
        .charge(
            &unique("key"),
            &charge_body(&unique("ord"), "tok_test_123"),
            Some("payment.slow"),
        )
        .await;
    assert_eq!(resp.status(), 201);
    let spans = app
        .trace(
            &trace_id(&resp),
            &["POST /charges", "charge", "fraud_check"],
        )
        .await;
    let server = duration(span(&spans, "POST /charges"));
    let charge = duration(span(&spans, "charge"));
    let fraud = duration(span(&spans, "fraud_check"));
    println!(
        "payment.slow: POST /charges {} ms, charge {} ms, fraud_check {} ms",
        millis(server),
        millis(charge),
        millis(fraud)
    );
    assert!(
        charge.as_secs_f64() >= 0.8 * server.as_secs_f64(),
        "charge {charge:?} of {server:?}"
    );
    assert!(
        fraud.as_secs_f64() >= 0.8 * charge.as_secs_f64(),
        "the time is payment's own work"
    );
    // The modelled latency is a lower bound: waits never end early.
    assert!(charge.as_millis() >= 1190, "{charge:?}");
    assert_eq!(
        attr(span(&spans, "charge"), "tracelab.scenario").as_deref(),
        Some("payment.slow")
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_slow_puts_the_time_in_the_client_span() {
    let app = spawn_sqlite().await;
    let resp = app
        .charge(
            &unique("key"),
            &charge_body(&unique("ord"), "tok_test_123"),
            Some("provider.slow"),
        )
        .await;
    assert_eq!(resp.status(), 201);
    let spans = app
        .trace(
            &trace_id(&resp),
            &["POST /charges", "charge", "stripe.create_charge"],
        )
        .await;
    let server = duration(span(&spans, "POST /charges"));
    let charge = duration(span(&spans, "charge"));
    let stripe = duration(span(&spans, "stripe.create_charge"));
    println!(
        "provider.slow: POST /charges {} ms, charge {} ms, stripe.create_charge {} ms",
        millis(server),
        millis(charge),
        millis(stripe)
    );
    assert!(
        stripe.as_secs_f64() >= 0.85 * server.as_secs_f64(),
        "{stripe:?} of {server:?}"
    );
    assert!(stripe <= charge && charge <= server);
    assert!(stripe.as_millis() >= 3650, "{stripe:?}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_charge_returns_the_first_result_and_charges_once() {
    let app = spawn_sqlite().await;
    let order = unique("ord");
    let key = unique("key");
    let body = charge_body(&order, "tok_test_123");
    let first = app.charge(&key, &body, None).await;
    assert_eq!(first.status(), 201);
    let first_trace = trace_id(&first);
    let first: serde_json::Value = first.json().await.unwrap();
    let second = app.charge(&key, &body, None).await;
    assert_eq!(second.status(), 201);
    assert_eq!(second.headers()["idempotent-replayed"], "true");
    let second_trace = trace_id(&second);
    let second: serde_json::Value = second.json().await.unwrap();
    assert_eq!(first, second, "same response for the same key");
    assert_eq!(app.store.count_charges_for_order(&order).await.unwrap(), 1);

    // The provider was called once: the replay's trace has no charge or provider span.
    app.trace(&first_trace, &["stripe.create_charge"]).await;
    let replay = app.trace(&second_trace, &["POST /charges"]).await;
    assert!(
        replay
            .iter()
            .all(|s| s.name != "stripe.create_charge" && s.name != "charge")
    );

    // Same key, different request: refused, nothing written.
    let mut other = body.clone();
    other["amount_cents"] = serde_json::json!(1);
    let reused = app.charge(&key, &other, None).await;
    assert_eq!(reused.status(), 422);
    let err: serde_json::Value = reused.json().await.unwrap();
    assert_eq!(err["error"]["code"], "idempotency_key_reused");
    assert_eq!(app.store.count_charges_for_order(&order).await.unwrap(), 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_retries_charge_exactly_once() {
    let app = spawn_sqlite().await;
    let order = unique("ord");
    let key = unique("key");
    let body = charge_body(&order, "tok_test_123");
    let requests = (0..8).map(|_| app.charge(&key, &body, None));
    let responses = futures::future::join_all(requests).await;
    let mut ids = std::collections::HashSet::new();
    let mut traces = Vec::new();
    for resp in responses {
        assert_eq!(resp.status(), 201);
        traces.push(trace_id(&resp));
        let body: serde_json::Value = resp.json().await.unwrap();
        ids.insert(body["charge_id"].as_str().unwrap().to_owned());
    }
    assert_eq!(ids.len(), 1, "every retry got the same charge: {ids:?}");
    assert_eq!(app.store.count_charges_for_order(&order).await.unwrap(), 1);
    let mut provider_calls = 0;
    for t in &traces {
        let spans = app.trace(t, &["POST /charges"]).await;
        provider_calls += spans
            .iter()
            .filter(|s| s.name == "stripe.create_charge")
            .count();
    }
    assert_eq!(provider_calls, 1, "the provider was called exactly once");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_4xx_json_and_writes_nothing() {
    let app = spawn_sqlite().await;
    let url = format!("{}/charges", app.base);
    let cases: Vec<(reqwest::RequestBuilder, u16, &str)> = vec![
        (
            app.client.post(&url).header("idempotency-key", "k1").header("content-type", "application/json").body("{not json"),
            400,
            "invalid_json",
        ),
        (
            app.client.post(&url).json(&charge_body("ord_x", "tok_test_123")),
            400,
            "missing_idempotency_key",
        ),
        (
            app.client.post(&url).header("idempotency-key", "k2").json(&serde_json::json!({"order_id": "o"})),
            422,
            "validation_failed",
        ),
        (
            app.client.post(&url).header("idempotency-key", "k3").json(&charge_body("ord_x", "4242424242424242")),
            422,
            "validation_failed",
        ),
        (
            app.client.post(&url).header("idempotency-key", "k4").json(&serde_json::json!({
                "order_id": "ord_x", "amount_cents": -5, "currency": "USD", "method": "card", "token": "tok_test_123"
            })),
            422,
            "validation_failed",
        ),
        (
            app.client.post(&url).header("idempotency-key", "k6").json(&serde_json::json!({
                "order_id": "ord_x", "amount_cents": "4242424242424242", "currency": "USD", "method": "card", "token": "tok_test_123"
            })),
            422,
            "validation_failed",
        ),
        (
            app.client.post(&url).header("idempotency-key", "k7").json(&serde_json::json!({
                "order_id": "ord_x", "amount_cents": 100, "currency": "USD", "method": "card", "token": 4242424242424242_u64
            })),
            422,
            "validation_failed",
        ),
        (
            app.client
                .post(&url)
                .header("idempotency-key", "k5")
                .header("content-type", "application/json")
                .body(format!("{{\"order_id\":\"{}\"}}", "x".repeat(64 * 1024))),
            413,
            "payload_too_large",
        ),
    ];
    for (req, status, code) in cases {
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), status, "expected {code}");
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], code);
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
        assert!(
            !body.to_string().contains("4242424242424242"),
            "no card number echoed"
        );
    }
    assert_eq!(app.count("charges").await, 0, "bad input wrote nothing");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_endpoints_answer() {
    let app = spawn_sqlite().await;
    for path in ["/healthz", "/readyz"] {
        let resp = app
            .client
            .get(format!("{}{path}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{path}");
    }
    app.stop().await;
}
