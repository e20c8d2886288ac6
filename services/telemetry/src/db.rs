//! Database CLIENT spans for sqlx calls, with the database semantic conventions.
//!
//! sqlx emits no OpenTelemetry spans of its own, so each call is wrapped:
//! ```text
//! let span = telemetry::db::span(system, "INSERT", "orders", "INSERT INTO orders (id, total_cents) VALUES ($1, $2)");
//! telemetry::db::traced(span, query.execute(&pool)).await?;
//! ```

use std::future::Future;

use tracing::{field::Empty, instrument::WithSubscriber};

/// A CLIENT span named `{operation} {collection}` (e.g. `INSERT orders`).
/// `query_text` must be the parameterised statement, never one with values in it.
pub fn span(system: &str, operation: &str, collection: &str, query_text: &str) -> tracing::Span {
    tracing::info_span!(
        "db",
        otel.name = format!("{operation} {collection}"),
        otel.kind = "client",
        otel.status_code = Empty,
        db.system.name = system,
        db.operation.name = operation,
        db.collection.name = collection,
        db.query.text = query_text,
        db.response.returned_rows = Empty,
        error.type = Empty,
    )
}

/// Times `fut` with `span`, marking the span ERROR (with `error.type`) when it fails.
///
/// The call runs without a subscriber: sqlx's SQLite worker thread clones whatever span
/// is current for each command and drops the clone only after answering, which made the
/// DB span (and through it its parents) end up to milliseconds after the call returned —
/// enough to reorder siblings in a waterfall. The span therefore ends exactly when the
/// call does; sqlx's own debug logs of the statement are the price.
pub async fn traced<T, E, F>(span: tracing::Span, fut: F) -> Result<T, E>
where
    F: Future<Output = Result<T, E>>,
    E: std::fmt::Display,
{
    let result = fut
        .with_subscriber(tracing::subscriber::NoSubscriber::default())
        .await;
    if let Err(error) = &result {
        span.record("otel.status_code", "ERROR");
        span.record("error.type", error.to_string());
    }
    result
}

/// `db.system.name` for a connection URL: `postgresql` or `sqlite`.
pub fn system_from_url(url: &str) -> &'static str {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        "postgresql"
    } else if url.starts_with("mysql://") || url.starts_with("mariadb://") {
        "mysql"
    } else {
        "sqlite"
    }
}

#[cfg(test)]
mod tests {
    use super::system_from_url;

    #[test]
    fn system_names_follow_semconv() {
        assert_eq!(
            system_from_url("postgres://root@127.0.0.1/test"),
            "postgresql"
        );
        assert_eq!(system_from_url("postgresql://x"), "postgresql");
        assert_eq!(
            system_from_url("sqlite:data/order-service.db?mode=rwc"),
            "sqlite"
        );
    }
}
