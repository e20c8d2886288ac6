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
    // The real peer: the card-provider this app called, over a real connection.
    let provider = reqwest::Url::parse(&app.provider_url).unwrap();
    assert_eq!(
        attr(stripe, "server.address").as_deref(),
        provider.host_str()
    );
    assert_eq!(
        attr(stripe, "server.port"),
        provider.port().map(|p| p.to_string())
    );
    assert!(
        attr(stripe, "url.full").unwrap().ends_with("/v1/charges"),
        "{:?}",
        attr(stripe, "url.full")
    );
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
        // The decline is the provider's real answer: a 402 on the CLIENT span.
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

/// The provider attempts of one trace, in start order.
fn attempts(
    spans: &[opentelemetry_sdk::trace::SpanData],
) -> Vec<&opentelemetry_sdk::trace::SpanData> {
    let mut out: Vec<_> = spans
        .iter()
        .filter(|s| s.name == "stripe.create_charge")
        .collect();
    out.sort_by_key(|s| s.start_time);
    out
}

/// payment.slow: the provider's rate limiter refuses the first two attempts (429) and the client
/// waits a fixed 600 ms before each retry, so `charge` is ~1200 ms of waiting between three short
/// CLIENT spans. The fix, a short backoff set at run time, keeps the retries and loses the wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payment_slow_is_retry_backoff_and_the_fix_removes_it() {
    let app = spawn_sqlite().await;
    let names = ["POST /charges", "charge", "stripe.create_charge"];
    let slow = app
        .charge(
            &unique("key"),
            &charge_body(&unique("ord"), "tok_test_123"),
            Some("payment.slow"),
        )
        .await;
    assert_eq!(slow.status(), 201);
    let spans = app
        .wait_for_count(&trace_id(&slow), &names, "stripe.create_charge", 3)
        .await;
    let server = duration(span(&spans, "POST /charges"));
    let charge = duration(span(&spans, "charge"));
    let tries = attempts(&spans);
    let statuses: Vec<_> = tries
        .iter()
        .map(|s| attr(s, "http.response.status_code"))
        .collect();
    assert_eq!(
        statuses,
        [
            Some("429".to_owned()),
            Some("429".to_owned()),
            Some("200".to_owned())
        ],
        "two refusals, then the charge"
    );
    assert_eq!(
        attr(tries[1], "http.request.resend_count").as_deref(),
        Some("1")
    );
    assert_eq!(
        attr(tries[2], "http.request.resend_count").as_deref(),
        Some("2")
    );
    let in_calls: f64 = tries.iter().map(|s| duration(s).as_secs_f64()).sum();
    println!(
        "payment.slow before the fix: POST /charges {} ms, charge {} ms, in provider calls {:.0} ms",
        millis(server),
        millis(charge),
        in_calls * 1000.0
    );
    assert!(
        charge.as_secs_f64() >= 0.8 * server.as_secs_f64(),
        "charge {charge:?} of {server:?}"
    );
    // Two 600 ms pauses are a lower bound; the time is payment's own, not the provider's.
    assert!(charge.as_millis() >= 1200, "{charge:?}");
    assert!(
        in_calls < 0.2 * charge.as_secs_f64(),
        "the provider calls are short"
    );

    let fix = app
        .client
        .put(format!("{}/admin/provider", app.base))
        .json(&serde_json::json!({"timeout_ms": 10000, "max_attempts": 3, "retry_backoff_ms": 25}))
        .send()
        .await
        .unwrap();
    assert_eq!(fix.status(), 200);
    let fixed = app
        .charge(
            &unique("key"),
            &charge_body(&unique("ord"), "tok_test_123"),
            Some("payment.slow"),
        )
        .await;
    assert_eq!(fixed.status(), 201);
    let spans = app
        .wait_for_count(&trace_id(&fixed), &names, "stripe.create_charge", 3)
        .await;
    let charge_after = duration(span(&spans, "charge"));
    println!(
        "payment.slow after the fix: charge {} ms",
        millis(charge_after)
    );
    assert_eq!(attempts(&spans).len(), 3, "the same retries");
    assert!(charge_after < charge / 2, "{charge_after:?} vs {charge:?}");
    app.stop().await;
}

/// provider.slow: the simulator answers after 3650 ms; the time is in the CLIENT span. The fix, a
/// per-attempt timeout, fails the charge fast with 504 instead (and releases the claim, so a retry
/// with the same key may ask again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_slow_puts_the_time_in_the_client_span_and_a_timeout_bounds_it() {
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
        "provider.slow before the fix: POST /charges {} ms, charge {} ms, stripe.create_charge {} ms",
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

    let fix = app
        .client
        .put(format!("{}/admin/provider", app.base))
        .json(&serde_json::json!({"timeout_ms": 1000, "max_attempts": 3, "retry_backoff_ms": 25}))
        .send()
        .await
        .unwrap();
    assert_eq!(fix.status(), 200);
    let order = unique("ord");
    let timed_out = app
        .charge(
            &unique("key"),
            &charge_body(&order, "tok_test_123"),
            Some("provider.slow"),
        )
        .await;
    assert_eq!(timed_out.status(), 504);
    let tid = trace_id(&timed_out);
    let err: serde_json::Value = timed_out.json().await.unwrap();
    assert_eq!(err["error"]["code"], "provider_timeout");
    let spans = app
        .trace(&tid, &["POST /charges", "stripe.create_charge"])
        .await;
    let stripe_after = span(&spans, "stripe.create_charge");
    println!(
        "provider.slow after the fix: stripe.create_charge {} ms (timed out), 504",
        millis(duration(stripe_after))
    );
    assert!(is_error(stripe_after));
    assert!(duration(stripe_after).as_millis() >= 1000 && duration(stripe_after) < stripe);
    assert_eq!(
        attempts(&spans).len(),
        1,
        "a timeout is not retried: the provider is slow, not refusing"
    );
    assert_eq!(
        app.store.count_charges_for_order(&order).await.unwrap(),
        0,
        "the claim was released"
    );
    app.stop().await;
}

/// A provider that is down: 502 `provider_unavailable` after the configured attempts, each a failed
/// CLIENT span, and no claim left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_that_is_down_is_a_clear_502_and_the_trace_shows_the_failed_calls() {
    let mut config = payment_service::Config::for_tests(&sqlite_url(), None);
    config.provider.provider_url = dead_url().await;
    config.provider.provider_retry_backoff_ms = 10;
    let app = spawn_with_config(config).await;
    let order = unique("ord");
    let resp = app
        .charge(&unique("key"), &charge_body(&order, "tok_test_123"), None)
        .await;
    assert_eq!(resp.status(), 502);
    let tid = trace_id(&resp);
    let err: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(err["error"]["code"], "provider_unavailable", "{err}");
    let spans = app
        .wait_for_count(
            &tid,
            &["POST /charges", "charge"],
            "stripe.create_charge",
            3,
        )
        .await;
    let tries = attempts(&spans);
    assert_eq!(tries.len(), 3);
    assert!(
        tries.iter().all(|s| is_error(s)),
        "every attempt is a failed CLIENT span"
    );
    assert!(is_error(span(&spans, "charge")));
    assert_eq!(app.store.count_charges_for_order(&order).await.unwrap(), 0);
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
