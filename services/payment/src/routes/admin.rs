//! `GET/PUT /admin/provider`: the provider client's policy, switchable at run time — the fixes of
//! `payment.slow` (a short `retry_backoff_ms`) and `provider.slow` (a short `timeout_ms`).

use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::routing::get;
use axum::{Json, Router};

use crate::error::PaymentError;
use crate::provider::ProviderPolicy;
use crate::startup::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/admin/provider", get(show).put(switch))
}

async fn show(State(state): State<AppState>) -> Json<ProviderPolicy> {
    Json(state.provider.policy())
}

async fn switch(
    State(state): State<AppState>,
    body: Result<Json<ProviderPolicy>, JsonRejection>,
) -> Result<Json<ProviderPolicy>, PaymentError> {
    let Json(policy) =
        body.map_err(|r| PaymentError::from_json_rejection(r, state.max_body_bytes))?;
    policy.validate().map_err(PaymentError::Validation)?;
    state.provider.set_policy(policy);
    tracing::info!(
        timeout_ms = policy.timeout_ms,
        max_attempts = policy.max_attempts,
        retry_backoff_ms = policy.retry_backoff_ms,
        "provider policy switched"
    );
    Ok(Json(policy))
}
