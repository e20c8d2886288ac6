//! `GET /admin/flags` and `PUT /admin/flags`: the scenario flags, changeable while the stack runs.
//! A PUT may name only some scenarios: `{"payment.slow": {"enabled": true, "probability": 50}}`.

use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::routing::get;
use axum::{Json, Router};
use contracts::scenario::Flags;

use crate::error::ApiError;
use crate::startup::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/admin/flags", get(get_flags).put(put_flags))
}

async fn get_flags(State(state): State<AppState>) -> Json<Flags> {
    Json(state.flags.snapshot())
}

async fn put_flags(
    State(state): State<AppState>,
    body: Result<Json<Flags>, JsonRejection>,
) -> Result<Json<Flags>, ApiError> {
    let Json(changes) = body.map_err(|r| match r {
        JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType,
        r if r.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge,
        r => ApiError::InvalidJson(contracts::redact::redact(&r.body_text())),
    })?;
    let flags = state.flags.update(changes)?;
    tracing::info!(flags = ?flags, "scenario flags changed");
    Ok(Json(flags))
}
