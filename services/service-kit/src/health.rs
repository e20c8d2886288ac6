//! `/healthz` (the process is up: always 200 `{"status":"ok"}`) and `/readyz` (200
//! `{"status":"ready"}`, or 503 `{"status":"unavailable","reason":...}` when the readiness check
//! fails).
//!
//! The routes come as a stateless `Router` that a service merges *outside* its telemetry layer:
//! probes arrive every few seconds (and every 50 ms while the launcher waits), and tracing or
//! counting them would bury the checkout traffic.

use std::future::Future;

use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use sqlx::AnyPool;

/// The probes with a custom readiness check; `Err(reason)` answers 503 with that reason.
pub fn routes<F, Fut>(ready: F) -> Router
where
    F: Fn() -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<(), &'static str>> + Send + 'static,
{
    Router::new()
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route(
            "/readyz",
            get(move || {
                let ready = ready.clone();
                async move { readyz(ready().await) }
            }),
        )
}

/// Ready once it listens: for a service with nothing of its own to wait for (the gateway, whose
/// readiness deliberately does not follow its downstreams, so an outage there does not pull every
/// gateway out of the load balancer).
pub fn always_ready() -> Router {
    routes(|| async { Ok(()) })
}

/// Ready while the database answers `SELECT 1`.
pub fn database(pool: AnyPool) -> Router {
    routes(move || {
        let pool = pool.clone();
        async move {
            match sqlx::query("SELECT 1").execute(&pool).await {
                Ok(_) => Ok(()),
                Err(err) => {
                    tracing::warn!(error = %err, "readiness check failed");
                    Err("database")
                }
            }
        }
    })
}

fn readyz(result: Result<(), &'static str>) -> (StatusCode, Json<Value>) {
    match result {
        Ok(()) => (StatusCode::OK, Json(json!({"status": "ready"}))),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "unavailable", "reason": reason})),
        ),
    }
}
