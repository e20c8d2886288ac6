//! `POST /orders` with an `Idempotency-Key` (IETF httpapi idempotency-key draft), end to end over HTTP
//! with the real payment- and inventory-services: replays (201 and 402) answer byte for byte and charge
//! once, a reused key with another body is 422, a malformed key 400, concurrent duplicates wait or get
//! 409, a retry after a payment timeout resumes the same order (one charge), and a key abandoned by a
//! crashed request is taken over once its lease ran out.

mod common;

use std::time::{Duration, Instant};

use common::*;
use contracts::orders::{Order, OrderStatus};
use sqlx::Row;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn same_key_same_body_replays_and_another_body_is_refused() {
    let stack = Stack::sqlite(None).await;
    key_replays_and_refuses_reuse(&stack).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_declined_order_replays_the_same_402_and_is_charged_once() {
    let stack = Stack::sqlite(None).await;
    let body = order_body("LAPTOP-1", 1, "tok_declined");
    let first = stack.place_with_key("declined-1", &body, None).await;
    assert_eq!(first.status(), 402);
    let first_text = first.text().await.unwrap();
    let err: serde_json::Value = serde_json::from_str(&first_text).unwrap();
    assert_eq!(err["error"]["code"], "card_declined");

    let second = stack.place_with_key("declined-1", &body, None).await;
    assert_eq!(second.status(), 402, "the same status for the retry");
    assert!(replayed(&second));
    assert_eq!(second.text().await.unwrap(), first_text);

    assert_eq!(stack.count("orders").await, 1);
    let order_id = key_row(&stack.order.pool, "declined-1").await.unwrap().1;
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
    assert_eq!(
        stack.charges_for(&order_id).await,
        1,
        "one (declined) charge"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_a_key_every_request_is_a_new_order() {
    let stack = Stack::sqlite(None).await;
    let body = order_body("MOUSE-1", 1, "tok_test_123");
    let a: Order = stack.place(&body, None).await.json().await.unwrap();
    let b: Order = stack.place(&body, None).await.json().await.unwrap();
    assert_ne!(a.id, b.id);
    assert_eq!(stack.count("orders").await, 2);
    assert_eq!(
        stack.count("idempotency_keys").await,
        0,
        "no key, nothing stored"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn malformed_keys_are_400_and_bad_orders_store_no_key() {
    let stack = Stack::sqlite(None).await;
    let body = order_body("MOUSE-1", 1, "tok_test_123");
    for bad in ["\"unterminated", "two words", &"k".repeat(256)] {
        let resp = stack.place_with_key(bad, &body, None).await;
        assert_eq!(resp.status(), 400, "{bad}");
        let err: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(err["error"]["code"], "invalid_idempotency_key");
    }
    // The draft's quoted form names the same key as the bare one.
    let quoted = stack.place_with_key("\"abc-1\"", &body, None).await;
    assert_eq!(quoted.status(), 201);
    let bare = stack.place_with_key("abc-1", &body, None).await;
    assert!(replayed(&bare));
    // A request refused by validation or pricing claims nothing.
    let unknown = stack
        .place_with_key("bad-sku", &order_body("NOPE-1", 1, "tok_test_123"), None)
        .await;
    assert_eq!(unknown.status(), 422);
    assert_eq!(key_row(&stack.order.pool, "bad-sku").await, None);
    assert_eq!(stack.count("orders").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_duplicates_wait_for_the_first_request() {
    let stack = Stack::sqlite(None).await;
    concurrent_duplicates_share_one_order(&stack).await;
    assert_eq!(stack.count("orders").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_duplicate_that_cannot_wait_long_enough_gets_409() {
    let stack = Stack::with(&memory_url("order"), None, |c| c.idempotency_wait_ms = 100).await;
    let body = order_body("CABLE-1", 1, "tok_test_123");
    let (a, b) = futures::join!(
        stack.place_with_key("busy-1", &body, Some("payment.slow")),
        stack.place_with_key("busy-1", &body, Some("payment.slow")),
    );
    let mut statuses = [a.status().as_u16(), b.status().as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [201, 409]);
    let conflict = if a.status() == 409 { a } else { b };
    let err: serde_json::Value = conflict.json().await.unwrap();
    assert_eq!(err["error"]["code"], "idempotency_in_progress");
    assert!(err["error"]["message"].is_string());
    // Once the first answered, a retry gets its answer.
    let later = stack.place_with_key("busy-1", &body, None).await;
    assert_eq!(later.status(), 201);
    assert!(replayed(&later));
    assert_eq!(stack.count("orders").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_retry_after_a_payment_timeout_resumes_the_order_and_charges_once() {
    const PAYMENT_LEASE_MS: i64 = 3_000;
    let stack = Stack::with_payment(
        &memory_url("order"),
        None,
        |c| c.downstream_timeout_ms = 600,
        |p| p.charge_pending_lease_ms = PAYMENT_LEASE_MS as u64,
    )
    .await;
    let body = order_body("HEADPHONES-1", 1, "tok_test_123");
    // payment.slow holds the charge ~1.2 s: order-service gives up after 600 ms.
    let first = stack
        .place_with_key("timeout-1", &body, Some("payment.slow"))
        .await;
    assert_eq!(first.status(), 504);
    let (status, order_id, _) = key_row(&stack.order.pool, "timeout-1").await.unwrap();
    assert_eq!(status, "released", "a 5xx leaves the key to a retry");

    // The abandoned payment request either finishes its charge (~1.2 s) or, if hyper dropped it
    // with the connection, leaves a pending claim a retry may take over after its lease. Retrying
    // before either would race a live provider call; wait (bounded) for one of them.
    let charge_key = format!("{order_id}:charge");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let row = stack.charges.charge_by_key(&charge_key).await.unwrap();
        let settled_or_abandoned = row.is_some_and(|r| {
            r.status != "pending"
                || order_service::db::now_ms() - r.claimed_at_ms > PAYMENT_LEASE_MS
        });
        if settled_or_abandoned {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "payment never settled the first charge"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let retry = stack.place_with_key("timeout-1", &body, None).await;
    assert_eq!(retry.status(), 201);
    let order: Order = retry.json().await.unwrap();
    assert_eq!(order.id, order_id, "the retry resumed the same order");
    assert_eq!(order.status, OrderStatus::Confirmed);
    assert_eq!(stack.count("orders").await, 1);
    assert_eq!(stack.count("outbox").await, 1);
    assert_eq!(stack.charges_for(&order_id).await, 1, "charged once");

    // And the provider charged once over both attempts: count the stripe.create_charge spans the
    // provider answered 200 under payment's `charge` spans for this order.
    let telemetry = stack.telemetry.clone();
    let id = order_id.clone();
    let provider_calls = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let spans = telemetry.all_spans();
            let charges: Vec<_> = spans
                .iter()
                .filter(|s| s.name == "charge" && attr(s, "order.id").as_deref() == Some(&id))
                .collect();
            let calls = spans
                .iter()
                .filter(|s| {
                    // Charges the provider made (200): payment.slow's refused attempts (429) and
                    // a call cut off with the first request charge nothing.
                    s.name == "stripe.create_charge"
                        && attr(s, "http.response.status_code").as_deref() == Some("200")
                        && charges.iter().any(|c| is_child_of(s, c))
                })
                .count();
            if calls > 0 || Instant::now() >= deadline {
                return calls;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    })
    .await
    .unwrap();
    assert_eq!(provider_calls, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_key_abandoned_by_a_crash_is_taken_over_after_its_lease() {
    let stack = Stack::with(&memory_url("order"), None, |c| c.idempotency_lease_ms = 200).await;
    crashed_key_is_taken_over(&stack).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_resumed_order_that_was_already_confirmed_is_not_run_again() {
    // A crash after the confirmation committed but before the answer was stored: the retry answers
    // from the order, and no second event or charge appears.
    let stack = Stack::with(&memory_url("order"), None, |c| c.idempotency_lease_ms = 200).await;
    let body = order_body("MONITOR-1", 1, "tok_test_123");
    let first = stack.place_with_key("confirmed-1", &body, None).await;
    assert_eq!(first.status(), 201);
    let order: Order = first.json().await.unwrap();
    // Turn the completed key back into one held by a dead request.
    sqlx::query(
        "UPDATE idempotency_keys SET status = 'in_progress', lock_id = 'dead', locked_at_ms = 0, \
         response_status = NULL, response_body = NULL WHERE idempotency_key = 'confirmed-1'",
    )
    .execute(&stack.order.pool)
    .await
    .unwrap();
    let retry = stack.place_with_key("confirmed-1", &body, None).await;
    assert_eq!(retry.status(), 201);
    assert!(!replayed(&retry));
    let again: Order = retry.json().await.unwrap();
    assert_eq!(again, order);
    assert_eq!(stack.count("outbox").await, 1, "no second event");
    assert_eq!(stack.charges_for(&order.id).await, 1);
    let row =
        sqlx::query("SELECT status FROM idempotency_keys WHERE idempotency_key = 'confirmed-1'")
            .fetch_one(&stack.order.pool)
            .await
            .unwrap();
    assert_eq!(row.try_get::<String, _>("status").unwrap(), "completed");
}
