//! Run-time fixes. `GET/PUT /admin/slow-query`: the `inventory.slow_query` fix; the answer shows
//! whether the index exists and the database's plan for the audit query, so a workshop can see the
//! full scan turn into an index search. `GET/PUT /admin/consumer`: the `kafka.consumer_lag` fix, how
//! many messages the orders consumer processes at once.

use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::routing::{get, put};
use axum::{Json, Router};
use contracts::inventory::StockLevel;
use serde::{Deserialize, Serialize};

use crate::error::InventoryError;
use crate::startup::AppState;
use crate::store::{MOVEMENT_INDEX, MOVEMENT_QUERY};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/slow-query", get(show).put(switch))
        .route("/admin/consumer", get(show_consumer).put(set_consumer))
        .route("/admin/stock", put(set_stock))
}

/// `PUT /admin/stock {"sku","available"}`: restock a shelf, or empty it (`inventory.out_of_stock`
/// for every order of that SKU, at run time).
async fn set_stock(
    State(state): State<AppState>,
    body: Result<Json<StockLevel>, JsonRejection>,
) -> Result<Json<StockLevel>, InventoryError> {
    let Json(level) =
        body.map_err(|r| InventoryError::from_json_rejection(r, state.max_body_bytes))?;
    if !(0..=1_000_000_000).contains(&level.available) {
        return Err(InventoryError::Validation(
            "available must be between 0 and 1000000000".into(),
        ));
    }
    if !state
        .store
        .set_available(&level.sku, level.available)
        .await?
    {
        return Err(InventoryError::UnknownSku(
            level.sku.chars().take(64).collect(),
        ));
    }
    tracing::info!(sku = %level.sku, available = level.available, "shelf set");
    let (available, reserved) = state.store.stock_of(&level.sku).await?.unwrap_or_default();
    Ok(Json(StockLevel {
        sku: level.sku,
        available,
        reserved,
    }))
}

/// `GET/PUT /admin/consumer` body and answer.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsumerSettings {
    /// Messages processed at once (1 to `kafka::MAX_CONCURRENCY`).
    pub concurrency: usize,
}

async fn show_consumer(State(state): State<AppState>) -> Json<ConsumerSettings> {
    Json(ConsumerSettings {
        concurrency: state.consumer_concurrency.get(),
    })
}

async fn set_consumer(
    State(state): State<AppState>,
    body: Result<Json<ConsumerSettings>, JsonRejection>,
) -> Result<Json<ConsumerSettings>, InventoryError> {
    let Json(settings) =
        body.map_err(|r| InventoryError::from_json_rejection(r, state.max_body_bytes))?;
    if !(1..=crate::kafka::MAX_CONCURRENCY).contains(&settings.concurrency) {
        return Err(InventoryError::Validation(format!(
            "concurrency must be between 1 and {}",
            crate::kafka::MAX_CONCURRENCY
        )));
    }
    state.consumer_concurrency.set(settings.concurrency);
    tracing::info!(
        concurrency = settings.concurrency,
        "consumer concurrency switched"
    );
    Ok(show_consumer(State(state)).await)
}

/// `PUT /admin/slow-query` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlowQueryFix {
    /// true creates the index (the fix), false drops it (the bug).
    pub indexed: bool,
}

/// What the endpoint answers.
#[derive(Debug, Serialize, Deserialize)]
pub struct SlowQueryState {
    pub indexed: bool,
    pub index: String,
    pub query: String,
    /// The plan for the query on LAPTOP-1.
    pub plan: Vec<String>,
}

async fn show(State(state): State<AppState>) -> Result<Json<SlowQueryState>, InventoryError> {
    describe(&state).await.map(Json)
}

async fn switch(
    State(state): State<AppState>,
    body: Result<Json<SlowQueryFix>, JsonRejection>,
) -> Result<Json<SlowQueryState>, InventoryError> {
    let Json(fix) =
        body.map_err(|r| InventoryError::from_json_rejection(r, state.max_body_bytes))?;
    state.store.set_movement_index(fix.indexed).await?;
    tracing::info!(indexed = fix.indexed, "slow-query fix switched");
    describe(&state).await.map(Json)
}

async fn describe(state: &AppState) -> Result<SlowQueryState, InventoryError> {
    Ok(SlowQueryState {
        indexed: state.store.movement_index_exists().await?,
        index: MOVEMENT_INDEX.to_owned(),
        query: MOVEMENT_QUERY.to_owned(),
        plan: state.store.movement_plan("LAPTOP-1").await?,
    })
}
