//! Pending charge claims that lost their request: a retry takes over a claim whose lease
//! (`CHARGE_PENDING_LEASE_MS`) ran out — after a simulated crash (a pending row written directly)
//! and after a real cancellation (the charging future dropped between claim and provider answer) —
//! and charges once; a claim inside its lease is left alone (409); only the holder settles a row.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use contracts::payments::ChargeRequest;
use contracts::scenario::Scenario;
use payment_service::Config;
use payment_service::config::ProviderConfig;
use payment_service::domain::charge::{self, ChargeCommand};
use payment_service::metrics::Metrics;
use payment_service::provider::CardProvider;
use payment_service::startup::AppState;

fn short_lease(lease_ms: u64) -> Config {
    let mut config = Config::for_tests(&sqlite_url(), None);
    config.charge_pending_lease_ms = lease_ms;
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_claim_is_taken_over_by_a_retry_and_charged_once() {
    let app = spawn_with_config(short_lease(200)).await;
    abandoned_claim_is_taken_over_and_charged_once(&app).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_dropped_between_claim_and_charge_is_resumed_by_a_retry() {
    let app = spawn_with_config(short_lease(300)).await;
    let order = unique("ord");
    let key = unique("key");

    // The first request: the same domain code the handler runs, against the app's database, with a
    // provider that would take a minute to answer. It is aborted once its claim is stored — what a
    // cancelled request (client gone, process stopping) does to the handler's future.
    let stalled = AppState {
        store: app.store.clone(),
        provider: Arc::new(CardProvider::new(&ProviderConfig {
            provider_url: start_provider(card_provider::Config {
                latency_ms: 60_000,
                jitter_ms: 0,
                ..card_provider::Config::for_tests()
            })
            .await,
            ..ProviderConfig::default()
        })),
        metrics: Metrics::new(),
        max_body_bytes: 16 * 1024,
        idempotency_wait: Duration::from_secs(10),
        charge_pending_lease: Duration::from_millis(300),
    };
    let request: ChargeRequest =
        serde_json::from_value(charge_body(&order, "tok_test_123")).unwrap();
    let cmd = ChargeCommand::new(Some(&key), request).unwrap();
    let first =
        tokio::spawn(async move { charge::charge(&stalled, cmd, Scenario::Checkout).await });
    let deadline = Instant::now() + Duration::from_secs(10);
    let pending = loop {
        if let Some(row) = app.store.charge_by_key(&key).await.unwrap() {
            break row;
        }
        assert!(Instant::now() < deadline, "the first request never claimed");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert_eq!(pending.status, "pending");
    first.abort();
    assert!(
        first.await.unwrap_err().is_cancelled(),
        "the first request died mid-charge"
    );
    let (_, dead_claim) = charge_state(&app.store, &pending.id).await;

    // The retry finds the claim pending, waits for the lease to run out, takes it over.
    let retry = app
        .charge(&key, &charge_body(&order, "tok_test_123"), None)
        .await;
    assert_eq!(retry.status(), 201);
    let v: serde_json::Value = retry.json().await.unwrap();
    assert_eq!(v["charge_id"], pending.id.as_str());
    assert_eq!(app.store.count_charges_for_order(&order).await.unwrap(), 1);
    let (status, claim) = charge_state(&app.store, &pending.id).await;
    assert_eq!(status, "succeeded");
    assert_ne!(claim, dead_claim);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_inside_its_lease_is_not_taken_over() {
    let mut config = short_lease(60_000);
    config.idempotency_wait_ms = 200;
    let app = spawn_with_config(config).await;
    let order = unique("ord");
    let key = unique("key");
    insert_pending_charge(
        &app.store,
        "ch_live",
        &key,
        &order,
        now_ms(),
        "live-request",
    )
    .await;

    let resp = app
        .charge(&key, &charge_body(&order, "tok_test_123"), None)
        .await;
    assert_eq!(resp.status(), 409);
    let err: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(err["error"]["code"], "idempotency_in_progress");
    assert!(err["error"]["message"].is_string());
    assert_eq!(
        charge_state(&app.store, "ch_live").await,
        ("pending".to_owned(), "live-request".to_owned()),
        "the live holder keeps its claim"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_holder_of_a_claim_settles_it() {
    let app = spawn_sqlite().await;
    claim_contract(&app.store).await;
    app.stop().await;
}
