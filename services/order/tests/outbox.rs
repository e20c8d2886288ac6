//! The transactional outbox over librdkafka's in-process MockCluster: the PRODUCER span continues the
//! checkout's trace, and with the broker down orders are still accepted and every event is published
//! exactly once when it comes back; a failed `mark_sent` only makes its own row go out again; a
//! corrupt stored trace context is logged with the row id.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::*;
use contracts::events::{Envelope, OrderPlaced};
use contracts::orders::Order;
use opentelemetry::trace::SpanKind;
use order_service::domain::repository::Repository;
use order_service::outbox::{Relay, RelayConfig};
use rdkafka::mocking::MockCluster;
use sqlx::Row;
use std::sync::Arc;
use tokio::sync::Notify;

fn header<'a>(headers: &'a [(String, String)], key: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn published_event_continues_the_checkout_trace() {
    let cluster = MockCluster::new(1).expect("mock cluster");
    cluster.create_topic("orders", 1, 1).expect("topic");
    let brokers = cluster.bootstrap_servers();
    let stack = Stack::sqlite(Some(&brokers)).await;

    let resp = stack
        .place(&order_body("LAPTOP-1", 2, "tok_test_123"), Some("checkout"))
        .await;
    assert_eq!(resp.status(), 201);
    let trace_id = trace_id(&resp);
    let order: Order = resp.json().await.unwrap();

    let spans = stack.trace(&trace_id, &["send orders"]).await;
    let process = span(&spans, "process_order");
    let producer = child(&spans, process, "send orders");
    assert_eq!(kind(producer), SpanKind::Producer);
    assert_eq!(attr(producer, "messaging.system").as_deref(), Some("kafka"));
    assert_eq!(
        attr(producer, "messaging.destination.name").as_deref(),
        Some("orders")
    );
    assert!(!is_error(producer));

    let messages = consume_all(&brokers, "orders", 1, Duration::from_millis(500)).await;
    assert_eq!(messages.len(), 1);
    let (key, payload, headers) = &messages[0];
    assert_eq!(key, &order.id);
    let event: Envelope<OrderPlaced> = serde_json::from_str(payload).unwrap();
    assert_eq!(event.r#type, "order.placed");
    assert_eq!(event.version, 1);
    assert_eq!(event.data.order_id, order.id);
    assert_eq!(event.data.total_cents, 2 * LAPTOP_PRICE);
    assert_eq!(event.data.charge_id, order.charge_id);
    let traceparent = header(headers, "traceparent").expect("traceparent header");
    assert!(
        traceparent.contains(&trace_id),
        "the message carries the checkout's trace: {traceparent}"
    );
    assert!(
        traceparent.contains(&producer.span_context.span_id().to_string()),
        "its parent is the PRODUCER span"
    );
    assert_eq!(
        header(headers, "baggage"),
        Some("tracelab.scenario=checkout"),
        "the scenario decision travels over Kafka"
    );

    assert!(
        eventually(Duration::from_secs(10), || async {
            count_where(&stack, "sent_at_ms IS NOT NULL").await == 1
        })
        .await,
        "the row is marked sent"
    );
}

async fn count_where(stack: &Stack, condition: &str) -> i64 {
    let sql = format!("SELECT CAST(COUNT(*) AS BIGINT) AS n FROM outbox WHERE {condition}");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_one(&stack.order.pool)
        .await
        .unwrap()
        .try_get::<i64, _>("n")
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn broker_outage_loses_and_duplicates_nothing() {
    const ORDERS: usize = 5;
    let cluster = MockCluster::new(1).expect("mock cluster");
    cluster.create_topic("orders", 1, 1).expect("topic");
    let brokers = cluster.bootstrap_servers();
    cluster.broker_down(1).expect("broker down");
    let stack = Stack::sqlite(Some(&brokers)).await;

    let mut order_ids = HashSet::new();
    let mut trace_ids = Vec::new();
    for _ in 0..ORDERS {
        let resp = stack
            .place(&order_body("MOUSE-1", 1, "tok_test_123"), None)
            .await;
        assert_eq!(
            resp.status(),
            201,
            "orders are accepted while Kafka is down"
        );
        trace_ids.push(trace_id(&resp));
        order_ids.insert(resp.json::<Order>().await.unwrap().id);
    }
    // Every row was tried at least once and failed: it stays pending.
    assert!(
        eventually(Duration::from_secs(60), || async {
            count_where(&stack, "sent_at_ms IS NULL AND attempts > 0").await == ORDERS as i64
        })
        .await,
        "the relay attempted every row while the broker was down"
    );
    assert_eq!(count_where(&stack, "sent_at_ms IS NOT NULL").await, 0);

    cluster.broker_up(1).expect("broker up");
    assert!(
        eventually(Duration::from_secs(60), || async {
            count_where(&stack, "sent_at_ms IS NULL").await == 0
        })
        .await,
        "every row is published once the broker is back"
    );

    let messages = consume_all(&brokers, "orders", ORDERS, Duration::from_secs(2)).await;
    assert_eq!(messages.len(), ORDERS, "none lost, none duplicated");
    let event_ids: HashSet<_> = messages
        .iter()
        .map(|(_, payload, _)| {
            serde_json::from_str::<Envelope<OrderPlaced>>(payload)
                .unwrap()
                .id
        })
        .collect();
    assert_eq!(event_ids.len(), ORDERS);
    let keys: HashSet<String> = messages.iter().map(|(k, _, _)| k.clone()).collect();
    assert_eq!(keys, order_ids);

    // The failed attempts are visible in each checkout's trace, and the final send is healthy.
    let spans = stack.trace(&trace_ids[0], &["send orders"]).await;
    let process = span(&spans, "process_order");
    let sends: Vec<_> = children(&spans, process)
        .into_iter()
        .filter(|s| s.name == "send orders")
        .collect();
    assert!(
        sends.iter().any(|s| is_error(s)),
        "a failed attempt is recorded"
    );
    assert!(
        eventually(Duration::from_secs(10), || async {
            let spans = stack.telemetry.spans_for_trace(&trace_ids[0]);
            spans
                .iter()
                .any(|s| s.name == "send orders" && !is_error(s))
        })
        .await,
        "the successful publish continues the same trace"
    );
}

/// A relay over a fresh in-memory order database (migrated), without the HTTP app.
async fn bare_relay(brokers: &str) -> (Relay, sqlx::AnyPool) {
    let pool = service_kit::DatabaseArgs::for_tests(&memory_url("order"))
        .connect(&order_service::db::MIGRATOR, "order-service")
        .await
        .expect("order database");
    let repo = Repository::new(pool.clone(), "sqlite");
    let relay = Relay::new(
        repo,
        Arc::new(Notify::new()),
        &RelayConfig {
            brokers: brokers.to_owned(),
            message_timeout: Duration::from_secs(5),
            poll_interval: Duration::from_millis(100),
            batch_size: 100,
        },
    )
    .expect("relay");
    (relay, pool)
}

async fn insert_row(pool: &sqlx::AnyPool, id: &str, created_at_ms: i64, trace_context: &str) {
    sqlx::query(
        "INSERT INTO outbox (id, aggregate_id, topic, message_key, event_type, payload, \
         trace_context, created_at_ms, sent_at_ms, attempts, last_error) \
         VALUES ($1, $2, 'orders', $2, 'order.placed', $3, $4, $5, NULL, 0, NULL)",
    )
    .bind(id)
    .bind(format!("ord_{id}"))
    .bind(format!("{{\"id\":\"{id}\"}}"))
    .bind(trace_context)
    .bind(created_at_ms)
    .execute(pool)
    .await
    .expect("insert outbox row");
}

async fn sent(pool: &sqlx::AnyPool, id: &str) -> bool {
    sqlx::query("SELECT sent_at_ms FROM outbox WHERE id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap()
        .try_get::<Option<i64>, _>("sent_at_ms")
        .unwrap()
        .is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_mark_sent_resends_only_its_own_row() {
    telemetry::testing::init();
    let cluster = MockCluster::new(1).expect("mock cluster");
    cluster.create_topic("orders", 1, 1).expect("topic");
    let brokers = cluster.bootstrap_servers();
    let (relay, pool) = bare_relay(&brokers).await;
    for (i, id) in ["evt-1", "evt-2", "evt-3"].iter().enumerate() {
        insert_row(&pool, id, i as i64, "{}").await;
    }
    // The database refuses to mark evt-2 sent (a real failed UPDATE, injected with a trigger).
    sqlx::query(
        "CREATE TRIGGER fail_mark_sent BEFORE UPDATE OF sent_at_ms ON outbox \
         WHEN NEW.id = 'evt-2' AND NEW.sent_at_ms IS NOT NULL \
         BEGIN SELECT RAISE(ABORT, 'injected mark_sent failure'); END",
    )
    .execute(&pool)
    .await
    .unwrap();

    let err = relay.publish_batch().await.unwrap_err();
    assert!(format!("{err:#}").contains("evt-2"), "{err:#}");
    assert!(
        sent(&pool, "evt-1").await && sent(&pool, "evt-3").await,
        "the others are marked"
    );
    assert!(!sent(&pool, "evt-2").await);

    sqlx::query("DROP TRIGGER fail_mark_sent")
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(
        relay.publish_batch().await.unwrap(),
        1,
        "only evt-2 goes out again"
    );
    assert!(sent(&pool, "evt-2").await);
    assert_eq!(relay.publish_batch().await.unwrap(), 0);

    let messages = consume_all(&brokers, "orders", 4, Duration::from_millis(500)).await;
    let count = |id: &str| messages.iter().filter(|(_, p, _)| p.contains(id)).count();
    assert_eq!(
        (count("evt-1"), count("evt-2"), count("evt-3")),
        (1, 2, 1),
        "evt-2 twice (acknowledged, then not marked), the others once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_corrupt_trace_context_is_logged_with_the_row_id() {
    let telemetry = telemetry::testing::init();
    let cluster = MockCluster::new(1).expect("mock cluster");
    cluster.create_topic("orders", 1, 1).expect("topic");
    let brokers = cluster.bootstrap_servers();
    let (relay, pool) = bare_relay(&brokers).await;
    let bad_json = format!("evt-json-{}", uuid::Uuid::new_v4().simple());
    let bad_parent = format!("evt-parent-{}", uuid::Uuid::new_v4().simple());
    insert_row(&pool, &bad_json, 1, "{not json").await;
    insert_row(&pool, &bad_parent, 2, r#"{"traceparent":"00-garbage"}"#).await;
    assert_eq!(
        relay.publish_batch().await.unwrap(),
        2,
        "the events still go out"
    );

    const WARNING: &str =
        "outbox row has a corrupt trace context; publishing it without its checkout's trace";
    for id in [&bad_json, &bad_parent] {
        let id = id.clone();
        let telemetry = telemetry.clone();
        let producer = tokio::task::spawn_blocking(move || {
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            loop {
                let found = telemetry.all_spans().into_iter().find(|s| {
                    s.name == "send orders"
                        && attr(s, "messaging.message.id").as_deref() == Some(id.as_str())
                });
                if found.is_some() || std::time::Instant::now() >= deadline {
                    return found;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        })
        .await
        .unwrap()
        .expect("the PRODUCER span");
        assert!(is_root(&producer), "no parent could be recovered");
        assert!(
            telemetry::testing::event_names(&producer)
                .iter()
                .any(|n| n == WARNING),
            "{:?}",
            telemetry::testing::event_names(&producer)
        );
        assert_eq!(
            telemetry::testing::event_attr(&producer, WARNING, "outbox.id").as_deref(),
            Some(attr(&producer, "messaging.message.id").unwrap().as_str())
        );
    }
}
