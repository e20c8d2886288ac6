//! Shared test harness: the real payment-service on port 0 (SQLite in memory, or a throw-away
//! PostgreSQL database when 127.0.0.1:5432 answers), an HTTP client and span helpers.
// Each test binary uses a different part of the harness.
#![allow(dead_code)]

use std::time::Duration;

use opentelemetry_sdk::trace::SpanData;
use payment_service::store::Store;
use payment_service::{Application, Config};
use telemetry::testing::TestTelemetry;
#[allow(unused_imports)] // each test binary uses a different part of the harness
pub use telemetry::testing::{
    all_text, attribute as attr, duration, event_attr, event_names, is_child_of, is_error, root,
    span_named as span, trace_id,
};
use tokio::sync::oneshot;

pub struct TestApp {
    pub base: String,
    /// The card-provider this app calls.
    pub provider_url: String,
    pub client: reqwest::Client,
    pub store: Store,
    pub telemetry: TestTelemetry,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    pg_database: Option<String>,
}

pub fn sqlite_url() -> String {
    format!(
        "sqlite:file:payment_{}?mode=memory&cache=shared",
        uuid::Uuid::new_v4().simple()
    )
}

pub async fn spawn_sqlite() -> TestApp {
    spawn_with(Config::for_tests(&sqlite_url(), None), None).await
}

pub async fn spawn_with_config(config: Config) -> TestApp {
    spawn_with(config, None).await
}

/// A payment-service on a fresh PostgreSQL database, or `None` (with a printed reason) when no
/// server listens on 127.0.0.1:5432.
pub async fn spawn_postgres(test: &str) -> Option<TestApp> {
    let url = storage::testing::temp_database(test).await?;
    Some(spawn_with(Config::for_tests(&url, None), Some(url)).await)
}

/// Starts a card-provider (the simulator) in-process on a free port; its base URL.
pub async fn start_provider(config: card_provider::Config) -> String {
    card_provider::spawn(config)
        .await
        .expect("start card-provider")
}

/// A closed port on loopback: what a provider that is down looks like.
pub async fn dead_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

async fn spawn_with(mut config: Config, pg_database: Option<String>) -> TestApp {
    let telemetry = telemetry::testing::init();
    // Unless the test chose a provider, each app gets its own simulator.
    if config.provider.provider_url
        == payment_service::config::ProviderConfig::default().provider_url
    {
        config.provider.provider_url = start_provider(card_provider::Config::for_tests()).await;
    }
    let provider_url = config.provider.provider_url.clone();
    let app = Application::build(config)
        .await
        .expect("build payment-service");
    let port = app.port();
    let store = app.store().clone();
    let (tx, rx) = oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async {
        let _ = rx.await;
    }));
    TestApp {
        base: format!("http://127.0.0.1:{port}"),
        provider_url,
        client: reqwest::Client::new(),
        store,
        telemetry,
        shutdown: Some(tx),
        server: Some(server),
        pg_database,
    }
}

impl TestApp {
    pub async fn charge(
        &self,
        key: &str,
        body: &serde_json::Value,
        scenario: Option<&str>,
    ) -> reqwest::Response {
        let mut req = self
            .client
            .post(format!("{}/charges", self.base))
            .header("idempotency-key", key)
            .json(body);
        if let Some(s) = scenario {
            req = req.header("baggage", format!("tracelab.scenario={s}"));
        }
        req.send().await.expect("POST /charges")
    }

    pub async fn refund(&self, body: &serde_json::Value) -> reqwest::Response {
        self.client
            .post(format!("{}/refunds", self.base))
            .json(body)
            .send()
            .await
            .expect("POST /refunds")
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

    /// Like [`Self::trace`], and also waits until `counted` appears `count` times (retries).
    pub async fn wait_for_count(
        &self,
        trace_id: &str,
        names: &[&str],
        counted: &str,
        count: usize,
    ) -> Vec<SpanData> {
        let telemetry = self.telemetry.clone();
        let trace_id = trace_id.to_owned();
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let counted = counted.to_owned();
        tokio::task::spawn_blocking(move || {
            telemetry.wait_for_spans(
                &trace_id,
                |spans| {
                    names
                        .iter()
                        .all(|n| spans.iter().any(|s| s.name == n.as_str()))
                        && spans.iter().filter(|s| s.name == counted.as_str()).count() >= count
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

pub fn charge_body(order_id: &str, token: &str) -> serde_json::Value {
    serde_json::json!({
        "order_id": order_id,
        "amount_cents": 14_999,
        "currency": "USD",
        "method": "card",
        "token": token,
    })
}

pub fn unique(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}

pub fn millis(d: Duration) -> u128 {
    d.as_millis()
}
