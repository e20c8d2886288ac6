//! The gateway's own behaviour, in front of a recording stand-in for order-service: authentication,
//! the scenario decision and its baggage, runtime flags, and what is refused at the edge (401, 400,
//! 413, 415, 422) without reaching order-service; 504 when order-service never answers.

mod common;

use std::time::{Duration, Instant};

use common::*;
use opentelemetry::trace::SpanKind;

async fn edge() -> (Running, Recorded, reqwest::Client) {
    telemetry::testing::init();
    let (order, recorded) = recording_order_service().await;
    let gateway = gateway(api_gateway::Config::for_tests(&order.base)).await;
    // The stand-in lives as long as the test's runtime.
    std::mem::forget(order);
    (gateway, recorded, reqwest::Client::new())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn authenticates_from_a_bearer_token_or_as_the_demo_user() {
    let tel = telemetry::testing::init();
    let (gw, recorded, client) = edge().await;
    let url = format!("{}/orders", gw.base);

    let anonymous = client
        .post(&url)
        .json(&order_body("tok_test_123"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 201);
    assert_eq!(
        recorded.last_header("x-tracelab-user").as_deref(),
        Some("demo-user")
    );
    let trace = trace_id(&anonymous);
    let spans = wait_for_names(&tel, &trace, &["POST /orders", "authenticate", "POST"]).await;
    let server = span(&spans, "POST /orders");
    assert!(is_root(server));
    assert_eq!(kind(server), SpanKind::Server);
    let auth = child(&spans, server, "authenticate");
    assert_eq!(kind(auth), SpanKind::Internal);
    assert_eq!(attr(auth, "auth.method").as_deref(), Some("anonymous"));
    let forward = child(&spans, server, "POST");
    assert_eq!(kind(forward), SpanKind::Client);
    assert!(auth.end_time <= forward.start_time);

    let alice = client
        .post(&url)
        .bearer_auth("demo-token-alice")
        .json(&order_body("tok_test_123"))
        .send()
        .await
        .unwrap();
    assert_eq!(alice.status(), 201);
    assert_eq!(
        recorded.last_header("x-tracelab-user").as_deref(),
        Some("alice")
    );
    assert!(
        recorded.last_header("authorization").is_none(),
        "the caller's credentials stay at the edge"
    );

    let forwarded = recorded.requests().len();
    for header in [
        "Bearer not-a-token",
        "Basic YWxpY2U6c2VjcmV0",
        "Bearer",
        "Bearer a b",
    ] {
        let resp = client
            .post(&url)
            .header("authorization", header)
            .json(&order_body("tok_test_123"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401, "{header}");
        assert!(resp.headers().contains_key("www-authenticate"));
        let trace = trace_id(&resp);
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unauthorized");
        let spans = wait_for_names(&tel, &trace, &["POST /orders", "authenticate"]).await;
        assert!(is_error(span(&spans, "authenticate")), "{header}");
    }
    assert_eq!(
        recorded.requests().len(),
        forwarded,
        "a 401 forwards nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_scenario_decision_travels_as_baggage() {
    let tel = telemetry::testing::init();
    let (gw, recorded, client) = edge().await;
    let url = format!("{}/orders", gw.base);

    // Default: checkout, stated explicitly; a client's own tracelab.scenario baggage is overridden.
    let resp = client
        .post(&url)
        .header("baggage", "tracelab.scenario=payment.slow,userId=alice")
        .json(&order_body("tok_test_123"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let baggage = recorded.last_header("baggage").unwrap();
    assert!(baggage.contains("tracelab.scenario=checkout"), "{baggage}");
    assert!(baggage.contains("userId=alice"), "{baggage}");
    assert!(!baggage.contains("payment.slow"), "{baggage}");

    // The header forces a scenario for one request, and the server span records it.
    let resp = client
        .post(&url)
        .header("x-tracelab-scenario", "payment.slow")
        .json(&order_body("tok_test_123"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    assert_eq!(
        recorded.last_header("baggage").as_deref(),
        Some("tracelab.scenario=payment.slow")
    );
    let trace = trace_id(&resp);
    assert!(
        recorded
            .last_header("traceparent")
            .is_some_and(|tp| tp.contains(&trace)),
        "order-service continues the gateway's trace"
    );
    let spans = wait_for_names(&tel, &trace, &["POST /orders"]).await;
    assert_eq!(
        attr(span(&spans, "POST /orders"), "tracelab.scenario").as_deref(),
        Some("payment.slow")
    );

    // An unknown name is a 400 and is not forwarded.
    let forwarded = recorded.requests().len();
    let resp = client
        .post(&url)
        .header("x-tracelab-scenario", "payment.fast")
        .json(&order_body("tok_test_123"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unknown_scenario");
    assert_eq!(recorded.requests().len(), forwarded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn flags_change_at_run_time() {
    let (gw, recorded, client) = edge().await;
    let flags_url = format!("{}/admin/flags", gw.base);
    let orders_url = format!("{}/orders", gw.base);

    let flags: serde_json::Value = client
        .get(&flags_url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        flags.as_object().unwrap().len(),
        7,
        "every fault of the catalogue: {flags}"
    );
    assert_eq!(flags["payment.declined"]["enabled"], false);

    let updated = client
        .put(&flags_url)
        .json(&serde_json::json!({"payment.declined": {"enabled": true, "probability": 100}}))
        .send()
        .await
        .unwrap();
    assert_eq!(updated.status(), 200);
    let updated: serde_json::Value = updated.json().await.unwrap();
    assert_eq!(updated["payment.declined"]["enabled"], true);
    assert_eq!(
        updated["payment.slow"]["enabled"], false,
        "a PUT changes only what it names"
    );

    for _ in 0..3 {
        let resp = client
            .post(&orders_url)
            .json(&order_body("tok_test_123"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201);
        assert_eq!(
            recorded.last_header("baggage").as_deref(),
            Some("tracelab.scenario=payment.declined")
        );
    }
    // The header still wins over the flags.
    client
        .post(&orders_url)
        .header("x-tracelab-scenario", "checkout")
        .json(&order_body("tok_test_123"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        recorded.last_header("baggage").as_deref(),
        Some("tracelab.scenario=checkout")
    );

    // Probability 0 never fires.
    client
        .put(&flags_url)
        .json(&serde_json::json!({"payment.declined": {"enabled": true, "probability": 0}}))
        .send()
        .await
        .unwrap();
    for _ in 0..3 {
        client
            .post(&orders_url)
            .json(&order_body("tok_test_123"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            recorded.last_header("baggage").as_deref(),
            Some("tracelab.scenario=checkout")
        );
    }

    for (body, status, code) in [
        (
            serde_json::json!({"payment.fast": {"enabled": true, "probability": 1}}),
            400,
            "unknown_scenario",
        ),
        (
            serde_json::json!({"payment.slow": {"enabled": true, "probability": 101}}),
            422,
            "validation_failed",
        ),
        (
            serde_json::json!({"checkout": {"enabled": true, "probability": 5}}),
            422,
            "validation_failed",
        ),
        (
            serde_json::json!({"payment.slow": {"enabled": "yes"}}),
            422,
            "validation_failed",
        ),
    ] {
        let resp = client.put(&flags_url).json(&body).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), status, "{body}");
        let err: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(err["error"]["code"], code, "{body}");
    }
    let flags: serde_json::Value = client
        .get(&flags_url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        flags["payment.slow"]["enabled"], false,
        "rejected updates change nothing"
    );

    // `enabled:false` alone switches a flag off, keeping its share.
    let off = client
        .put(&flags_url)
        .json(&serde_json::json!({"payment.declined": {"enabled": false}}))
        .send()
        .await
        .unwrap();
    assert_eq!(off.status(), 200);
    let off: serde_json::Value = off.json().await.unwrap();
    assert_eq!(
        off["payment.declined"],
        serde_json::json!({"enabled": false, "probability": 0})
    );
}

/// With `ADMIN_TOKEN` set, the flags need `Authorization: Bearer <token>`: 401 with the shared
/// error body without it or with a wrong one, and a refused PUT changes nothing. The orders route
/// keeps its own authentication (`API_TOKENS`), untouched by the admin token.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn admin_routes_need_the_admin_token_when_one_is_set() {
    telemetry::testing::init();
    let (order, recorded) = recording_order_service().await;
    let mut config = api_gateway::Config::for_tests(&order.base);
    config.admin = service_kit::AdminArgs::with_token("adm-7f3a");
    let gw = gateway(config).await;
    let client = reqwest::Client::new();
    let flags_url = format!("{}/admin/flags", gw.base);
    let switch_on = serde_json::json!({"payment.slow": {"enabled": true, "probability": 100}});

    let none = client.get(&flags_url).send().await.unwrap();
    assert_eq!(none.status(), 401);
    let body: serde_json::Value = none.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Authorization"),
        "{body}"
    );
    for token in ["demo-token-alice", "adm-7f3b", "adm-7f3a-and-more"] {
        let wrong = client
            .put(&flags_url)
            .bearer_auth(token)
            .json(&switch_on)
            .send()
            .await
            .unwrap();
        assert_eq!(wrong.status(), 401, "{token}");
    }

    let flags: serde_json::Value = client
        .get(&flags_url)
        .bearer_auth("adm-7f3a")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        flags["payment.slow"]["enabled"], false,
        "the refused PUTs changed nothing"
    );
    let on = client
        .put(&flags_url)
        .bearer_auth("adm-7f3a")
        .json(&switch_on)
        .send()
        .await
        .unwrap();
    assert_eq!(on.status(), 200);
    let orders = client
        .post(format!("{}/orders", gw.base))
        .json(&order_body("tok_test_123"))
        .send()
        .await
        .unwrap();
    assert_eq!(orders.status(), 201, "orders need no admin token");
    assert_eq!(
        recorded.last_header("baggage").as_deref(),
        Some("tracelab.scenario=payment.slow")
    );
    std::mem::forget(order);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_requests_are_refused_at_the_edge() {
    let (gw, recorded, client) = edge().await;
    let url = format!("{}/orders", gw.base);
    let cases: Vec<(&str, reqwest::RequestBuilder, u16, &str)> = vec![
        (
            "malformed JSON",
            client
                .post(&url)
                .header("content-type", "application/json")
                .body("{\"items\":"),
            400,
            "invalid_json",
        ),
        (
            "not JSON",
            client.post(&url).body("items=1"),
            415,
            "unsupported_media_type",
        ),
        (
            "zero quantity",
            client.post(&url).json(&serde_json::json!({
                "items": [{"sku": "LAPTOP-1", "qty": 0}],
                "payment": {"method": "card", "token": "tok_test_123"}})),
            422,
            "validation_failed",
        ),
        (
            "absurd quantity",
            client.post(&url).json(&serde_json::json!({
                "items": [{"sku": "LAPTOP-1", "qty": 5000}],
                "payment": {"method": "card", "token": "tok_test_123"}})),
            422,
            "validation_failed",
        ),
        (
            "oversized body",
            client
                .post(&url)
                .header("content-type", "application/json")
                .body(vec![b' '; 200 * 1024]),
            413,
            "payload_too_large",
        ),
    ];
    for (name, request, status, code) in cases {
        let resp = request.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), status, "{name}");
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], code, "{name}: {body}");
    }
    assert!(
        recorded.requests().is_empty(),
        "nothing reached order-service"
    );

    let health = client
        .get(format!("{}/healthz", gw.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let ready = client
        .get(format!("{}/readyz", gw.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_silent_order_service_is_a_504_not_a_hang() {
    let tel = telemetry::testing::init();
    let silent = silent_listener().await;
    let mut config = api_gateway::Config::for_tests(&silent);
    config.downstream_timeout_ms = 300;
    let gw = gateway(config).await;
    let started = Instant::now();
    let resp = reqwest::Client::new()
        .post(format!("{}/orders", gw.base))
        .json(&order_body("tok_test_123"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 504);
    assert!(started.elapsed() < Duration::from_secs(20));
    let trace = trace_id(&resp);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "upstream_timeout");
    let spans = wait_for_names(&tel, &trace, &["POST /orders", "POST"]).await;
    let server = span(&spans, "POST /orders");
    assert!(is_error(server), "the 504 is an error span");
    assert!(
        is_error(child(&spans, server, "POST")),
        "the timed-out CLIENT span"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_idempotency_key_is_passed_through_unchanged() {
    let (gw, recorded, client) = edge().await;
    let url = format!("{}/orders", gw.base);
    let keyed = client
        .post(&url)
        .header("idempotency-key", "\"8e03978e-40d5-43e8\"")
        .json(&order_body("tok_test_123"))
        .send()
        .await
        .unwrap();
    assert_eq!(keyed.status(), 201);
    assert_eq!(
        recorded.last_header("idempotency-key").as_deref(),
        Some("\"8e03978e-40d5-43e8\""),
        "order-service receives the client's key as sent"
    );
    let unkeyed = client
        .post(&url)
        .json(&order_body("tok_test_123"))
        .send()
        .await
        .unwrap();
    assert_eq!(unkeyed.status(), 201);
    assert!(
        recorded.last_header("idempotency-key").is_none(),
        "no key is invented"
    );
}
