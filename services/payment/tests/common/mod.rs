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
    spawn_postgres_with(test, |_| {}).await
}

/// [`spawn_postgres`] with a tweaked configuration.
pub async fn spawn_postgres_with(test: &str, tweak: impl FnOnce(&mut Config)) -> Option<TestApp> {
    let url = storage::testing::temp_database(test).await?;
    let mut config = Config::for_tests(&url, None);
    tweak(&mut config);
    Some(spawn_with(config, Some(url)).await)
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

/// The fingerprint payment-service stores for [`charge_body`] (order|amount|currency|method).
pub fn charge_fingerprint(order_id: &str) -> String {
    format!("{order_id}|14999|USD|card")
}

/// Writes what a request that died between its claim and the provider's answer leaves behind: a
/// `pending` row for [`charge_body`]`(order_id, "tok_test_123")`, claimed at `claimed_at_ms` by
/// `claim_id`.
pub async fn insert_pending_charge(
    store: &Store,
    id: &str,
    key: &str,
    order_id: &str,
    claimed_at_ms: i64,
    claim_id: &str,
) {
    sqlx::query(
        "INSERT INTO charges (id, idempotency_key, request_fingerprint, order_id, amount_cents, \
         currency, method, card_last4, status, created_at_ms, claimed_at_ms, claim_id) \
         VALUES ($1, $2, $3, $4, 14999, 'USD', 'card', '4242', 'pending', $5, $5, $6)",
    )
    .bind(id)
    .bind(key)
    .bind(charge_fingerprint(order_id))
    .bind(order_id)
    .bind(claimed_at_ms)
    .bind(claim_id)
    .execute(store.pool())
    .await
    .expect("insert a pending charge");
}

/// (status, claim_id) of a stored charge.
pub async fn charge_state(store: &Store, id: &str) -> (String, String) {
    let row = sqlx::query("SELECT status, claim_id FROM charges WHERE id = $1")
        .bind(id)
        .fetch_one(store.pool())
        .await
        .expect("the charge row");
    (
        sqlx::Row::try_get(&row, "status").unwrap(),
        sqlx::Row::try_get(&row, "claim_id").unwrap(),
    )
}

pub fn now_ms() -> i64 {
    payment_service::db::now_ms()
}

/// A crash between claim and charge, then a retry: the abandoned claim (older than the lease) is
/// taken over, the provider is called once, the stored row settles under the first charge id, and a
/// further retry replays it. `app` must run with a short `CHARGE_PENDING_LEASE_MS`.
pub async fn abandoned_claim_is_taken_over_and_charged_once(app: &TestApp) {
    let order = unique("ord");
    let key = unique("key");
    let charge_id = unique("ch_crashed");
    insert_pending_charge(
        &app.store,
        &charge_id,
        &key,
        &order,
        now_ms() - 60_000,
        "dead-request",
    )
    .await;

    let body = charge_body(&order, "tok_test_123");
    let retry = app.charge(&key, &body, None).await;
    assert_eq!(
        retry.status(),
        201,
        "the retry settles the abandoned charge"
    );
    assert!(
        retry.headers().get("idempotent-replayed").is_none(),
        "this request did the charging, it replays nothing"
    );
    let tid = trace_id(&retry);
    let v: serde_json::Value = retry.json().await.unwrap();
    assert_eq!(
        v["charge_id"],
        charge_id.as_str(),
        "the row's charge id is kept"
    );
    assert_eq!(v["status"], "succeeded");
    assert_eq!(app.store.count_charges_for_order(&order).await.unwrap(), 1);
    let (status, claim) = charge_state(&app.store, &charge_id).await;
    assert_eq!(status, "succeeded");
    assert_ne!(
        claim, "dead-request",
        "the retry holds the claim it settled"
    );

    let spans = app
        .trace(&tid, &["stripe.create_charge", "UPDATE charges"])
        .await;
    let provider_calls = spans
        .iter()
        .filter(|s| s.name == "stripe.create_charge")
        .count();
    assert_eq!(provider_calls, 1, "one provider call for the takeover");

    let again = app.charge(&key, &body, None).await;
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let again_tid = trace_id(&again);
    let again: serde_json::Value = again.json().await.unwrap();
    assert_eq!(again, v, "a later retry replays the settled charge");
    let replay = app.trace(&again_tid, &["POST /charges"]).await;
    assert!(replay.iter().all(|s| s.name != "stripe.create_charge"));
    assert_eq!(app.store.count_charges_for_order(&order).await.unwrap(), 1);
}

/// The store's claim contract: a takeover needs an expired lease and succeeds once; only the current
/// holder completes a charge, once.
pub async fn claim_contract(store: &Store) {
    use payment_service::store::{Claim, CompleteError, NewCharge};
    let order = unique("ord");
    let key = unique("key");
    let new = NewCharge {
        id: "ch_contract",
        claim_id: "holder-a",
        idempotency_key: &key,
        request_fingerprint: "fp",
        order_id: &order,
        amount_cents: 100,
        currency: "USD",
        method: "card",
        card_last4: "4242",
    };
    assert!(matches!(
        store.claim_charge(&new).await.unwrap(),
        Claim::New
    ));
    let claimed = store.charge_by_key(&key).await.unwrap().unwrap();
    // Inside the lease (cutoff at or before the claim): no takeover.
    assert!(
        !store
            .take_over_charge(&key, "holder-a", "holder-b", claimed.claimed_at_ms)
            .await
            .unwrap()
    );
    // Lease over: of two racing retries that both saw holder-a, exactly one wins — even with a
    // cutoff (lease 0) that the winner's fresh claim time would still pass.
    let cutoff = now_ms() + 1_000;
    let (b, c) = futures::join!(
        store.take_over_charge(&key, "holder-a", "holder-b", cutoff),
        store.take_over_charge(&key, "holder-a", "holder-c", cutoff)
    );
    let (b, c) = (b.unwrap(), c.unwrap());
    assert!(b ^ c, "one takeover wins: b={b} c={c}");
    let (winner, loser) = if b {
        ("holder-b", "holder-c")
    } else {
        ("holder-c", "holder-b")
    };
    for stale in ["holder-a", loser] {
        let err = store
            .complete_charge("ch_contract", stale, "succeeded", Some("ch_p"), None)
            .await
            .unwrap_err();
        assert!(
            matches!(err, CompleteError::NotHeld(ref id) if id == "ch_contract"),
            "{err}"
        );
    }
    store
        .complete_charge("ch_contract", winner, "succeeded", Some("ch_p"), None)
        .await
        .expect("the holder completes");
    let err = store
        .complete_charge("ch_contract", winner, "declined", None, Some("late"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, CompleteError::NotHeld(_)),
        "settled once: {err}"
    );
    assert!(
        !store
            .take_over_charge(&key, winner, "holder-d", now_ms() + 1_000)
            .await
            .unwrap(),
        "a settled charge is never taken over"
    );
    let row = store.charge_by_id("ch_contract").await.unwrap().unwrap();
    assert_eq!(row.status, "succeeded");
    assert_eq!(row.provider_charge_id.as_deref(), Some("ch_p"));
}
