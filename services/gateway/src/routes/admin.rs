//! `GET /admin/flags` and `PUT /admin/flags`: the scenario flags, changeable while the stack runs.
//! A PUT may name only some scenarios: `{"payment.slow": {"enabled": true, "probability": 50}}`;
//! an entry without `probability` keeps the flag's share (`{"payment.slow": {"enabled": false}}`
//! switches it off). Behind `ADMIN_TOKEN` when one is set (`service_kit::admin`).

use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::routing::get;
use axum::{Json, Router};
use contracts::scenario::{FlagChanges, Flags};

use service_kit::error::BadRequest;

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
    body: Result<Json<FlagChanges>, JsonRejection>,
) -> Result<Json<Flags>, ApiError> {
    let Json(changes) =
        body.map_err(|r| ApiError::from(BadRequest::from_json_rejection(r, None)))?;
    let flags = state.flags.update(changes)?;
    tracing::info!(flags = ?flags, "scenario flags changed");
    Ok(Json(flags))
}
