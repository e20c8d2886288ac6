//! Client-side HTTP instrumentation for reqwest.
//!
//! `reqwest-tracing` makes the CLIENT span with semconv attributes. Its OpenTelemetry
//! feature stops at otel 0.32 (enabling it compiles but sends no `traceparent` with
//! 0.33), so [`InjectContext`] injects `traceparent` and `baggage` itself, from inside
//! the client span so the downstream server's parent is the client span.

use http::Extensions;
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware, Middleware, Next};
use reqwest_tracing::{SpanBackendWithUrl, TracingMiddleware};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// A reqwest client with client spans and context injection.
pub fn client() -> ClientWithMiddleware {
    client_with(reqwest::Client::new())
}

/// Instruments a client you configured yourself (timeouts, pools).
pub fn client_with(client: reqwest::Client) -> ClientWithMiddleware {
    ClientBuilder::new(client)
        .with(TracingMiddleware::<SpanBackendWithUrl>::new())
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
