//! W3C Trace Context + Baggage propagation, and carriers for contexts stored as data
//! (an outbox row, a job payload) rather than sent as headers.

use std::collections::HashMap;

use opentelemetry::{Context, global, propagation::TextMapCompositePropagator};
use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Response header carrying the 32-hex trace id, for humans and test clients. Set by
/// `http::server` (feature `axum`); defined here so clients can read it without axum.
pub const TRACE_ID_HEADER: &str = "x-trace-id";

/// Installs `tracecontext,baggage` — the specification's default `OTEL_PROPAGATORS`.
/// Idempotent; [`crate::init`] calls it.
pub fn install_global_propagator() {
    global::set_text_map_propagator(TextMapCompositePropagator::new(vec![
        Box::new(TraceContextPropagator::new()),
        Box::new(BaggagePropagator::new()),
    ]));
}

/// The current span's context as `traceparent`/`tracestate`/`baggage` entries.
pub fn inject_current() -> HashMap<String, String> {
    inject_context(&tracing::Span::current().context())
}

pub fn inject_context(cx: &Context) -> HashMap<String, String> {
    let mut map = HashMap::new();
    global::get_text_map_propagator(|p| p.inject_context(cx, &mut map));
    map
}

/// Rebuilds a context from entries made by [`inject_current`]; use it as a span's
/// parent with `OpenTelemetrySpanExt::set_parent`.
pub fn extract(map: &HashMap<String, String>) -> Context {
    global::get_text_map_propagator(|p| p.extract(map))
}

/// Injects a context into HTTP headers.
pub fn inject_headers(cx: &Context, headers: &mut http::HeaderMap) {
    global::get_text_map_propagator(|p| {
        p.inject_context(cx, &mut opentelemetry_http::HeaderInjector(headers));
    });
}

/// Extracts a context from HTTP headers.
pub fn extract_headers(headers: &http::HeaderMap) -> Context {
    global::get_text_map_propagator(|p| p.extract(&opentelemetry_http::HeaderExtractor(headers)))
}
