//! Span assertions in tests: a process-wide subscriber that keeps finished spans in
//! memory. Every test of a binary shares it, so each test looks only at its own trace.

use std::{
    sync::OnceLock,
    time::{Duration, Instant},
};

use opentelemetry::global;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use tracing_subscriber::{EnvFilter, Layer, layer::SubscriberExt};

/// Handle to the in-memory spans of this test process.
#[derive(Clone, Debug)]
pub struct TestTelemetry {
    exporter: InMemorySpanExporter,
}

/// Installs (once per process) a global subscriber exporting spans synchronously to
/// memory, plus the W3C propagators. Every later call, from any test of the process,
/// returns the same handle: that is the normal case, not an error.
///
/// # Panics
/// When another global subscriber was installed first (e.g. a harness called
/// `tracing_subscriber::fmt().init()`), or `TRACELAB_SPAN_FILTER` / `RUST_LOG` does not
/// parse: spans would otherwise go elsewhere and every span assertion would fail
/// with a misleading "no span named ...".
pub fn init() -> TestTelemetry {
    static INSTANCE: OnceLock<TestTelemetry> = OnceLock::new();
    INSTANCE.get_or_init(install).clone()
}

fn install() -> TestTelemetry {
    crate::propagation::install_global_propagator();
    let exporter = InMemorySpanExporter::default();
    // The SDK builder still reads OTEL_TRACES_SAMPLER, like production.
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    global::set_tracer_provider(provider.clone());
    let log_filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into());
    let logs = tracing_subscriber::fmt::layer()
        .with_test_writer()
        .with_filter(EnvFilter::try_new(&log_filter).unwrap_or_else(|e| {
            panic!("telemetry::testing::init: RUST_LOG={log_filter:?} does not parse: {e}")
        }));
    let span_filter = crate::config::span_filter_from_env();
    let spans = crate::otel_trace_layer(&provider, &span_filter).unwrap_or_else(|e| {
        panic!(
            "telemetry::testing::init: {}={span_filter:?}: {e}",
            crate::config::SPAN_FILTER_ENV
        )
    });
    let subscriber = tracing_subscriber::registry().with(spans).with(logs);
    if let Err(e) = tracing::subscriber::set_global_default(subscriber) {
        panic!(
            "telemetry::testing::init could not install its subscriber ({e}): something \
             else in this test process installed a global tracing subscriber first, so no \
             span would reach the in-memory exporter. Call telemetry::testing::init() \
             before anything that installs one, and install no other."
        );
    }
    // The provider must outlive every test of the process.
    std::mem::forget(provider);
    TestTelemetry { exporter }
}

impl TestTelemetry {
    /// All finished spans of the process.
    pub fn all_spans(&self) -> Vec<SpanData> {
        self.exporter.get_finished_spans().unwrap_or_default()
    }

    /// Finished spans of one trace (32-hex trace id).
    pub fn spans_for_trace(&self, trace_id: &str) -> Vec<SpanData> {
        self.all_spans()
            .into_iter()
            .filter(|s| s.span_context.trace_id().to_string() == trace_id)
            .collect()
    }

    /// Polls until `done(spans of the trace)` holds or `timeout` passes, and returns the
    /// spans either way: the caller's assertions then explain what is missing.
    pub fn wait_for_spans(
        &self,
        trace_id: &str,
        done: impl Fn(&[SpanData]) -> bool,
        timeout: Duration,
    ) -> Vec<SpanData> {
        let deadline = Instant::now() + timeout;
        loop {
            let spans = self.spans_for_trace(trace_id);
            if done(&spans) || Instant::now() >= deadline {
                return spans;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Finds a span by name; panics with the names present when absent.
pub fn span_named<'a>(spans: &'a [SpanData], name: &str) -> &'a SpanData {
    spans.iter().find(|s| s.name == name).unwrap_or_else(|| {
        let names: Vec<_> = spans.iter().map(|s| s.name.as_ref()).collect();
        panic!("no span named {name:?}; spans: {names:?}")
    })
}

/// The string form of attribute `key` on `span`.
pub fn attribute(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.to_string())
}

/// Attribute `key` on `span` with its type, for checks that a value is an integer
/// rather than its string form ([`attribute`] prints both the same).
pub fn attribute_value(span: &SpanData, key: &str) -> Option<opentelemetry::Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.clone())
}

