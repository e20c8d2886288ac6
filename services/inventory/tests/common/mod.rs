//! Shared test harness: the real inventory-service on port 0 (SQLite in memory, or a throw-away
//! PostgreSQL database when 127.0.0.1:5432 answers), an HTTP client and span helpers.
// Each test binary uses a different part of the harness.
#![allow(dead_code)]

use std::time::Duration;

use inventory_service::store::Store;
use inventory_service::{Application, Config};
use opentelemetry_sdk::trace::SpanData;
use telemetry::testing::TestTelemetry;
#[allow(unused_imports)] // each test binary uses a different part of the harness
pub use telemetry::testing::{
    all_text, attribute as attr, duration, event_attr, event_names, is_child_of, is_error, root,
    span_named as span, trace_id,
};
use tokio::sync::oneshot;

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub store: Store,
    pub telemetry: TestTelemetry,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    pg_database: Option<String>,
}

pub fn sqlite_url() -> String {
    format!(
        "sqlite:file:inventory_{}?mode=memory&cache=shared",
        uuid::Uuid::new_v4().simple()
    )
}

pub async fn spawn_sqlite() -> TestApp {
    spawn_with(Config::for_tests(&sqlite_url(), None), None).await
}

pub async fn spawn_sqlite_with(config: impl FnOnce(&mut Config)) -> TestApp {
    let mut c = Config::for_tests(&sqlite_url(), None);
    config(&mut c);
    spawn_with(c, None).await
}

pub async fn spawn_with_config(config: Config) -> TestApp {
    spawn_with(config, None).await
}

/// A fresh SQLite URL plus config, for tests that also need a broker.
pub fn sqlite_config(brokers: Option<&str>) -> Config {
    Config::for_tests(&sqlite_url(), brokers)
}

/// A inventory-service on a fresh PostgreSQL database, or `None` (with a printed reason) when no
/// server listens on 127.0.0.1:5432.
pub async fn spawn_postgres(test: &str, configure: impl FnOnce(&mut Config)) -> Option<TestApp> {
    let url = storage::testing::temp_database(test).await?;
    let mut config = Config::for_tests(&url, None);
    configure(&mut config);
    Some(spawn_with(config, Some(url)).await)
}

/// Starts a card-provider (the mail API's simulator) in-process; its base URL.
pub async fn start_provider(config: card_provider::Config) -> String {
    card_provider::spawn(config)
        .await
        .expect("start card-provider")
}

/// An event handler (no Kafka) over `store`, mailing through its own simulator.
pub async fn event_handler(
    store: &inventory_service::store::Store,
) -> inventory_service::domain::events::OrderEventHandler {
    let mail = start_provider(card_provider::Config::for_tests()).await;
    inventory_service::domain::events::OrderEventHandler::new(
        store.clone(),
        inventory_service::mail::Mailer::new(&mail, Duration::from_secs(10)),
    )
}

async fn spawn_with(mut config: Config, pg_database: Option<String>) -> TestApp {
    let telemetry = telemetry::testing::init();
    // Unless the test chose a mail API, each app gets its own simulator.
    if config.mail_url == Config::for_tests("", None).mail_url {
        config.mail_url = start_provider(card_provider::Config::for_tests()).await;
    }
    let app = Application::build(config)
        .await
        .expect("build inventory-service");
    let port = app.port();
    let store = app.store().clone();
    let (tx, rx) = oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async {
        let _ = rx.await;
    }));
    TestApp {
        base: format!("http://127.0.0.1:{port}"),
        client: reqwest::Client::new(),
        store,
        telemetry,
        shutdown: Some(tx),
        server: Some(server),
        pg_database,
    }
}

impl TestApp {
    pub async fn reserve(
        &self,
        body: &serde_json::Value,
        scenario: Option<&str>,
    ) -> reqwest::Response {
        let mut req = self
            .client
            .post(format!("{}/reservations", self.base))
            .json(body);
        if let Some(s) = scenario {
            req = req.header("baggage", format!("tracelab.scenario={s}"));
        }
        req.send().await.expect("POST /reservations")
    }

