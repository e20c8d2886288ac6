//! The storage paths on PostgreSQL (127.0.0.1:5432, a throw-away `tracelab_test_<random>` database):
//! the same migrations and queries as SQLite. Skipped, with a printed notice, when no server answers.

mod common;

use std::time::Duration;

use common::*;
use contracts::orders::{Order, OrderStatus};
use rdkafka::mocking::MockCluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn checkout_outbox_and_bad_input_on_postgres() {
    let Some(url) = postgres_database("checkout_outbox_and_bad_input_on_postgres").await else {
        return;
    };
    let cluster = MockCluster::new(1).expect("mock cluster");
    cluster.create_topic("orders", 1, 1).expect("topic");
    let brokers = cluster.bootstrap_servers();
    let stack = Stack::with(&url, Some(&brokers), |_| {}).await;

    let resp = stack
        .place(&order_body("LAPTOP-1", 1, "tok_test_123"), None)
        .await;
    assert_eq!(resp.status(), 201);
    let trace_id = trace_id(&resp);
    let order: Order = resp.json().await.unwrap();
    assert_eq!(order.total_cents, LAPTOP_PRICE);

    let spans = stack
        .trace(&trace_id, &["INSERT orders", "send orders"])
        .await;
    let insert = span(&spans, "INSERT orders");
    assert_eq!(
        attr(insert, "db.system.name").as_deref(),
        Some("postgresql")
    );
    let process = span(&spans, "process_order");
    child(&spans, process, "send orders");

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
    assert_eq!(fetched.status, OrderStatus::Confirmed);
    let messages = consume_all(&brokers, "orders", 1, Duration::from_millis(500)).await;
    assert_eq!(messages.len(), 1);

    // A declined card and an unknown SKU: the first writes a payment_failed order, the second nothing.
    let declined = stack
        .place(&order_body("LAPTOP-1", 1, "tok_declined"), None)
        .await;
    assert_eq!(declined.status(), 402);
    let unknown = stack
        .place(&order_body("NOPE-1", 1, "tok_test_123"), None)
        .await;
    assert_eq!(unknown.status(), 422);
    assert_eq!(stack.count("orders").await, 2);
    assert_eq!(stack.count("order_items").await, 2);
    assert_eq!(stack.count("outbox").await, 1);

    drop(stack);
    drop_database(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idempotency_keys_on_postgres() {
    let Some(url) = postgres_database("idempotency_keys_on_postgres").await else {
        return;
    };
    let stack = Stack::with(&url, None, |_| {}).await;
    key_replays_and_refuses_reuse(&stack).await;
    concurrent_duplicates_share_one_order(&stack).await;
    drop(stack);
    // A short lease only for the crash: with it, the slow first request of the concurrent case
    // would itself count as abandoned.
    let stack = Stack::with(&url, None, |c| c.idempotency_lease_ms = 200).await;
    crashed_key_is_taken_over(&stack).await;
    drop(stack);
    drop_database(&url).await;
}
