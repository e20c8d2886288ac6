//! The skeleton the four checkout services (api-gateway, order-, payment- and inventory-service)
//! share, so it exists once instead of four drifting copies:
//!
//! - [`config`]: the settings every service has (`BIND_ADDR`, `PORT`, `PORT_FILE`,
//!   `MAX_BODY_BYTES`; `DATABASE_URL`, `DATABASE_MAX_CONNECTIONS`) as clap structs to
//!   `#[command(flatten)]`, and the telemetry variables for `--help`.
//! - [`print_config`]: `--print-config` for any clap `Config` (`service_kit::config::parse::<Config>()`).
//! - [`server`]: bind the listener, report the bound port (log line and `PORT_FILE`), serve with
//!   graceful shutdown, optionally alongside one background task.
//! - [`shutdown`]: the Ctrl-C / SIGTERM future.
//! - [`health`]: `/healthz` and `/readyz` (over a database pool, or always ready).
//! - [`error`]: the cause chain logged once and the `contracts::error::ErrorBody` response, for any
//!   service error enum, given the status and code the service maps it to.
//! - [`db`]: `.traced(span)` on sqlx futures and the pool + `db.system.name` pair the stores hold.
//! - [`admin`]: `ADMIN_TOKEN` ([`AdminArgs`]) and the bearer-token check in front of a service's
//!   `/admin` routes.
//!
//! What differs between services (their routes, state, error variants, background work) stays in
//! each service.

pub mod admin;
pub mod config;
pub mod db;
pub mod error;
pub mod health;
pub mod print_config;
pub mod server;
pub mod shutdown;

pub use admin::AdminArgs;
pub use config::{DatabaseArgs, ServerArgs};
pub use server::Server;
pub use shutdown::shutdown_signal;

/// The answer to a create that may be a replay: 201 with `body`, plus `Idempotent-Replayed: true`
/// when it is the stored result of an earlier request with the same key (the header Stripe uses,
/// and card-provider and order-service too).
pub fn created<T: serde::Serialize>(body: T, replayed: bool) -> axum::response::Response {
    use axum::response::IntoResponse;
    let mut response = (axum::http::StatusCode::CREATED, axum::Json(body)).into_response();
    if replayed {
        response.headers_mut().insert(
            contracts::provider::REPLAYED_HEADER,
            axum::http::HeaderValue::from_static("true"),
        );
    }
    response
}
