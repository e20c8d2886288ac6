//! HTTP routes: each module owns its `router()`; this one merges them. The health probes are
//! `service_kit::health`'s, merged in `startup` outside the telemetry layer.

pub mod admin;
pub mod orders;

use axum::Router;

use crate::startup::AppState;

pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(orders::router())
        .merge(admin::router())
        .with_state(state)
}
