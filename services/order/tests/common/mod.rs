//! Test harness for order-service: the real order-service and payment-service apps on port 0 (SQLite
//! in memory, or throw-away PostgreSQL databases), an inventory-service, librdkafka's MockCluster,
//! and span helpers over the in-memory exporter.
// Each test binary uses a different part of the harness.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use opentelemetry::trace::SpanKind;
use opentelemetry_sdk::trace::SpanData;
use rdkafka::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use sqlx::{AnyPool, AssertSqlSafe, Row};
#[allow(unused_imports)] // each test binary uses a different part of the harness
pub use storage::testing::{drop_database, temp_database as postgres_database};
use telemetry::testing::TestTelemetry;
#[allow(unused_imports)]
pub use telemetry::testing::{
    attribute as attr, child, children, duration, eventually, is_child_of, is_error, is_root,
    span_named as span, trace_id, wait_for_names,
};
use tokio::sync::oneshot;

pub const LAPTOP_PRICE: i64 = 129_900;

/// A running service; stops when dropped (its shutdown sender goes away).
pub struct Running {
    pub base: String,
    pub port: u16,
    _shutdown: oneshot::Sender<()>,
}

fn spawn_server<F>(port: u16, run: impl FnOnce(oneshot::Receiver<()>) -> F) -> Running
where
    F: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let (tx, rx) = oneshot::channel();
    tokio::spawn(run(rx));
    Running {
        base: format!("http://127.0.0.1:{port}"),
        port,
        _shutdown: tx,
    }
}

pub fn memory_url(service: &str) -> String {
    format!(
        "sqlite:file:{service}_{}?mode=memory&cache=shared",
        uuid::Uuid::new_v4().simple()
    )
}

/// card-provider, the simulator payment-service and inventory's mail step call; its base URL.
pub async fn provider() -> String {
    card_provider::spawn(card_provider::Config::for_tests())
        .await
        .expect("start card-provider")
}

/// The real payment-service, calling its own card-provider.
pub async fn payment(database_url: &str) -> Running {
    payment_with(payment_service::Config::for_tests(database_url, None))
        .await
        .0
}

/// The real payment-service with `config`, and its store (tests count charges through it).
pub async fn payment_with(
    mut config: payment_service::Config,
) -> (Running, payment_service::store::Store) {
    // Unless the test chose a provider, each payment-service gets its own simulator.
    if config.provider.provider_url
        == payment_service::config::ProviderConfig::default().provider_url
    {
        config.provider.provider_url = provider().await;
    }
    let app = payment_service::Application::build(config)
        .await
        .expect("build payment-service");
    let port = app.port();
    let store = app.store().clone();
    let running = spawn_server(port, |rx| {
        app.run_until_stopped(async {
            let _ = rx.await;
        })
    });
    (running, store)
}

/// The real inventory-service (its Kafka consumer runs when `kafka` is given).
pub async fn inventory(database_url: &str, kafka: Option<&str>) -> Running {
    let mut config = inventory_service::Config::for_tests(database_url, kafka);
    config.mail_url = provider().await;
    let app = inventory_service::Application::build(config)
        .await
        .expect("build inventory-service");
    let port = app.port();
    spawn_server(port, |rx| {
        app.run_until_stopped(async {
            let _ = rx.await;
        })
    })
}

pub struct OrderApp {
    pub running: Running,
    pub pool: AnyPool,
}

pub async fn order(config: order_service::Config) -> OrderApp {
    let app = order_service::Application::build(config)
        .await
        .expect("build order-service");
    let port = app.port();
    let pool = app.pool();
    let running = spawn_server(port, |rx| {
        app.run_until_stopped(async {
            let _ = rx.await;
        })
    });
    OrderApp { running, pool }
}

/// order-service + payment-service + inventory-service on SQLite, wired together.
pub struct Stack {
    pub telemetry: TestTelemetry,
    pub order: OrderApp,
    pub payment: Running,
    /// payment-service's storage: how tests see how many charges an order got.
    pub charges: payment_service::store::Store,
    pub inventory: Running,
    pub client: reqwest::Client,
}

