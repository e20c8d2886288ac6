//! Client-side HTTP instrumentation for reqwest.
//!
//! `reqwest-tracing` makes the CLIENT span with semconv attributes. Its OpenTelemetry
//! feature stops at otel 0.32 (enabling it compiles but sends no `traceparent` with
//! 0.33), so [`InjectContext`] injects `traceparent` and `baggage` itself, from inside
//! the client span so the downstream server's parent is the client span.
//!
//! reqwest-tracing records `http.response.status_code` as a `u16`, and
//! tracing-opentelemetry has no `u64` conversion, so the attribute would arrive as the
//! string `"200"`; [`ClientSpans`] records it as an `i64`, like the server spans and the
//! semantic conventions.

use http::Extensions;
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware, Middleware, Next};
use reqwest_tracing::{
    ERROR_CAUSE_CHAIN, ERROR_MESSAGE, HTTP_RESPONSE_STATUS_CODE, OTEL_STATUS_CODE,
    ReqwestOtelSpanBackend, SpanBackendWithUrl, TracingMiddleware,
};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// A reqwest client with client spans and context injection.
pub fn client() -> ClientWithMiddleware {
    client_with(reqwest::Client::new())
}

/// Instruments a client you configured yourself (timeouts, pools).
pub fn client_with(client: reqwest::Client) -> ClientWithMiddleware {
    ClientBuilder::new(client)
        .with(TracingMiddleware::<ClientSpans>::new())
        .with(InjectContext)
        .build()
}

/// Injects the current span's context (`traceparent`, `tracestate`, `baggage`) into
/// the outgoing request. Must run inside the tracing middleware.
#[derive(Debug, Clone, Copy, Default)]
pub struct InjectContext;

#[async_trait::async_trait]
impl Middleware for InjectContext {
    async fn handle(
        &self,
        mut req: reqwest::Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        let cx = tracing::Span::current().context();
        crate::propagation::inject_headers(&cx, req.headers_mut());
        next.run(req, extensions).await
    }
}

/// reqwest-tracing's span (with `url.full`), with the status code recorded as an integer.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClientSpans;

impl ReqwestOtelSpanBackend for ClientSpans {
    fn on_request_start(req: &reqwest::Request, extensions: &mut Extensions) -> tracing::Span {
        SpanBackendWithUrl::on_request_start(req, extensions)
    }

    fn on_request_end(
        span: &tracing::Span,
        outcome: &reqwest_middleware::Result<reqwest::Response>,
        _: &mut Extensions,
    ) {
        let status = match outcome {
            Ok(response) => Some(response.status()),
            Err(error) => {
                span.record(OTEL_STATUS_CODE, "ERROR");
                span.record(ERROR_MESSAGE, error.to_string());
                span.record(ERROR_CAUSE_CHAIN, format!("{error:?}"));
                error.status()
            }
        };
        if let Some(status) = status {
            // A CLIENT span is an error from 400 on (the server side leaves 4xx unset).
            if status.as_u16() >= 400 {
                span.record(OTEL_STATUS_CODE, "ERROR");
            }
            span.record(HTTP_RESPONSE_STATUS_CODE, i64::from(status.as_u16()));
        }
    }
}