    pub async fn stock(&self, sku: &str) -> (i64, i64) {
        self.store.stock_of(sku).await.unwrap().expect("known sku")
    }

    pub async fn count(&self, table: &str) -> i64 {
        let sql = format!("SELECT COUNT(*) AS n FROM {table}");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_one(self.store.pool())
            .await
            .expect("count rows");
        sqlx::Row::try_get::<i64, _>(&row, "n").unwrap()
    }

    /// Waits (bounded) until the trace contains every span named in `names`, and returns it.
    pub async fn trace(&self, trace_id: &str, names: &[&str]) -> Vec<SpanData> {
        let telemetry = self.telemetry.clone();
        let trace_id = trace_id.to_owned();
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        tokio::task::spawn_blocking(move || {
            telemetry.wait_for_spans(
                &trace_id,
                |spans| {
                    names
                        .iter()
                        .all(|n| spans.iter().any(|s| s.name == n.as_str()))
                },
                Duration::from_secs(20),
            )
        })
        .await
        .unwrap()
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.unwrap().unwrap();
        }
        if let Some(url) = self.pg_database.take() {
            storage::testing::drop_database(&url).await;
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // A failed test never reached stop(): drop its PostgreSQL database anyway.
        if let Some(url) = self.pg_database.take() {
            storage::testing::drop_database_blocking(url);
        }
    }
}

pub fn reservation(order_id: &str, items: &[(&str, i64)]) -> serde_json::Value {
    serde_json::json!({
        "order_id": order_id,
        "items": items.iter().map(|(sku, qty)| serde_json::json!({"sku": sku, "qty": qty})).collect::<Vec<_>>(),
    })
}

pub fn unique(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}

pub fn millis(d: Duration) -> u128 {
    d.as_millis()
}

/// An event whose e-mail step really fails (the e-mails table is renamed away, so recording the
/// e-mail errors after the reservation was committed) is handled again: the redelivery sends only
/// the missing e-mail, and a further redelivery changes nothing.
pub async fn a_failed_email_step_is_redone_on_redelivery(app: &TestApp) {
    use contracts::events::{Envelope, OrderPlaced};
    use contracts::scenario::Scenario;
    use inventory_service::store::EventOutcome;

    let order = unique("ord");
    assert_eq!(
        app.reserve(&reservation(&order, &[("MOUSE-1", 1)]), None)
            .await
            .status(),
        201
    );
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
    let emails_before = app.count("confirmation_emails").await;
    let rename = |from: &str, to: &str| format!("ALTER TABLE {from} RENAME TO {to}");
    sqlx::query(sqlx::AssertSqlSafe(rename(
        "confirmation_emails",
        "emails_away",
    )))
    .execute(app.store.pool())
    .await
    .unwrap();
    let failed = handler.handle(&event, Scenario::Checkout).await;
    sqlx::query(sqlx::AssertSqlSafe(rename(
        "emails_away",
        "confirmation_emails",
    )))
    .execute(app.store.pool())
    .await
    .unwrap();
    assert!(failed.is_err(), "the e-mail step failed");
    assert_eq!(
        app.store
            .reservation_by_order(&order)
            .await
            .unwrap()
            .unwrap()
            .status,
        "committed",
        "the reservation step had committed"
    );
    assert!(!app.store.email_sent(&order).await.unwrap());

    // Redelivery: the event is a duplicate for the reservation, and the e-mail goes out now.
    assert_eq!(
        handler.handle(&event, Scenario::Checkout).await.unwrap(),
        EventOutcome::Duplicate
    );
    assert!(app.store.email_sent(&order).await.unwrap());
    assert_eq!(app.count("confirmation_emails").await, emails_before + 1);
    // And once more: nothing else happens.
    assert_eq!(
        handler.handle(&event, Scenario::Checkout).await.unwrap(),
        EventOutcome::Duplicate
    );
    assert_eq!(app.count("confirmation_emails").await, emails_before + 1);
}
