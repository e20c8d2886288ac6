//! W3C baggage on tracing spans: read an entry, or make a span carry new entries to
//! everything beneath it — its child spans and every HTTP or Kafka call made inside it.

use opentelemetry::{KeyValue, baggage::BaggageExt};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The value of baggage entry `key` in the current span's context.
pub fn get(key: &str) -> Option<String> {
    tracing::Span::current()
        .context()
        .baggage()
        .get(key)
        .map(|v| v.as_str().to_owned())
}

/// Makes `span` carry `entries` as baggage. `span` must be a child of the current span
/// that has not been entered yet: its parent stays the current span, and the baggage rides
/// on its context from then on.
pub fn attach(span: &tracing::Span, entries: &[(&str, &str)]) {
    let cx = tracing::Span::current().context().with_baggage(
        entries
            .iter()
            .map(|(k, v)| KeyValue::new(k.to_string(), v.to_string())),
    );
    // Fails only for a disabled span or one already started; neither carries context.
    let _ = span.set_parent(cx);
}
