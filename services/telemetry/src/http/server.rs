//! Server-side HTTP instrumentation for axum.
//!
//! `axum-tracing-opentelemetry` makes the SERVER span (`METHOD /route`, semconv
//! attributes, parent extracted from `traceparent`/`baggage`, status from the response).
//! On top of it this module adds what that crate leaves out: the `X-Trace-Id` and W3C
//! `traceresponse` response headers, and the `http.server.request.duration` histogram
//! (the README says why `OtelInResponseLayer` and `opentelemetry-instrumentation-tower`
//! do not fit).

use std::{sync::OnceLock, time::Instant};

use axum::{
    Router,
    extract::{MatchedPath, Request},
    middleware::Next,
    response::Response,
};
use axum_tracing_opentelemetry::middleware::OtelAxumLayer;
use http::HeaderValue;
use opentelemetry::{KeyValue, metrics::Histogram, trace::TraceContextExt};
use tracing_opentelemetry::OpenTelemetrySpanExt;

pub use crate::propagation::TRACE_ID_HEADER;

/// Instruments every route of `router` (add routes first, then call this).
pub fn instrument_router<S>(router: Router<S>) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    // `layer` wraps inside-out: the OTel layer is outermost, so the span is current
    // while `trace_headers_and_metrics` runs.
    router
        .layer(axum::middleware::from_fn(trace_headers_and_metrics))
        .layer(OtelAxumLayer::default())
}

fn duration_histogram() -> &'static Histogram<f64> {
    static HISTOGRAM: OnceLock<Histogram<f64>> = OnceLock::new();
    // Created on first use, after `init` installed the global meter provider.
    HISTOGRAM.get_or_init(|| {
        opentelemetry::global::meter("telemetry.http.server")
            .f64_histogram("http.server.request.duration")
            .with_unit("s")
            .with_description("Duration of HTTP server requests.")
            .with_boundaries(vec![
                0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
            ])
            .build()
    })
}

async fn trace_headers_and_metrics(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().as_str().to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned());

    let mut response = next.run(request).await;

    let cx = tracing::Span::current().context();
    let span = cx.span();
    let sc = span.span_context();
    if sc.is_valid() {
        let flags = if sc.is_sampled() { "01" } else { "00" };
        let headers = response.headers_mut();
        if let Ok(v) = HeaderValue::from_str(&sc.trace_id().to_string()) {
            headers.insert(TRACE_ID_HEADER, v);
        }
        let traceresponse = format!("00-{}-{}-{flags}", sc.trace_id(), sc.span_id());
        if let Ok(v) = HeaderValue::from_str(&traceresponse) {
            headers.insert("traceresponse", v);
        }
    }

    let mut attributes = vec![
        KeyValue::new("http.request.method", method),
        KeyValue::new(
            "http.response.status_code",
            i64::from(response.status().as_u16()),
        ),
        KeyValue::new("url.scheme", "http"),
    ];
    // Unmatched paths stay out of the label set: they are unbounded.
    if let Some(route) = route {
        attributes.push(KeyValue::new("http.route", route));
    }
    duration_histogram().record(started.elapsed().as_secs_f64(), &attributes);
    response
}
