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
/// memory, plus the W3C propagators. Safe to call from every test.
pub fn init() -> TestTelemetry {
    static INSTANCE: OnceLock<TestTelemetry> = OnceLock::new();
    INSTANCE
        .get_or_init(|| {
            crate::propagation::install_global_propagator();
            let exporter = InMemorySpanExporter::default();
            // The SDK builder still reads OTEL_TRACES_SAMPLER, like production.
            let provider = SdkTracerProvider::builder()
                .with_simple_exporter(exporter.clone())
                .build();
            global::set_tracer_provider(provider.clone());
            let logs = tracing_subscriber::fmt::layer()
                .with_test_writer()
                .with_filter(EnvFilter::new(
                    std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
                ));
            let subscriber = tracing_subscriber::registry()
                .with(crate::otel_trace_layer(&provider))
                .with(logs);
            // Another harness may have installed one already; spans then go there.
            let _ = tracing::subscriber::set_global_default(subscriber);
            // The provider must outlive every test of the process.
            std::mem::forget(provider);
            TestTelemetry { exporter }
        })
        .clone()
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
