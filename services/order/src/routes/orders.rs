//! `POST /orders` (run a checkout) and `GET /orders/{id}`.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use contracts::orders::{CreateOrderRequest, Order};

use crate::domain::checkout;
use crate::error::{ApiError, ApiJson};
use crate::startup::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/orders", post(create_order))
        .route("/orders/{id}", get(get_order))
}

/// Set by api-gateway after authentication; recorded as `user.id` on `process_order`.
pub const USER_HEADER: &str = "x-tracelab-user";

async fn create_order(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(request): ApiJson<CreateOrderRequest>,
) -> Result<(StatusCode, Json<Order>), ApiError> {
    let user = headers
        .get(USER_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 64);
    let order = checkout::place_order(&state, request, user).await?;
    Ok((StatusCode::CREATED, Json(order)))
}

async fn get_order(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Order>, ApiError> {
    state
        .repo
        .get_order(&id)
        .await?
        .map(Json)
        .ok_or(ApiError::NotFound(id))
}
