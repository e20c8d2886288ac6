//! What the services' stores share around sqlx: the pool together with its `db.system.name`, and
//! `.traced(span)`, which runs a query inside a `telemetry::db` CLIENT span.
//!
//! ```text
//! use service_kit::db::TracedExt;
//! sqlx::query(INSERT_ORDER).bind(id).execute(db.pool())
//!     .traced(db.span("INSERT", "orders", INSERT_ORDER))
//!     .await?;
//! ```

use std::future::Future;

use sqlx::AnyPool;

/// `.traced(span)` on any fallible future (sqlx calls in practice): see `telemetry::db::traced`.
pub trait TracedExt<T, E>: Future<Output = Result<T, E>> + Sized
where
    E: std::fmt::Display,
{
    /// Runs the call inside `span`, which turns ERROR (with `error.type`) when the call fails.
    fn traced(self, span: tracing::Span) -> impl Future<Output = Result<T, E>> {
        telemetry::db::traced(span, self)
    }
}

impl<T, E: std::fmt::Display, F: Future<Output = Result<T, E>>> TracedExt<T, E> for F {}

/// A pool and the `db.system.name` its URL implies (`sqlite`, `postgresql`), which every DB span
/// of the store carries.
#[derive(Debug, Clone)]
pub struct Database {
    pool: AnyPool,
    system: &'static str,
}

impl Database {
    pub fn new(pool: AnyPool, database_url: &str) -> Self {
        Self {
            pool,
            system: telemetry::db::system_from_url(database_url),
        }
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// `db.system.name`: `sqlite` or `postgresql`.
    pub fn system(&self) -> &'static str {
        self.system
    }

    /// A CLIENT span `{operation} {collection}` for the parameterised statement `query`.
    pub fn span(&self, operation: &str, collection: &str, query: &str) -> tracing::Span {
        telemetry::db::span(self.system, operation, collection, query)
    }
}