impl Stack {
    pub async fn sqlite(kafka: Option<&str>) -> Self {
        Self::with(&memory_url("order"), kafka, |_| {}).await
    }

    pub async fn with(
        order_db: &str,
        kafka: Option<&str>,
        tweak: impl FnOnce(&mut order_service::Config),
    ) -> Self {
        Self::with_payment(order_db, kafka, tweak, |_| {}).await
    }

    /// [`Stack::with`], with payment-service's configuration tweaked too.
    pub async fn with_payment(
        order_db: &str,
        kafka: Option<&str>,
        tweak: impl FnOnce(&mut order_service::Config),
        tweak_payment: impl FnOnce(&mut payment_service::Config),
    ) -> Self {
        let telemetry = telemetry::testing::init();
        let mut payment_config = payment_service::Config::for_tests(&memory_url("payment"), None);
        tweak_payment(&mut payment_config);
        let (payment, charges) = payment_with(payment_config).await;
        let inventory = inventory(&memory_url("inventory"), kafka).await;
        let mut config = order_service::Config::for_tests(order_db, kafka);
        config.payment_service_url = payment.base.clone();
        config.inventory_service_url = inventory.base.clone();
        tweak(&mut config);
        let order = order(config).await;
        Self {
            telemetry,
            order,
            payment,
            charges,
            inventory,
            client: reqwest::Client::new(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.order.running.base)
    }

    /// POSTs an order, optionally forcing a scenario through the W3C baggage header (what the gateway
    /// sends).
    pub async fn place(
        &self,
        body: &serde_json::Value,
        scenario: Option<&str>,
    ) -> reqwest::Response {
        let mut req = self.client.post(self.url("/orders")).json(body);
        if let Some(s) = scenario {
            req = req.header("baggage", format!("tracelab.scenario={s}"));
        }
        req.send().await.expect("POST /orders")
    }

    /// POSTs an order with an `Idempotency-Key` (and optionally a forced scenario).
    pub async fn place_with_key(
        &self,
        key: &str,
        body: &serde_json::Value,
        scenario: Option<&str>,
    ) -> reqwest::Response {
        let mut req = self
            .client
            .post(self.url("/orders"))
            .header("idempotency-key", key)
            .json(body);
        if let Some(s) = scenario {
            req = req.header("baggage", format!("tracelab.scenario={s}"));
        }
        req.send().await.expect("POST /orders")
    }

    pub async fn count(&self, table: &str) -> i64 {
        count(&self.order.pool, table).await
    }

    /// How many charges payment-service holds for `order_id`.
    pub async fn charges_for(&self, order_id: &str) -> i64 {
        self.charges
            .count_charges_for_order(order_id)
            .await
            .expect("count charges")
    }

    pub async fn trace(&self, trace_id: &str, names: &[&str]) -> Vec<SpanData> {
        wait_for_names(&self.telemetry, trace_id, names).await
    }
}

pub fn order_body(sku: &str, qty: i64, token: &str) -> serde_json::Value {
    serde_json::json!({
        "items": [{"sku": sku, "qty": qty}],
        "payment": {"method": "card", "token": token},
    })
}

pub async fn count(pool: &AnyPool, table: &str) -> i64 {
    let sql = format!("SELECT CAST(COUNT(*) AS BIGINT) AS n FROM {table}");
    let row = sqlx::query(AssertSqlSafe(sql))
        .fetch_one(pool)
        .await
        .expect("count rows");
    row.try_get::<i64, _>("n").unwrap()
}

pub fn kind(span: &SpanData) -> SpanKind {
    span.span_kind.clone()
}

/// A TCP listener that accepts connections and never answers (for timeout tests).
pub async fn silent_listener() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        // Bounded: a test opens a handful of connections; the task dies with the runtime.
        while held.len() < 64 {
            match listener.accept().await {
                Ok((socket, _)) => held.push(socket),
                Err(_) => break,
            }
        }
        std::future::pending::<()>().await;
    });
    format!("http://{addr}")
}

