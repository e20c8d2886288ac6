//! order-service end to end over HTTP, with the real payment-service and an inventory-service: the
//! checkout span tree, bad input (nothing written), declines, compensation, timeouts and the
//! `propagation.broken` scenario. Spans are asserted through the in-memory exporter.

mod common;

use std::time::Duration;

use common::*;
use contracts::orders::{Order, OrderStatus};
use opentelemetry::trace::SpanKind;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn checkout_produces_the_brief_span_tree() {
    let stack = Stack::sqlite(None).await;
    let resp = stack
        .place(&order_body("LAPTOP-1", 1, "tok_test_123"), None)
        .await;
    assert_eq!(resp.status(), 201);
    assert!(resp.headers().contains_key("traceresponse"));
    let trace_id = trace_id(&resp);
    let order: Order = resp.json().await.unwrap();
    assert_eq!(order.status, OrderStatus::Confirmed);
    assert_eq!(order.total_cents, LAPTOP_PRICE);
    assert!(order.charge_id.is_some() && order.reservation_id.is_some());

    let spans = stack
        .trace(
            &trace_id,
            &[
                "POST /orders",
                "process_order",
                "POST /charges",
                "POST /reservations",
            ],
        )
        .await;
    let server = span(&spans, "POST /orders");
    assert_eq!(kind(server), SpanKind::Server);
    assert!(is_root(server));
    let process = child(&spans, server, "process_order");
    assert_eq!(kind(process), SpanKind::Internal);
    assert_eq!(
        attr(process, "order.id").as_deref(),
        Some(order.id.as_str())
    );
    assert_eq!(attr(process, "order.item_count").as_deref(), Some("1"));
    assert_eq!(
        attr(process, "order.total_cents").as_deref(),
        Some("129900")
    );
    assert_eq!(
        attr(process, "tracelab.scenario").as_deref(),
        Some("checkout")
    );

    let validate = child(&spans, process, "validate_order");
    let total = child(&spans, process, "calculate_total");
    let select = child(&spans, total, "SELECT products");
    assert_eq!(kind(select), SpanKind::Client);
    let insert = child(&spans, process, "INSERT orders");
    assert_eq!(kind(insert), SpanKind::Client);
    assert_eq!(attr(insert, "db.system.name").as_deref(), Some("sqlite"));
    assert_eq!(attr(insert, "db.operation.name").as_deref(), Some("INSERT"));
    assert_eq!(
        attr(insert, "db.collection.name").as_deref(),
        Some("orders")
    );

    let charge = child(&spans, process, "charge_payment");
    assert_eq!(attr(charge, "payment.method").as_deref(), Some("card"));
    assert_eq!(attr(charge, "payment.processor").as_deref(), Some("stripe"));
    let charge_client = child(&spans, charge, "POST");
    assert_eq!(kind(charge_client), SpanKind::Client);
    let charges = child(&spans, charge_client, "POST /charges");
    assert_eq!(kind(charges), SpanKind::Server);
    let payment_charge = child(&spans, charges, "charge");
    child(&spans, payment_charge, "stripe.create_charge");

    let reserve = child(&spans, process, "reserve_inventory");
    let reserve_client = child(&spans, reserve, "POST");
    child(&spans, reserve_client, "POST /reservations");

    // Seed 000's ordering assertion: the reservation starts only after the charge ended.
    assert!(
        charge.end_time <= reserve.start_time,
        "charge must end before reserve starts"
    );
    assert!(validate.end_time <= total.start_time);
    assert!(insert.end_time <= charge.start_time);
    assert!(
        spans.iter().all(|s| !is_error(s)),
        "no ERROR span in a checkout"
    );

    // The event waits in the outbox (no broker configured here), with the checkout's context.
    assert_eq!(stack.count("outbox").await, 1);
    let fetched: Order = stack
        .client
        .get(stack.url(&format!("/orders/{}", order.id)))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(fetched, order);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_input_is_rejected_and_nothing_is_written() {
    let stack = Stack::sqlite(None).await;
    let many: Vec<_> = (0..51)
        .map(|_| serde_json::json!({"sku": "MOUSE-1", "qty": 1}))
        .collect();
    let cases: Vec<(&str, reqwest::RequestBuilder, u16, &str)> = vec![
        (
            "malformed JSON",
            stack
                .client
                .post(stack.url("/orders"))
                .header("content-type", "application/json")
                .body("{\"items\": [}"),
            400,
            "invalid_json",
        ),
        (
            "wrong field types",
            stack
                .client
                .post(stack.url("/orders"))
                .json(&serde_json::json!({"items": "LAPTOP-1"})),
            422,
            "validation_failed",
        ),
        (
            "no content type",
            stack.client.post(stack.url("/orders")).body("{}"),
            415,
            "unsupported_media_type",
        ),
        (
            "unknown SKU",
            stack
                .client
                .post(stack.url("/orders"))
                .json(&order_body("NOPE-1", 1, "tok_test_123")),
            422,
            "unknown_sku",
        ),
        (
            "zero quantity",
            stack
                .client
                .post(stack.url("/orders"))
                .json(&order_body("LAPTOP-1", 0, "tok_test_123")),
            422,
            "validation_failed",
        ),
        (
            "negative quantity",
            stack
                .client
                .post(stack.url("/orders"))
                .json(&order_body("LAPTOP-1", -5, "tok_test_123")),
            422,
            "validation_failed",
        ),
        (
            "absurd quantity",
            stack
                .client
                .post(stack.url("/orders"))
                .json(&order_body("LAPTOP-1", 1_000_000, "tok_test_123")),
            422,
            "validation_failed",
        ),
        (
            "too many items",
            stack.client.post(stack.url("/orders")).json(
                &serde_json::json!({"items": many, "payment": {"method": "card", "token": "tok_test_123"}}),
            ),
            422,
            "validation_failed",
        ),
        (
            "no items",
            stack.client.post(stack.url("/orders")).json(
                &serde_json::json!({"items": [], "payment": {"method": "card", "token": "tok_test_123"}}),
            ),
            422,
            "validation_failed",
        ),
        (
            "oversized body",
            stack
                .client
                .post(stack.url("/orders"))
                .header("content-type", "application/json")
                .body(format!("{{\"pad\": \"{}\"}}", "x".repeat(128 * 1024))),
            413,
            "payload_too_large",
        ),
    ];
    for (name, request, status, code) in cases {
        let resp = request.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), status, "{name}");
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], code, "{name}: {body}");
        assert!(body["error"]["message"].is_string(), "{name}");
    }
    for table in ["orders", "order_items", "outbox"] {
        assert_eq!(stack.count(table).await, 0, "{table} must stay empty");
    }
    let missing = stack
        .client
        .get(stack.url("/orders/ord_missing"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn declined_card_is_402_and_the_order_payment_failed() {
    let stack = Stack::sqlite(None).await;
    for (token, scenario) in [
        ("tok_declined", None),
        ("tok_test_123", Some("payment.declined")),
    ] {
        let resp = stack
            .place(&order_body("LAPTOP-1", 1, token), scenario)
            .await;
        assert_eq!(resp.status(), 402, "{token} {scenario:?}");
        let trace_id = trace_id(&resp);
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], "card_declined");

        let spans = stack.trace(&trace_id, &["POST /orders", "charge"]).await;
        let process = span(&spans, "process_order");
        let charge = span(&spans, "charge_payment");
        assert!(is_error(charge) && is_error(process));
        assert!(
            is_error(span(&spans, "charge")),
            "payment's charge span is ERROR"
        );
        assert!(
            !spans.iter().any(|s| s.name == "reserve_inventory"),
            "nothing is reserved after a decline"
        );
        let order_id = attr(process, "order.id").unwrap();
        let order: Order = stack
            .client
            .get(stack.url(&format!("/orders/{order_id}")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(order.status, OrderStatus::PaymentFailed);
    }
    assert_eq!(stack.count("outbox").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn out_of_stock_after_a_charge_is_compensated() {
    let stack = Stack::sqlite(None).await;
    // A product inventory really has none of, labelled with the scenario and not.
    for (sku, scenario) in [
        ("SOLDOUT-1", Some("inventory.out_of_stock")),
        ("SOLDOUT-1", None),
    ] {
        let resp = stack
            .place(&order_body(sku, 1, "tok_test_123"), scenario)
            .await;
        assert_eq!(resp.status(), 409, "{sku}");
        let trace_id = trace_id(&resp);
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], "out_of_stock");

        let spans = stack
            .trace(&trace_id, &["compensate_payment", "POST /refunds"])
            .await;
        let process = span(&spans, "process_order");
        let charge = child(&spans, process, "charge_payment");
        let reserve = child(&spans, process, "reserve_inventory");
        let compensate = child(&spans, process, "compensate_payment");
        assert!(!is_error(charge));
        assert!(is_error(reserve) && is_error(process), "an error trace");
        assert!(!is_error(compensate), "the refund itself succeeded");
        assert!(reserve.end_time <= compensate.start_time);
        let refund_client = child(&spans, compensate, "POST");
        child(&spans, refund_client, "POST /refunds");
        assert_eq!(
            attr(process, "tracelab.scenario").as_deref(),
            Some(scenario.unwrap_or("checkout"))
        );

        let order_id = attr(process, "order.id").unwrap();
        let order: Order = stack
            .client
            .get(stack.url(&format!("/orders/{order_id}")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(order.status, OrderStatus::Cancelled);
        assert!(order.charge_id.is_some() && order.reservation_id.is_none());
    }
    assert_eq!(
        stack.count("outbox").await,
        0,
        "no event for a cancelled order"
    );
}

/// The `inventory.out_of_stock` fix: with `check_stock_first` on (switched at run time), a sold-out
/// order is refused before any charge: no charge_payment, no refund, nothing charged.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn checking_stock_first_refuses_a_sold_out_order_without_charging() {
    let stack = Stack::sqlite(None).await;
    let switched = stack
        .client
        .put(stack.url("/admin/checkout"))
        .json(&serde_json::json!({"check_stock_first": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(switched.status(), 200);
    let resp = stack
        .place(
            &order_body("SOLDOUT-1", 1, "tok_test_123"),
            Some("inventory.out_of_stock"),
        )
        .await;
    assert_eq!(resp.status(), 409);
    let trace_id = trace_id(&resp);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "out_of_stock");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("SOLDOUT-1"),
        "{body}"
    );
    let spans = stack
        .trace(&trace_id, &["check_stock", "GET /stock/{sku}"])
        .await;
    let process = span(&spans, "process_order");
    let check = child(&spans, process, "check_stock");
    assert!(is_error(check) && is_error(process));
    assert!(
        spans
            .iter()
            .all(|s| s.name != "charge_payment" && s.name != "compensate_payment"),
        "nothing was charged"
    );
    let order_id = attr(process, "order.id").unwrap();
    assert_eq!(
        stack
            .charges
            .count_charges_for_order(&order_id)
            .await
            .unwrap(),
        0
    );

    // A stocked item still checks out, the check costing one GET per SKU.
    let ok = stack
        .place(&order_body("LAPTOP-1", 1, "tok_test_123"), None)
        .await;
    assert_eq!(ok.status(), 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn payment_timeout_is_504_with_an_error_span() {
    let silent = silent_listener().await;
    let stack = Stack::with(&memory_url("order"), None, |c| {
        c.payment_service_url = silent.clone();
        c.downstream_timeout_ms = 300;
    })
    .await;
    let started = std::time::Instant::now();
    let resp = stack
        .place(&order_body("LAPTOP-1", 1, "tok_test_123"), None)
        .await;
    assert_eq!(resp.status(), 504);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "never a hung request"
    );
    let trace_id = trace_id(&resp);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "upstream_timeout");

    let spans = stack
        .trace(&trace_id, &["POST /orders", "charge_payment"])
        .await;
    let charge = span(&spans, "charge_payment");
    assert!(is_error(charge));
    assert!(
        is_error(span(&spans, "POST /orders")),
        "5xx marks the server span"
    );
    assert!(
        is_error(child(&spans, charge, "POST")),
        "the CLIENT span failed"
    );
    assert!(!spans.iter().any(|s| s.name == "reserve_inventory"));
    // The charge's outcome is unknown: the order stays pending, nothing is published.
    assert_eq!(stack.count("outbox").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn propagation_broken_splits_the_trace_at_the_payment_hop() {
    let stack = Stack::sqlite(None).await;
    let resp = stack
        .place(
            &order_body("LAPTOP-1", 1, "tok_test_123"),
            Some("propagation.broken"),
        )
        .await;
    assert_eq!(resp.status(), 201, "the checkout still works");
    let trace_id = trace_id(&resp);
    let order: Order = resp.json().await.unwrap();

    let spans = stack
        .trace(&trace_id, &["process_order", "POST /reservations"])
        .await;
    let charge = span(&spans, "charge_payment");
    assert!(
        children(&spans, charge).is_empty(),
        "the uninstrumented hop leaves charge_payment without a child"
    );
    assert!(!spans.iter().any(|s| s.name == "POST /charges"));
    // The inventory hop still propagates.
    span(&spans, "POST /reservations");

    // payment-service's spans form their own trace, rooted at its SERVER span.
    let telemetry = stack.telemetry.clone();
    let order_id = order.id.clone();
    let fragment = tokio::task::spawn_blocking(move || {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let found = telemetry.all_spans().into_iter().find(|s| {
                s.name == "charge" && attr(s, "order.id").as_deref() == Some(order_id.as_str())
            });
            if found.is_some() || std::time::Instant::now() >= deadline {
                return found;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    })
    .await
    .unwrap()
    .expect("payment's charge span exists");
    let other_trace = fragment.span_context.trace_id().to_string();
    assert_ne!(other_trace, trace_id, "payment runs in a separate trace");
    let fragment_spans = stack.trace(&other_trace, &["POST /charges"]).await;
    assert!(is_root(span(&fragment_spans, "POST /charges")));
    // Baggage went missing with the context: payment ran the plain path.
    assert_ne!(
        attr(&fragment, "tracelab.scenario").as_deref(),
        Some("propagation.broken")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_checkouts_each_get_their_own_order_and_event() {
    const N: usize = 20;
    let stack = Stack::sqlite(None).await;
    let body = order_body("CABLE-1", 3, "tok_test_123");
    let requests = (0..N).map(|_| stack.place(&body, None));
    let responses = futures::future::join_all(requests).await;
    let mut ids = std::collections::HashSet::new();
    for resp in responses {
        assert_eq!(resp.status(), 201);
        let order: Order = resp.json().await.unwrap();
        assert_eq!(order.status, OrderStatus::Confirmed);
        ids.insert(order.id);
    }
    assert_eq!(ids.len(), N);
    assert_eq!(stack.count("orders").await, N as i64);
    assert_eq!(stack.count("outbox").await, N as i64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_file_database_is_created_with_its_directory() {
    let dir =
        std::env::temp_dir().join(format!("tracelab-order-{}", uuid::Uuid::new_v4().simple()));
    let file = dir.join("data").join("order-service.db");
    let url = format!("sqlite:{}?mode=rwc", file.display());
    let stack = Stack::with(&url, None, |_| {}).await;
    let resp = stack
        .place(&order_body("KEYBOARD-1", 2, "tok_test_123"), None)
        .await;
    assert_eq!(resp.status(), 201);
    assert!(
        file.exists(),
        "the data directory and the file were created"
    );
    assert!(
        dir.join("data").join("order-service.db-wal").exists(),
        "WAL journal"
    );
    assert_eq!(stack.count("orders").await, 1);
    drop(stack);
    let _ = std::fs::remove_dir_all(&dir);
}
