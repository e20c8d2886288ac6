//! Scenario inventory.slow_query: a real unindexed aggregation over the seeded movement history,
//! visible as the `SELECT stock_movements` db span; the fix (the index) changes the query plan from
//! a full scan to an index search. Asserted on the plan, never on timing; timings are printed.

mod common;

use common::*;
use inventory_service::routes::admin::SlowQueryState;

async fn admin(app: &TestApp, indexed: Option<bool>) -> SlowQueryState {
    let url = format!("{}/admin/slow-query", app.base);
    let resp = match indexed {
        Some(indexed) => app
            .client
            .put(&url)
            .json(&serde_json::json!({"indexed": indexed}))
            .send()
            .await
            .unwrap(),
        None => app.client.get(&url).send().await.unwrap(),
    };
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

async fn audited_reservation(app: &TestApp) -> (std::time::Duration, std::time::Duration) {
    let resp = app
        .reserve(
            &reservation(&unique("ord"), &[("LAPTOP-1", 1)]),
            Some("inventory.slow_query"),
        )
        .await;
    assert_eq!(resp.status(), 201);
    let spans = app
        .trace(
            &trace_id(&resp),
            &["POST /reservations", "reserve", "SELECT stock_movements"],
        )
        .await;
    let reserve = span(&spans, "reserve");
    let query = span(&spans, "SELECT stock_movements");
    assert!(is_child_of(query, reserve));
    assert_eq!(
        attr(query, "db.collection.name").as_deref(),
        Some("stock_movements")
    );
    assert!(
        attr(query, "db.query.text")
            .unwrap()
            .contains("FROM stock_movements WHERE sku = $1")
    );
    assert_eq!(
        attr(reserve, "tracelab.scenario").as_deref(),
        Some("inventory.slow_query")
    );
    (
        duration(query),
        duration(span(&spans, "POST /reservations")),
    )
}

pub fn full_scan(plan: &[String]) -> bool {
    plan.iter()
        .any(|l| l.starts_with("SCAN stock_movements") || l.contains("Seq Scan on stock_movements"))
}

pub fn uses_index(plan: &[String]) -> bool {
    plan.iter().any(|l| l.contains("idx_stock_movements_sku"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_index_turns_the_full_scan_into_an_index_search() {
    // The production-size history, so the printed timings mean something.
    let app = spawn_sqlite_with(|c| c.seed_movements = 200_000).await;
    assert!(app.count("stock_movements").await >= 200_000);

    let before = admin(&app, None).await;
    assert!(!before.indexed);
    assert!(
        full_scan(&before.plan),
        "unindexed plan is a full scan: {:?}",
        before.plan
    );
    assert!(!uses_index(&before.plan));
    let (slow_query, slow_request) = audited_reservation(&app).await;

    let after = admin(&app, Some(true)).await;
    assert!(after.indexed);
    assert!(
        uses_index(&after.plan),
        "indexed plan uses the index: {:?}",
        after.plan
    );
    assert!(!full_scan(&after.plan));
    let (fast_query, fast_request) = audited_reservation(&app).await;

    println!(
        "inventory.slow_query (sqlite, 200k rows): SELECT stock_movements {:.2} ms of POST /reservations {:.2} ms unindexed; {:.2} ms of {:.2} ms indexed",
        slow_query.as_secs_f64() * 1000.0,
        slow_request.as_secs_f64() * 1000.0,
        fast_query.as_secs_f64() * 1000.0,
        fast_request.as_secs_f64() * 1000.0,
    );

    let dropped = admin(&app, Some(false)).await;
    assert!(
        !dropped.indexed && full_scan(&dropped.plan),
        "the bug can be switched back on: {dropped:?}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fix_can_be_applied_from_the_environment() {
    let app = spawn_sqlite_with(|c| c.fix_slow_query = Some(true)).await;
    let state = admin(&app, None).await;
    assert!(state.indexed);
    assert!(uses_index(&state.plan), "{:?}", state.plan);
    app.stop().await;
}
