//! HTTP routes. The business and admin routes run inside telemetry's SERVER spans and a body-size
//! limit; the health probes (`service_kit::health`, merged in `startup`) stay outside both so they
//! neither trace nor count as traffic.

pub mod admin;
pub mod reservations;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use service_kit::AdminArgs;

use crate::startup::AppState;

/// `admin_token` guards the `/admin` routes (`service_kit::admin`).
pub fn router(state: AppState, admin_token: &AdminArgs) -> Router {
    let api = Router::new()
        .merge(reservations::router())
        .merge(admin_token.protect(admin::router()))
        .layer(DefaultBodyLimit::max(state.max_body_bytes));
    telemetry::http::instrument_router(api).with_state(state)
}