/// Consumes `topic` from the beginning (manual assignment, no group) until `expected` messages arrived
/// or nothing more came for `quiet` after that; returns (key, payload, headers) of each message.
pub async fn consume_all(
    brokers: &str,
    topic: &str,
    expected: usize,
    quiet: Duration,
) -> Vec<(String, String, Vec<(String, String)>)> {
    use rdkafka::message::Headers;
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set(
            "group.id",
            format!("test-{}", uuid::Uuid::new_v4().simple()),
        )
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("test consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let wait = if out.len() >= expected {
            quiet
        } else {
            deadline.saturating_duration_since(Instant::now())
        };
        if wait.is_zero() {
            break;
        }
        match tokio::time::timeout(wait, consumer.recv()).await {
            Ok(Ok(msg)) => {
                let key = String::from_utf8_lossy(msg.key().unwrap_or_default()).into_owned();
                let payload =
                    String::from_utf8_lossy(msg.payload().unwrap_or_default()).into_owned();
                let headers = msg
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|h| {
                                (
                                    h.key.to_owned(),
                                    String::from_utf8_lossy(h.value.unwrap_or_default())
                                        .into_owned(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                out.push((key, payload, headers));
            }
            Ok(Err(err)) => panic!("consuming {topic}: {err}"),
            Err(_) => break,
        }
    }
    out
}

// ---- Idempotency-Key scenarios, run on SQLite (tests/idempotency.rs) and PostgreSQL
// (tests/postgres.rs).

/// The stored Idempotency-Key row of the anonymous caller: (status, order_id, response_status).
pub async fn key_row(pool: &AnyPool, key: &str) -> Option<(String, String, Option<i64>)> {
    sqlx::query(
        "SELECT status, order_id, response_status FROM idempotency_keys \
         WHERE owner = '' AND idempotency_key = $1",
    )
    .bind(key)
    .fetch_optional(pool)
    .await
    .expect("read idempotency_keys")
    .map(|r| {
        (
            r.try_get("status").unwrap(),
            r.try_get("order_id").unwrap(),
            r.try_get("response_status").unwrap(),
        )
    })
}

pub fn replayed(resp: &reqwest::Response) -> bool {
    resp.headers()
        .get("idempotent-replayed")
        .is_some_and(|v| v == "true")
}

/// Same key + same body: the same 201 and order, charged once; same key + another body: 422; the
/// same key from another caller is another key.
pub async fn key_replays_and_refuses_reuse(stack: &Stack) {
    let key = format!("key-{}", uuid::Uuid::new_v4().simple());
    let body = order_body("MOUSE-1", 2, "tok_test_123");
    let first = stack.place_with_key(&key, &body, None).await;
    assert_eq!(first.status(), 201);
    assert!(!replayed(&first));
    let first_text = first.text().await.unwrap();
    let order: contracts::orders::Order = serde_json::from_str(&first_text).unwrap();

    let second = stack.place_with_key(&key, &body, None).await;
    assert_eq!(second.status(), 201, "the retry gets the first status");
    assert!(replayed(&second), "and says it is a replay");
    assert_eq!(second.text().await.unwrap(), first_text, "byte for byte");
    assert_eq!(stack.count("orders").await, 1);
    assert_eq!(stack.count("outbox").await, 1, "one event");
    assert_eq!(stack.charges_for(&order.id).await, 1, "charged once");
    assert_eq!(
        key_row(&stack.order.pool, &key).await,
        Some(("completed".into(), order.id.clone(), Some(201)))
    );

    let mut other = body.clone();
    other["items"][0]["qty"] = serde_json::json!(3);
    let reused = stack.place_with_key(&key, &other, None).await;
    assert_eq!(reused.status(), 422);
    let err: serde_json::Value = reused.json().await.unwrap();
    assert_eq!(err["error"]["code"], "idempotency_key_reused");
    // The key itself may be masked by card-data redaction (it can hold a run of 8 digits).
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Idempotency-Key")
    );
    assert_eq!(stack.count("orders").await, 1, "nothing new was written");

    // Keys belong to the caller the gateway authenticated.
    let bob = stack
        .client
        .post(stack.url("/orders"))
        .header("idempotency-key", &key)
        .header("x-tracelab-user", "bob")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(bob.status(), 201);
    assert!(!replayed(&bob));
    let bobs: contracts::orders::Order = bob.json().await.unwrap();
    assert_ne!(bobs.id, order.id, "another caller's key is another order");
    assert_eq!(stack.count("orders").await, 2);
}

/// Concurrent duplicates while the first request is in flight (payment.slow keeps it there ~1.2 s)
/// wait for it and all answer with its order; one checkout ran, one charge.
pub async fn concurrent_duplicates_share_one_order(stack: &Stack) {
    let key = format!("key-{}", uuid::Uuid::new_v4().simple());
    let body = order_body("CABLE-1", 1, "tok_test_123");
    let responses = futures::future::join_all(
        (0..4).map(|_| stack.place_with_key(&key, &body, Some("payment.slow"))),
    )
    .await;
    let mut ids = std::collections::HashSet::new();
    let mut fresh = 0;
    for resp in responses {
        assert_eq!(resp.status(), 201);
        if !replayed(&resp) {
            fresh += 1;
        }
        ids.insert(resp.json::<contracts::orders::Order>().await.unwrap().id);
    }
    assert_eq!(fresh, 1, "exactly one request ran the checkout");
    assert_eq!(ids.len(), 1, "every duplicate got the same order: {ids:?}");
    let id = ids.into_iter().next().unwrap();
    assert_eq!(stack.charges_for(&id).await, 1);
}

/// A key left `in_progress` by a request that died (its row written directly, locked a minute ago,
/// no order stored yet) is taken over by a retry once the lease ran out: the retry creates the order
/// bound to the key and charges it once. `stack` must run with a short `IDEMPOTENCY_LEASE_MS`.
pub async fn crashed_key_is_taken_over(stack: &Stack) {
    let key = format!("key-{}", uuid::Uuid::new_v4().simple());
    let body = order_body("KEYBOARD-1", 1, "tok_test_123");
    let request: contracts::orders::CreateOrderRequest =
        serde_json::from_value(body.clone()).unwrap();
    let order_id = format!("ord_crashed_{}", uuid::Uuid::new_v4().simple());
    let long_ago = order_service::db::now_ms() - 60_000;
    sqlx::query(
        "INSERT INTO idempotency_keys (owner, idempotency_key, request_fingerprint, order_id, \
         status, lock_id, locked_at_ms, response_status, response_body, created_at_ms, \
         updated_at_ms) VALUES ('', $1, $2, $3, 'in_progress', 'dead-request', $4, NULL, NULL, $4, $4)",
    )
    .bind(&key)
    .bind(order_service::domain::idempotency::fingerprint(&request))
    .bind(&order_id)
    .bind(long_ago)
    .execute(&stack.order.pool)
    .await
    .expect("insert an abandoned key");

    let retry = stack.place_with_key(&key, &body, None).await;
    assert_eq!(retry.status(), 201);
    assert!(!replayed(&retry));
    let order: contracts::orders::Order = retry.json().await.unwrap();
    assert_eq!(
        order.id, order_id,
        "the retry resumes the order bound to the key"
    );
    assert_eq!(order.status, contracts::orders::OrderStatus::Confirmed);
    assert_eq!(stack.charges_for(&order_id).await, 1);
    assert_eq!(
        key_row(&stack.order.pool, &key).await,
        Some(("completed".into(), order_id.clone(), Some(201)))
    );
    let again = stack.place_with_key(&key, &body, None).await;
    assert_eq!(again.status(), 201);
    assert!(replayed(&again));
    assert_eq!(stack.charges_for(&order_id).await, 1);
}
