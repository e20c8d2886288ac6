//! The storage-dependent behaviour again on PostgreSQL (same migrations, sqlx Any): idempotent
//! charges under concurrency and refunds. Skipped, with a printed reason, without a server on
//! 127.0.0.1:5432.

mod common;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_idempotent_charges_and_refunds() {
    let Some(app) = spawn_postgres("postgres_idempotent_charges_and_refunds").await else {
        return;
    };
    let order = unique("ord");
    let key = unique("key");
    let body = charge_body(&order, "tok_test_123");
    let responses = futures::future::join_all((0..6).map(|_| app.charge(&key, &body, None))).await;
    let mut ids = std::collections::HashSet::new();
    let mut tids = Vec::new();
    for resp in responses {
        assert_eq!(resp.status(), 201);
        tids.push(trace_id(&resp));
        let v: serde_json::Value = resp.json().await.unwrap();
        ids.insert(v["charge_id"].as_str().unwrap().to_owned());
    }
    assert_eq!(ids.len(), 1);
    assert_eq!(app.store.count_charges_for_order(&order).await.unwrap(), 1);
    // At least one of the six requests inserted the charge; every such DB span names PostgreSQL.
    let mut inserts = Vec::new();
    for tid in &tids {
        let spans = app.trace(tid, &["POST /charges"]).await;
        inserts.extend(spans.into_iter().filter(|s| s.name == "INSERT charges"));
    }
    assert!(
        !inserts.is_empty(),
        "no INSERT charges span in the six traces"
    );
    for db in &inserts {
        assert_eq!(attr(db, "db.system.name").as_deref(), Some("postgresql"));
    }

    let charge_id = ids.into_iter().next().unwrap();
    let refund =
        serde_json::json!({"charge_id": charge_id, "order_id": order, "amount_cents": 100});
    let first = app.refund(&refund).await;
    assert_eq!(first.status(), 201);
    let first: serde_json::Value = first.json().await.unwrap();
    let second: serde_json::Value = app.refund(&refund).await.json().await.unwrap();
    assert_eq!(first, second);
    assert_eq!(app.count("refunds").await, 1);

    let declined = app
        .charge(
            &unique("key"),
            &charge_body(&unique("ord"), "tok_declined"),
            None,
        )
        .await;
    assert_eq!(declined.status(), 402);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_abandoned_claims_are_taken_over_once() {
    let Some(app) = spawn_postgres_with("postgres_abandoned_claims_are_taken_over_once", |c| {
        c.charge_pending_lease_ms = 200;
    })
    .await
    else {
        return;
    };
    abandoned_claim_is_taken_over_and_charged_once(&app).await;
    claim_contract(&app.store).await;
    app.stop().await;
}
