//! POST /refunds: refunds a succeeded charge once; retries get the first refund; refusals are 4xx.

mod common;

use common::*;

async fn charged(app: &TestApp, token: &str) -> (String, String, u16) {
    let order = unique("ord");
    let resp = app
        .charge(&unique("key"), &charge_body(&order, token), None)
        .await;
    let status = resp.status().as_u16();
    let body: serde_json::Value = resp.json().await.unwrap();
    let charge_id = body["charge_id"].as_str().unwrap_or_default().to_owned();
    (order, charge_id, status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refund_is_idempotent_per_charge() {
    let app = spawn_sqlite().await;
    let (order, charge_id, status) = charged(&app, "tok_test_123").await;
    assert_eq!(status, 201);
    let body =
        serde_json::json!({"charge_id": charge_id, "order_id": order, "amount_cents": 14_999});

    let first = app.refund(&body).await;
    assert_eq!(first.status(), 201);
    let tid = trace_id(&first);
    let first: serde_json::Value = first.json().await.unwrap();
    assert_eq!(first["status"], "succeeded");
    assert_eq!(first["charge_id"], charge_id.as_str());
    assert!(first["refund_id"].as_str().unwrap().starts_with("re_"));

    let spans = app
        .trace(&tid, &["POST /refunds", "refund", "stripe.create_refund"])
        .await;
    let refund = span(&spans, "refund");
    let provider = span(&spans, "stripe.create_refund");
    assert!(is_child_of(refund, span(&spans, "POST /refunds")));
    assert!(is_child_of(provider, refund));
    assert_eq!(attr(provider, "peer.service").as_deref(), Some("stripe"));

    let again = app.refund(&body).await;
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let again: serde_json::Value = again.json().await.unwrap();
    assert_eq!(again, first);
    assert_eq!(app.count("refunds").await, 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refunds_that_make_no_sense_are_refused() {
    let app = spawn_sqlite().await;
    let missing = app
        .refund(
            &serde_json::json!({"charge_id": "ch_nope", "order_id": "ord_1", "amount_cents": 5}),
        )
        .await;
    assert_eq!(missing.status(), 404);

    let (order, charge_id, status) = charged(&app, "tok_declined").await;
    assert_eq!(status, 402);
    assert!(
        charge_id.is_empty(),
        "a declined charge answers with an error body"
    );
    // The declined charge exists in the table; find it to try refunding it.
    let row = sqlx::query("SELECT id FROM charges WHERE order_id = $1")
        .bind(order.as_str())
        .fetch_one(app.store.pool())
        .await
        .unwrap();
    let declined_id: String = sqlx::Row::try_get(&row, "id").unwrap();
    let resp = app
        .refund(
            &serde_json::json!({"charge_id": declined_id, "order_id": order, "amount_cents": 5}),
        )
        .await;
    assert_eq!(resp.status(), 409);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "charge_not_refundable");

    let (order, charge_id, _) = charged(&app, "tok_test_123").await;
    let too_much = app
        .refund(&serde_json::json!({"charge_id": charge_id, "order_id": order, "amount_cents": 1_000_000}))
        .await;
    assert_eq!(too_much.status(), 422);
    let wrong_order = app
        .refund(&serde_json::json!({"charge_id": charge_id, "order_id": "ord_other", "amount_cents": 5}))
        .await;
    assert_eq!(wrong_order.status(), 422);
    assert_eq!(app.count("refunds").await, 0, "nothing written");
    app.stop().await;
}
