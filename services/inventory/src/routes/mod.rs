//! HTTP routes. The business and admin routes run inside telemetry's SERVER spans and a body-size
//! limit; the health probes (`service_kit::health`, merged in `startup`) stay outside both so they
//! neither trace nor count as traffic.

pub mod admin;
pub mod reservations;

use axum::Router;
use axum::extract::DefaultBodyLimit;

use crate::startup::AppState;

pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .merge(reservations::router())
        .merge(admin::router())
        .layer(DefaultBodyLimit::max(state.max_body_bytes));
    telemetry::http::instrument_router(api).with_state(state)
}
