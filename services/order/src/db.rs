//! Database access: order-service's migrations (one set, run unchanged on SQLite and PostgreSQL)
//! over the shared `storage` pool.

use sqlx::{AnyPool, migrate::Migrator};

pub use storage::{now_ms, redact_url};

pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// Opens the pool for `url` (SQLite or PostgreSQL) and brings the schema up to date.
pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<AnyPool> {
    storage::connect(url, max_connections, &MIGRATOR, "order-service").await
}
