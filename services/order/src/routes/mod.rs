//! HTTP routes: each module owns its `router()`; this one merges them. The health probes are
//! `service_kit::health`'s, merged in `startup` outside the telemetry layer.

pub mod admin;
pub mod orders;

use axum::Router;
use service_kit::AdminArgs;

use crate::startup::AppState;

/// `admin_token` guards the `/admin` routes (`service_kit::admin`).
pub fn router(state: AppState, admin_token: &AdminArgs) -> Router {
    Router::new()
        .merge(orders::router())
        .merge(admin_token.protect(admin::router()))
        .with_state(state)
}
