//! inventory-service's migrations (one set, run unchanged on SQLite and PostgreSQL); the pool is
//! opened by `service_kit::DatabaseArgs::connect` over the shared `storage` crate.

use sqlx::migrate::Migrator;

pub use storage::{now_ms, redact_url};

pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");
