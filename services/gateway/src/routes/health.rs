//! `/healthz` and `/readyz`. The gateway holds no state of its own, so once it listens it is ready;
//! readiness deliberately does not follow order-service (a downstream outage must not pull every
//! gateway out of the load balancer).

use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::startup::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

async fn readyz() -> Json<Value> {
    Json(json!({"status": "ready"}))
}