/// The `X-Trace-Id` response header an `instrument_router` app sets.
#[cfg(feature = "reqwest")]
pub fn trace_id(resp: &reqwest::Response) -> String {
    resp.headers()
        .get(crate::propagation::TRACE_ID_HEADER)
        .expect("x-trace-id header")
        .to_str()
        .expect("x-trace-id is ASCII")
        .to_owned()
}

/// Waits (bounded, 30 s) until the trace holds a span of every name in `names`, and
/// returns its spans either way, from a blocking thread so the app under test keeps running.
pub async fn wait_for_names(
    telemetry: &TestTelemetry,
    trace_id: &str,
    names: &[&str],
) -> Vec<SpanData> {
    let telemetry = telemetry.clone();
    let trace_id = trace_id.to_owned();
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        telemetry.wait_for_spans(
            &trace_id,
            |spans| {
                names
                    .iter()
                    .all(|n| spans.iter().any(|s| s.name == n.as_str()))
            },
            Duration::from_secs(30),
        )
    })
    .await
    .expect("waiting for spans")
}

/// Polls an async condition every 20 ms until it holds or `timeout` passes; returns
/// whether it held.
pub async fn eventually<F, Fut>(timeout: Duration, mut condition: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if condition().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn is_child_of(child: &SpanData, parent: &SpanData) -> bool {
    child.parent_span_id == parent.span_context.span_id()
        && child.span_context.trace_id() == parent.span_context.trace_id()
}

/// The only span named `name` whose parent is `parent`; panics listing the children otherwise.
pub fn child<'a>(spans: &'a [SpanData], parent: &SpanData, name: &str) -> &'a SpanData {
    let found: Vec<&SpanData> = spans
        .iter()
        .filter(|s| s.name == name && is_child_of(s, parent))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "expected one `{name}` under `{}`; children: {:?}",
        parent.name,
        children(spans, parent)
            .iter()
            .map(|s| s.name.as_ref())
            .collect::<Vec<_>>()
    );
    found[0]
}

pub fn children<'a>(spans: &'a [SpanData], parent: &SpanData) -> Vec<&'a SpanData> {
    spans.iter().filter(|s| is_child_of(s, parent)).collect()
}

pub fn is_root(span: &SpanData) -> bool {
    span.parent_span_id == opentelemetry::trace::SpanId::INVALID
}

/// The span without a parent; panics when there is none.
pub fn root(spans: &[SpanData]) -> &SpanData {
    spans.iter().find(|s| is_root(s)).expect("a root span")
}

pub fn is_error(span: &SpanData) -> bool {
    matches!(span.status, opentelemetry::trace::Status::Error { .. })
}

pub fn duration(span: &SpanData) -> Duration {
    span.end_time
        .duration_since(span.start_time)
        .unwrap_or(Duration::ZERO)
}

pub fn event_names(span: &SpanData) -> Vec<String> {
    span.events
        .events
        .iter()
        .map(|e| e.name.to_string())
        .collect()
}

/// The string form of attribute `key` on the first event named `event`.
pub fn event_attr(span: &SpanData, event: &str, key: &str) -> Option<String> {
    span.events
        .events
        .iter()
        .find(|e| e.name == event)
        .and_then(|e| e.attributes.iter().find(|kv| kv.key.as_str() == key))
        .map(|kv| kv.value.to_string())
}

/// Every string a trace carries (names, attributes, event names and attributes), one
/// span a line — for checks that no secret leaked into telemetry.
pub fn all_text(spans: &[SpanData]) -> String {
    let mut out = String::new();
    for s in spans {
        out.push_str(&s.name);
        for kv in &s.attributes {
            out.push_str(&format!(" {}={}", kv.key, kv.value));
        }
        for e in &s.events.events {
            out.push_str(&format!(" {}", e.name));
            for kv in &e.attributes {
                out.push_str(&format!(" {}={}", kv.key, kv.value));
            }
        }
        out.push('\n');
    }
    out
}
