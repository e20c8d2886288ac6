//! `POST /orders` (run a checkout) and `GET /orders/{id}`.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderName, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use contracts::orders::{CreateOrderRequest, Order};

use contracts::payments::IDEMPOTENCY_KEY_HEADER;

use crate::domain::checkout::{self, Placed};
use crate::domain::idempotency::ClientKey;
use crate::error::{ApiError, ApiJson};
use crate::startup::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/orders", post(create_order))
        .route("/orders/{id}", get(get_order))
}

/// Set by api-gateway after authentication; recorded as `user.id` on `process_order`.
pub const USER_HEADER: &str = "x-tracelab-user";

/// Set on an answer that replays the stored answer of an earlier request with the same
/// Idempotency-Key (payment-service marks its replays the same way).
pub const REPLAYED_HEADER: &str = "idempotent-replayed";

async fn create_order(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(request): ApiJson<CreateOrderRequest>,
) -> Result<Response, ApiError> {
    let user = headers
        .get(USER_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 64);
    // Without the header every request is a new order, as before keys existed.
    let key = headers
        .get(IDEMPOTENCY_KEY_HEADER)
        .map(|v| ClientKey::parse(user, v.as_bytes()))
        .transpose()?;
    match checkout::place_order(&state, request, user, key).await {
        Placed::Ran(result) => Ok((StatusCode::CREATED, Json(result?)).into_response()),
        Placed::Replayed(answer) => {
            let status =
                StatusCode::from_u16(answer.status).map_err(|e| ApiError::Internal(e.into()))?;
            Ok((
                status,
                [
                    (header::CONTENT_TYPE, "application/json"),
                    (HeaderName::from_static(REPLAYED_HEADER), "true"),
                ],
                answer.body,
            )
                .into_response())
        }
    }
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
