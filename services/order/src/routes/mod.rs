//! HTTP routes: each module owns its `router()`; this one merges them.

pub mod admin;
pub mod health;
pub mod orders;

use axum::Router;

use crate::startup::AppState;

pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(orders::router())
        .merge(admin::router())
        .merge(health::router())
        .with_state(state)
}
