//! Two real axum apps on port 0 and a reqwest call between them: one trace across the
//! hop, the downstream server span parented on the client span, baggage delivered,
//! and the trace id handed back in response headers.

use std::time::Duration;

use axum::{Json, Router, http::HeaderMap, routing::get};
use opentelemetry::trace::{SpanKind, TraceContextExt};
use serde_json::{Value, json};
use telemetry::testing::{self, attribute, attribute_value, span_named};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}")
}

/// Downstream: reports what arrived on the wire and what its span context sees.
fn downstream() -> Router {
    telemetry::http::instrument_router(Router::new().route(
        "/items/{id}",
        get(|headers: HeaderMap| async move {
            let header = |k: &str| {
                headers
                    .get(k)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            };
            Json(json!({
                "traceparent": header("traceparent"),
                "baggage_header": header("baggage"),
                "scenario": telemetry::baggage::get("tracelab.scenario"),
                "trace_id": telemetry::current_trace_id(),
            }))
        }),
    ))
}

/// Upstream: calls downstream inside a span that carries baggage.
fn upstream(downstream_url: String) -> Router {
    let client = telemetry::http::client();
    telemetry::http::instrument_router(Router::new().route(
        "/front",
        get(move || {
            let client = client.clone();
            let url = format!("{downstream_url}/items/42");
            async move {
                let span = tracing::info_span!("handle_front");
                telemetry::baggage::attach(&span, &[("tracelab.scenario", "payment.slow")]);
                let body: Value =
                    async { client.get(&url).send().await.unwrap().json().await.unwrap() }
                        .instrument(span)
                        .await;
                Json(body)
            }
        }),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_across_an_http_hop_with_baggage() {
    let t = testing::init();
    let down = serve(downstream()).await;
    let up = serve(upstream(down)).await;

    let response = reqwest::get(format!("{up}/front")).await.unwrap();
    assert_eq!(response.status(), 200);
    let trace_id = response.headers()["x-trace-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let traceresponse = response.headers()["traceresponse"]
        .to_str()
        .unwrap()
        .to_owned();
    let body: Value = response.json().await.unwrap();

    assert_eq!(trace_id.len(), 32);
    assert!(
        traceresponse.starts_with(&format!("00-{trace_id}-")),
        "{traceresponse}"
    );
    assert_eq!(body["trace_id"], trace_id, "downstream sees the same trace");
    assert_eq!(body["scenario"], "payment.slow", "baggage arrived: {body}");
    assert!(
        body["baggage_header"]
            .as_str()
            .unwrap()
            .contains("tracelab.scenario=payment.slow")
    );

    let spans = t.wait_for_spans(&trace_id, |s| s.len() >= 4, Duration::from_secs(10));
    let front = span_named(&spans, "GET /front");
    let handle = span_named(&spans, "handle_front");
    let client = span_named(&spans, "GET");
    let items = span_named(&spans, "GET /items/{id}");

    assert_eq!(front.span_kind, SpanKind::Server);
    assert_eq!(client.span_kind, SpanKind::Client);
    assert_eq!(items.span_kind, SpanKind::Server);
    assert_eq!(handle.parent_span_id, front.span_context.span_id());
    assert_eq!(client.parent_span_id, handle.span_context.span_id());
    assert_eq!(
        items.parent_span_id,
        client.span_context.span_id(),
        "the downstream server span's parent is the client span"
    );
    // The traceparent on the wire names the client span.
    let wire = body["traceparent"].as_str().unwrap();
    assert_eq!(
        wire,
        format!("00-{trace_id}-{}-01", client.span_context.span_id())
    );
    // traceresponse names the upstream server span.
    assert_eq!(
        traceresponse,
        format!("00-{trace_id}-{}-01", front.span_context.span_id())
    );

    // Semantic-convention attributes on both sides.
    assert_eq!(
        attribute(items, "http.route").as_deref(),
        Some("/items/{id}")
    );
    assert_eq!(
        attribute(items, "http.request.method").as_deref(),
        Some("GET")
    );
    // An integer on both sides, as the semantic conventions say, not the string "200".
    assert_eq!(
        attribute_value(items, "http.response.status_code"),
        Some(opentelemetry::Value::I64(200))
    );
    assert_eq!(
        attribute(client, "http.request.method").as_deref(),
        Some("GET")
    );
    assert_eq!(
        attribute_value(client, "http.response.status_code"),
        Some(opentelemetry::Value::I64(200))
    );
    assert!(
        attribute(client, "url.full")
            .unwrap()
            .ends_with("/items/42")
    );
    assert_eq!(
        attribute(client, "server.address").as_deref(),
        Some("127.0.0.1")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incoming_traceparent_is_continued() {
    let t = testing::init();
    let down = serve(downstream()).await;
    let caller_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller_span = "00f067aa0ba902b7";
    let response = reqwest::Client::new()
        .get(format!("{down}/items/7"))
        .header("traceparent", format!("00-{caller_trace}-{caller_span}-01"))
        .header("baggage", "tracelab.scenario=checkout")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-trace-id"], caller_trace);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["scenario"], "checkout");

    let spans = t.wait_for_spans(caller_trace, |s| !s.is_empty(), Duration::from_secs(10));
    let server = span_named(&spans, "GET /items/{id}");
    assert_eq!(server.parent_span_id.to_string(), caller_span);
    assert!(server.parent_span_is_remote);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn context_survives_being_stored_as_data() {
    let t = testing::init();
    let (trace_id, stored, parent_span_id) = {
        let span = tracing::info_span!("write_outbox_row");
        let _guard = span.enter();
        let cx = span.context();
        (
            telemetry::current_trace_id().unwrap(),
            telemetry::propagation::inject_current(),
            cx.span().span_context().span_id(),
        )
    };
    // Later, elsewhere: continue the trace from the stored map.
    let relay = tracing::info_span!("relay");
    relay
        .set_parent(telemetry::propagation::extract(&stored))
        .unwrap();
    drop(relay);

    let spans = t.wait_for_spans(&trace_id, |s| s.len() >= 2, Duration::from_secs(5));
    assert_eq!(span_named(&spans, "relay").parent_span_id, parent_span_id);
}

/// A 4xx answer makes the CLIENT span an error (the semantic conventions' rule for
/// clients) and its status code stays an integer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_span_of_a_404_is_an_error_with_an_integer_status() {
    let t = testing::init();
    let down = serve(downstream()).await;
    let client = telemetry::http::client();
    let root = tracing::info_span!("call_missing");
    let trace_id = root.in_scope(|| telemetry::current_trace_id().unwrap());
    let status = async {
        client
            .get(format!("{down}/missing"))
            .send()
            .await
            .unwrap()
            .status()
    }
    .instrument(root)
    .await;
    assert_eq!(status, 404);

    let spans = t.wait_for_spans(
        &trace_id,
        |s| s.iter().any(|s| s.name == "call_missing"),
        Duration::from_secs(10),
    );
    let client = testing::child(&spans, span_named(&spans, "call_missing"), "GET");
    assert_eq!(client.span_kind, SpanKind::Client);
    assert!(testing::is_error(client), "{:?}", client.status);
    assert_eq!(
        attribute_value(client, "http.response.status_code"),
        Some(opentelemetry::Value::I64(404))
    );
}
