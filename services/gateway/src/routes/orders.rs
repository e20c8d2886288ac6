//! `POST /orders` and `GET /orders/{id}`: check the scenario header, authenticate, validate, forward
//! to order-service and relay its answer (201 + order, or its 402/409/422/504 error). A client
//! `Idempotency-Key` is passed through; order-service makes the checkout run once per key.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, header};
use axum::response::Response;
use axum::routing::{get, post};
use contracts::orders::CreateOrderRequest;
use contracts::payments::IDEMPOTENCY_KEY_HEADER;
use contracts::scenario::{self, Scenario};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use service_kit::error::BadRequest;

use crate::error::{ApiError, Body};
use crate::startup::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/orders", post(create_order))
        .route("/orders/{id}", get(get_order))
}

/// Rejects an unknown `X-Tracelab-Scenario` (the middleware ignored it) and records the decided
/// scenario, which arrived in this span's baggage, as attribute `tracelab.scenario`.
fn check_scenario(headers: &HeaderMap) -> Result<(), ApiError> {
    if let Some(value) = headers.get(scenario::HEADER) {
        let name = value.to_str().unwrap_or_default();
        name.parse::<Scenario>()?;
    }
    let decided = telemetry::baggage::get(scenario::BAGGAGE_KEY)
        .unwrap_or_else(|| Scenario::Checkout.name().to_owned());
    tracing::Span::current().set_attribute(scenario::ATTRIBUTE, decided);
    Ok(())
}

async fn create_order(
    State(state): State<AppState>,
    headers: HeaderMap,
    Body(body): Body,
) -> Result<Response, ApiError> {
    check_scenario(&headers)?;
    let caller = state.auth.authenticate(&headers)?;
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("application/json"));
    if !is_json {
        return Err(BadRequest::UnsupportedMediaType.into());
    }
    let request: CreateOrderRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::from(BadRequest::from_serde_json(&e)))?;
    request.validate().map_err(ApiError::Validation)?;
    state
        .orders
        .forward(
            Method::POST,
            "/orders",
            Some(body.to_vec()),
            &caller.user_id,
            headers.get(IDEMPOTENCY_KEY_HEADER),
        )
        .await
}

async fn get_order(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    check_scenario(&headers)?;
    let caller = state.auth.authenticate(&headers)?;
    if id.is_empty()
        || id.len() > 64
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(ApiError::Validation("malformed order id".into()));
    }
    state
        .orders
        .forward(
            Method::GET,
            &format!("/orders/{id}"),
            None,
            &caller.user_id,
            None,
        )
        .await
}
