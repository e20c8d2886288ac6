//! Database CLIENT spans for sqlx calls, with the database semantic conventions.
//!
//! sqlx emits no OpenTelemetry spans of its own, so each call is wrapped:
//! ```text
//! let span = telemetry::db::span(system, "INSERT", "orders", "INSERT INTO orders (id, total_cents) VALUES ($1, $2)");
//! telemetry::db::traced(span, query.execute(&pool)).await?;
//! ```
//! sqlx's own log events (target `sqlx::query`: the statement at DEBUG, the
//! "slow statement" warning from `ConnectOptions::log_slow_statements`) are emitted inside
//! the DB span, so they reach stdout and the OTLP logs with its trace and span ids, and
//! become events of the span.

use std::future::Future;

use opentelemetry::trace::TraceContextExt;
use tracing::{Instrument, field::Empty};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// A CLIENT span named `{operation} {collection}` (e.g. `INSERT orders`), a child (in
/// the trace) of the current span. `query_text` must be the parameterised statement,
/// never one with values in it.
///
/// In `tracing`'s own tree the span is a root on purpose: sqlx's SQLite worker thread
/// clones the current span for each command and drops the clone only after answering.
/// A `tracing` child keeps its parents open until it closes, so that clone would have
/// stretched the caller's spans past the call, enough to reorder siblings in a waterfall.
/// As a root it holds no parent open, and [`traced`] ends its OpenTelemetry span itself.
pub fn span(system: &str, operation: &str, collection: &str, query_text: &str) -> tracing::Span {
    let span = tracing::info_span!(
        parent: None,
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
    );
    // The OpenTelemetry context of the nearest exported ancestor, as a contextual span
    // would have had. Fails only for a span the span filter left out, which has no trace.
    let _ = span.set_parent(opentelemetry::Context::current());
    span
}

/// Runs `fut` inside `span`, marking the span ERROR (with `error.type`) when it fails,
/// and ends the span's OpenTelemetry span the moment `fut` completes, even if sqlx's
/// worker thread still holds a clone of the `tracing` span (see [`span`]). sqlx logs a
/// statement before it answers, so its events land in the span before it ends.
pub async fn traced<T, E, F>(span: tracing::Span, fut: F) -> Result<T, E>
where
    F: Future<Output = Result<T, E>>,
    E: std::fmt::Display,
{
    let result = fut.instrument(span.clone()).await;
    if let Err(error) = &result {
        span.record("otel.status_code", "ERROR");
        span.record("error.type", error.to_string());
    }
    // Ending twice is harmless: the SDK exports a span once, and tracing-opentelemetry's
    // own end when the last clone closes finds it already ended.
    span.context().span().end();
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
