//! The storage-dependent behaviour again on PostgreSQL (same migrations, sqlx Any): reservations in
//! one transaction, 409 writing nothing, idempotency, the slow-query plan and its index, and
//! idempotent event handling. Skipped, with a printed reason, without a server on 127.0.0.1:5432.

mod common;

use common::*;
use contracts::events::{Envelope, OrderPlaced};
use contracts::scenario::Scenario;
use inventory_service::store::EventOutcome;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_reservations_slow_query_and_events() {
    let Some(app) = spawn_postgres("postgres_reservations_slow_query_and_events", |c| {
        c.seed_movements = 200_000
    })
    .await
    else {
        return;
    };
    let laptop = app.stock("LAPTOP-1").await;
    let order = unique("ord");
    let body = reservation(&order, &[("LAPTOP-1", 2)]);
    let first = app.reserve(&body, None).await;
    assert_eq!(first.status(), 201);
    let tid = trace_id(&first);
    let first: serde_json::Value = first.json().await.unwrap();
    let again: serde_json::Value = app.reserve(&body, None).await.json().await.unwrap();
    assert_eq!(first, again);
    assert_eq!(app.stock("LAPTOP-1").await.0, laptop.0 - 2);
    let spans = app.trace(&tid, &["reserve", "UPDATE stock"]).await;
    assert_eq!(
        attr(span(&spans, "UPDATE stock"), "db.system.name").as_deref(),
        Some("postgresql")
    );

    let short = app
        .reserve(
            &reservation(&unique("ord"), &[("LAPTOP-1", 1), ("SOLDOUT-1", 1)]),
            None,
        )
        .await;
    assert_eq!(short.status(), 409);
    assert_eq!(app.stock("LAPTOP-1").await.0, laptop.0 - 2, "rolled back");
    assert_eq!(app.count("reservations").await, 1);

    // The slow query: a sequential scan until the index exists, then an index scan.
    let plan = app.store.movement_plan("LAPTOP-1").await.unwrap();
    assert!(
        plan.iter()
            .any(|l| l.contains("Seq Scan on stock_movements")),
        "{plan:?}"
    );
    let slow = app
        .reserve(
            &reservation(&unique("ord"), &[("LAPTOP-1", 1)]),
            Some("inventory.slow_query"),
        )
        .await;
    assert_eq!(slow.status(), 201);
    let slow_spans = app
        .trace(&trace_id(&slow), &["SELECT stock_movements"])
        .await;
    app.store.set_movement_index(true).await.unwrap();
    let plan = app.store.movement_plan("LAPTOP-1").await.unwrap();
    assert!(
        plan.iter().any(|l| l.contains("idx_stock_movements_sku")),
        "{plan:?}"
    );
    let fast = app
        .reserve(
            &reservation(&unique("ord"), &[("LAPTOP-1", 1)]),
            Some("inventory.slow_query"),
        )
        .await;
    let fast_spans = app
        .trace(&trace_id(&fast), &["SELECT stock_movements"])
        .await;
    println!(
        "inventory.slow_query (postgresql, 200k rows): SELECT stock_movements {:.2} ms unindexed, {:.2} ms indexed",
        duration(span(&slow_spans, "SELECT stock_movements")).as_secs_f64() * 1000.0,
        duration(span(&fast_spans, "SELECT stock_movements")).as_secs_f64() * 1000.0
    );

    // Event handling without Kafka: commit once, e-mail once, redelivery changes nothing.
    let handler = event_handler(&app.store).await;
    let event: Envelope<OrderPlaced> = Envelope::order_placed(
        OrderPlaced {
            order_id: order.clone(),
            items: vec![],
            total_cents: 1,
            charge_id: None,
        },
        0,
    );
    let outcome = handler.handle(&event, Scenario::Checkout).await.unwrap();
    assert_eq!(
        outcome,
        EventOutcome::Processed {
            reservation_committed: true
        }
    );
    assert_eq!(
        handler.handle(&event, Scenario::Checkout).await.unwrap(),
        EventOutcome::Duplicate
    );
    assert_eq!(app.count("processed_events").await, 1);
    assert_eq!(app.count("confirmation_emails").await, 1);
    assert_eq!(
        app.store
            .reservation_by_order(&order)
            .await
            .unwrap()
            .unwrap()
            .status,
        "committed"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_failed_email_step_is_redone_on_redelivery() {
    let Some(app) = spawn_postgres(
        "postgres_a_failed_email_step_is_redone_on_redelivery",
        |_| {},
    )
    .await
    else {
        return;
    };
    a_failed_email_step_is_redone_on_redelivery(&app).await;
    app.stop().await;
}
