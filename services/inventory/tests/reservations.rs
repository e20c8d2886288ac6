//! POST /reservations end to end on the real app: the reserve / UPDATE stock span shape, one
//! transaction, 409 out_of_stock (real and forced) writing nothing, idempotency, bad input.

mod common;

use common::*;
use opentelemetry::trace::SpanKind;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reservation_decrements_stock_with_the_seed_spans() {
    let app = spawn_sqlite().await;
    let before_laptop = app.stock("LAPTOP-1").await;
    let before_mouse = app.stock("MOUSE-1").await;
    let order = unique("ord");
    let resp = app
        .reserve(
            &reservation(&order, &[("LAPTOP-1", 1), ("MOUSE-1", 2)]),
            None,
        )
        .await;
    assert_eq!(resp.status(), 201);
    let tid = trace_id(&resp);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["order_id"], order.as_str());
    assert_eq!(body["status"], "reserved");
    assert!(body["reservation_id"].as_str().unwrap().starts_with("res_"));

    assert_eq!(
        app.stock("LAPTOP-1").await,
        (before_laptop.0 - 1, before_laptop.1 + 1)
    );
    assert_eq!(
        app.stock("MOUSE-1").await,
        (before_mouse.0 - 2, before_mouse.1 + 2)
    );

    let spans = app
        .trace(&tid, &["POST /reservations", "reserve", "UPDATE stock"])
        .await;
    let server = span(&spans, "POST /reservations");
    let reserve = span(&spans, "reserve");
    assert_eq!(server.span_kind, SpanKind::Server);
    assert_eq!(reserve.span_kind, SpanKind::Internal);
    assert!(is_child_of(reserve, server));
    let updates: Vec<_> = spans.iter().filter(|s| s.name == "UPDATE stock").collect();
    assert_eq!(updates.len(), 2, "one UPDATE per SKU");
    for update in updates {
        assert!(is_child_of(update, reserve));
        assert_eq!(update.span_kind, SpanKind::Client);
        assert_eq!(attr(update, "db.system.name").as_deref(), Some("sqlite"));
        assert_eq!(attr(update, "db.operation.name").as_deref(), Some("UPDATE"));
        assert_eq!(attr(update, "db.collection.name").as_deref(), Some("stock"));
        assert!(
            attr(update, "db.query.text")
                .unwrap()
                .starts_with("UPDATE stock SET available")
        );
    }
    assert_eq!(attr(reserve, "order.id").as_deref(), Some(order.as_str()));
    assert_eq!(attr(reserve, "inventory.units").as_deref(), Some("3"));
    assert_eq!(
        attr(reserve, "tracelab.scenario").as_deref(),
        Some("checkout")
    );
    assert!(!is_error(reserve));
    assert!(
        spans.iter().all(|s| s.name != "SELECT stock_movements"),
        "the audit query only runs under inventory.slow_query"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retried_reservation_returns_the_first_and_reserves_once() {
    let app = spawn_sqlite().await;
    let before = app.stock("KEYBOARD-1").await;
    let order = unique("ord");
    let body = reservation(&order, &[("KEYBOARD-1", 2)]);
    let first: serde_json::Value = app.reserve(&body, None).await.json().await.unwrap();
    let retries = futures::future::join_all((0..4).map(|_| app.reserve(&body, None))).await;
    for resp in retries {
        assert_eq!(resp.status(), 201);
        assert_eq!(resp.headers()["idempotent-replayed"], "true");
        let again: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(again, first);
    }
    assert_eq!(
        app.stock("KEYBOARD-1").await.0,
        before.0 - 2,
        "stock taken once"
    );
    assert_eq!(app.count("reservations").await, 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_stock_is_409_and_writes_nothing() {
    let app = spawn_sqlite().await;
    let laptop = app.stock("LAPTOP-1").await;
    let movements = app.count("stock_movements").await;

    // A real shortage: SOLDOUT-1 has none. LAPTOP-1 comes first in SKU order and is rolled back.
    let resp = app
        .reserve(
            &reservation(&unique("ord"), &[("SOLDOUT-1", 1), ("LAPTOP-1", 1)]),
            None,
        )
        .await;
    assert_eq!(resp.status(), 409);
    let tid = trace_id(&resp);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "out_of_stock");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("SOLDOUT-1")
    );
    let spans = app.trace(&tid, &["POST /reservations", "reserve"]).await;
    let reserve = span(&spans, "reserve");
    assert!(is_error(reserve));
    assert_eq!(
        event_attr(reserve, "exception", "exception.type").as_deref(),
        Some("OutOfStock")
    );

    assert_eq!(app.stock("LAPTOP-1").await, laptop, "stock unchanged");
    assert_eq!(app.count("reservations").await, 0);
    assert_eq!(app.count("reservation_items").await, 0);
    assert_eq!(app.count("stock_movements").await, movements);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_4xx_json_and_writes_nothing() {
    let app = spawn_sqlite().await;
    let url = format!("{}/reservations", app.base);
    let cases: Vec<(reqwest::RequestBuilder, u16, &str)> = vec![
        (
            app.client
                .post(&url)
                .header("content-type", "application/json")
                .body("{\"order_id\": "),
            400,
            "invalid_json",
        ),
        (
            app.client
                .post(&url)
                .json(&serde_json::json!({"items": []})),
            422,
            "validation_failed",
        ),
        (
            app.client.post(&url).json(&reservation("ord_1", &[])),
            422,
            "validation_failed",
        ),
        (
            app.client
                .post(&url)
                .json(&reservation("ord_1", &[("LAPTOP-1", 0)])),
            422,
            "validation_failed",
        ),
        (
            app.client
                .post(&url)
                .json(&reservation("ord_1", &[("LAPTOP-1", -3)])),
            422,
            "validation_failed",
        ),
        (
            app.client
                .post(&url)
                .json(&reservation("ord_1", &[("LAPTOP-1", 1_000_000)])),
            422,
            "validation_failed",
        ),
        (
            app.client
                .post(&url)
                .json(&reservation("ord_1", &[("NOPE-9", 1)])),
            422,
            "unknown_sku",
        ),
        (
            app.client
                .post(&url)
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
    }
    assert_eq!(app.count("reservations").await, 0);
    assert_eq!(app.count("reservation_items").await, 0);
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

/// `inventory.out_of_stock` at run time: `PUT /admin/stock` empties a shelf, and the same stock
/// check refuses the next reservation of it; restocking makes it reservable again. The scenario
/// header only labels the request: a stocked SKU under it is reserved as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_emptied_shelf_is_out_of_stock_and_a_restock_fixes_it() {
    let app = spawn_sqlite().await;
    let set = |available: i64| {
        app.client
            .put(format!("{}/admin/stock", app.base))
            .json(&serde_json::json!({"sku": "MOUSE-1", "available": available}))
            .send()
    };
    assert_eq!(set(0).await.unwrap().status(), 200);
    let level: serde_json::Value = app
        .client
        .get(format!("{}/stock/MOUSE-1", app.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(level["available"], 0, "{level}");
    let resp = app
        .reserve(
            &reservation(&unique("ord"), &[("MOUSE-1", 1)]),
            Some("inventory.out_of_stock"),
        )
        .await;
    assert_eq!(resp.status(), 409);
    let tid = trace_id(&resp);
    let spans = app.trace(&tid, &["reserve", "UPDATE stock"]).await;
    assert!(is_error(span(&spans, "reserve")));
    assert_eq!(
        attr(span(&spans, "reserve"), "tracelab.scenario").as_deref(),
        Some("inventory.out_of_stock")
    );

    assert_eq!(set(5).await.unwrap().status(), 200);
    let resp = app
        .reserve(
            &reservation(&unique("ord"), &[("MOUSE-1", 1)]),
            Some("inventory.out_of_stock"),
        )
        .await;
    assert_eq!(
        resp.status(),
        201,
        "restocked: the header alone refuses nothing"
    );
    assert_eq!(app.stock("MOUSE-1").await.0, 4);

    let unknown = app
        .client
        .put(format!("{}/admin/stock", app.base))
        .json(&serde_json::json!({"sku": "NOPE-1", "available": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 422);
    app.stop().await;
}
