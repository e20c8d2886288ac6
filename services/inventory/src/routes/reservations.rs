//! `POST /reservations`: 201 with the reservation, or 409 `out_of_stock` with nothing written; a retry
//! for the same order gets the first reservation (marked `Idempotent-Replayed: true`).
//! `GET /stock/{sku}`: what is on the shelf (order-service's check before charging).

use axum::Json;
use axum::Router;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::{get, post};
use contracts::inventory::{ReservationRequest, StockLevel};

use crate::domain::reservation::{self, ValidReservation};
use crate::error::InventoryError;
use crate::startup::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/reservations", post(create_reservation))
        .route("/stock/{sku}", get(stock))
}

async fn stock(
    State(state): State<AppState>,
    Path(sku): Path<String>,
) -> Result<Json<StockLevel>, InventoryError> {
    let (available, reserved) = state
        .store
        .stock_of(&sku)
        .await?
        .ok_or_else(|| InventoryError::UnknownSku(sku.chars().take(64).collect()))?;
    Ok(Json(StockLevel {
        sku,
        available,
        reserved,
    }))
}

async fn create_reservation(
    State(state): State<AppState>,
    body: Result<Json<ReservationRequest>, JsonRejection>,
) -> Result<Response, InventoryError> {
    let scenario = crate::scenario::current();
    let Json(req) =
        body.map_err(|r| InventoryError::from_json_rejection(r, state.max_body_bytes))?;
    let req = ValidReservation::new(req)?;
    let outcome = reservation::reserve(&state, req, scenario).await?;
    Ok(service_kit::created(outcome.response, outcome.replayed))
}
