//! `GET/PUT /admin/checkout`: the `inventory.out_of_stock` fix, switchable at run time — check the
//! stock of every item before charging, so a sold-out order costs no charge and no refund.

use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use crate::error::{ApiError, ApiJson};
use crate::startup::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/admin/checkout", get(show).put(switch))
}

/// `GET/PUT /admin/checkout` body and answer.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckoutSettings {
    pub check_stock_first: bool,
}

async fn show(State(state): State<AppState>) -> Json<CheckoutSettings> {
    Json(CheckoutSettings {
        check_stock_first: state.check_stock_first.load(Ordering::Relaxed),
    })
}

async fn switch(
    State(state): State<AppState>,
    ApiJson(settings): ApiJson<CheckoutSettings>,
) -> Result<Json<CheckoutSettings>, ApiError> {
    state
        .check_stock_first
        .store(settings.check_stock_first, Ordering::Relaxed);
    tracing::info!(
        check_stock_first = settings.check_stock_first,
        "checkout policy switched"
    );
    Ok(show(State(state)).await)
}
