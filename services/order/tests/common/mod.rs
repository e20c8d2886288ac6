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
    let mut config = payment_service::Config::for_tests(database_url, None);
    config.provider.provider_url = provider().await;
    let app = payment_service::Application::build(config)
        .await
        .expect("build payment-service");
    let port = app.port();
    spawn_server(port, |rx| {
        app.run_until_stopped(async {
            let _ = rx.await;
        })
    })
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
        let telemetry = telemetry::testing::init();
        let payment = payment(&memory_url("payment")).await;
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

    pub async fn count(&self, table: &str) -> i64 {
        count(&self.order.pool, table).await
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
