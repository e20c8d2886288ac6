//! `POST /refunds`: refunds a succeeded charge, at most once per charge (a retry gets the first refund).

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::response::Response;
use axum::routing::post;
use contracts::payments::RefundRequest;

use crate::domain::refund;
use crate::error::PaymentError;
use crate::startup::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/refunds", post(create_refund))
}

async fn create_refund(
    State(state): State<AppState>,
    body: Result<Json<RefundRequest>, JsonRejection>,
) -> Result<Response, PaymentError> {
    let scenario = crate::scenario::current();
    let Json(req) = body.map_err(|r| PaymentError::from_json_rejection(r, state.max_body_bytes))?;
    let outcome = refund::refund(&state, req, scenario).await?;
    Ok(service_kit::created(outcome.response, outcome.replayed))
}
