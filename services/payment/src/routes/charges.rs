//! `POST /charges`: 201 with the charge, or 402 `card_declined`; a retry with the same
//! `Idempotency-Key` gets the first answer (marked with `Idempotent-Replayed: true`).

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::post;
use contracts::payments::{ChargeRequest, IDEMPOTENCY_KEY_HEADER};

use crate::domain::charge::{self, ChargeCommand};
use crate::error::PaymentError;
use crate::startup::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/charges", post(create_charge))
}

async fn create_charge(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<ChargeRequest>, JsonRejection>,
) -> Result<Response, PaymentError> {
    let scenario = crate::scenario::current();
    let Json(req) = body.map_err(|r| PaymentError::from_json_rejection(r, state.max_body_bytes))?;
    let key = headers
        .get(IDEMPOTENCY_KEY_HEADER)
        .and_then(|v| v.to_str().ok());
    let cmd = ChargeCommand::new(key, req)?;
    let outcome = charge::charge(&state, cmd, scenario).await?;
    Ok(service_kit::created(outcome.response, outcome.replayed))
}
