//! tracelab's instrumentation kit: call [`init`] once in `main`, keep the returned
//! [`TelemetryGuard`] alive, and every span, metric and log of the process leaves over
//! OTLP, configured by the standard `OTEL_*` variables (plus `TRACELAB_SPAN_FILTER` for
//! which spans are exported).
//!
//! - [`http`]: axum server spans (feature `axum`) and reqwest client spans (feature
//!   `reqwest`) with context propagation; both features are on by default.
//! - `kafka` (feature `kafka`, default): trace context in rdkafka headers,
//!   PRODUCER/CONSUMER spans.
//! - [`db`]: CLIENT spans for sqlx calls (no sqlx dependency: it wraps any future).
//! - [`baggage`], [`propagation`]: W3C baggage and context carriers.
//! - `testing` (feature `testing`): an in-memory exporter for span assertions.

pub mod baggage;
pub mod config;
pub mod db;
pub mod http;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod logs;
pub mod otlp;
pub mod propagation;
#[cfg(feature = "testing")]
pub mod testing;

use opentelemetry::{global, trace::TraceContextExt, trace::TracerProvider as _};
use opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge;
use opentelemetry_sdk::{
    logs::SdkLoggerProvider, metrics::SdkMeterProvider, trace::SdkTracerProvider,
};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::{EnvFilter, Layer, layer::SubscriberExt};

pub use config::{Protocol, TelemetryConfig};

/// Targets whose own logs must not be exported over OTLP: the exporters use them, so
/// exporting their logs would make telemetry export itself in a loop.
pub const SELF_TELEMETRY_TARGETS: &[&str] = &[
    "h2",
    "hyper",
    "hyper_util",
    "tonic",
    "tower",
    "reqwest",
    "opentelemetry",
    "opentelemetry_sdk",
    "opentelemetry_otlp",
    "opentelemetry_http",
];

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("could not build the OTLP exporter")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
    #[error("invalid filter {filter:?}")]
    Filter {
        filter: String,
        #[source]
        source: tracing_subscriber::filter::ParseError,
    },
    #[error("a global tracing subscriber is already installed")]
    AlreadyInstalled(#[from] tracing::subscriber::SetGlobalDefaultError),
}

/// Keeps the providers alive; dropping it flushes and shuts down traces, then metrics,
/// then logs (so log lines about the shutdown of the others still leave).
#[must_use = "dropping the guard shuts telemetry down"]
pub struct TelemetryGuard {
    tracer: SdkTracerProvider,
    meter: SdkMeterProvider,
    logger: SdkLoggerProvider,
}

impl TelemetryGuard {
    /// Exports everything buffered now (e.g. before a test reads the collector).
    /// Blocks: call it from a blocking context (`spawn_blocking`), not a current-thread runtime.
    pub fn force_flush(&self) {
        let _ = self.tracer.force_flush();
        let _ = self.meter.force_flush();
        let _ = self.logger.force_flush();
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        // Errors here mean the collector is unreachable; there is nobody left to tell
        // but stderr, and the process is exiting anyway.
        if let Err(e) = self.tracer.shutdown() {
            eprintln!("telemetry: trace shutdown: {e}");
        }
        if let Err(e) = self.meter.shutdown() {
            eprintln!("telemetry: metrics shutdown: {e}");
        }
        if let Err(e) = self.logger.shutdown() {
            eprintln!("telemetry: logs shutdown: {e}");
        }
    }
}

/// Initialises telemetry from the environment:
/// `telemetry::init("order-service", env!("CARGO_PKG_VERSION"))`.
///
/// `default_service_name` and `service_version` become `service.name` and
/// `service.version` unless the environment sets them (`OTEL_SERVICE_NAME`, or the keys in
/// `OTEL_RESOURCE_ATTRIBUTES`), as the specification wants.
pub fn init(
    default_service_name: &str,
    service_version: &str,
) -> Result<TelemetryGuard, TelemetryError> {
    init_with(TelemetryConfig::from_env(
        default_service_name,
        service_version,
    ))
}

/// Initialises telemetry from an explicit configuration.
pub fn init_with(config: TelemetryConfig) -> Result<TelemetryGuard, TelemetryError> {
    propagation::install_global_propagator();
    let resource = otlp::resource(&config);
    let tracer = otlp::tracer_provider(&config, resource.clone())?;
    let meter = otlp::meter_provider(&config, resource.clone())?;
    let logger = otlp::logger_provider(&config, resource)?;
    global::set_tracer_provider(tracer.clone());
    global::set_meter_provider(meter.clone());

    let stdout_filter = env_filter(&config.log_filter)?;
    let bridge_filter = env_filter(&without_self_telemetry(&config.log_filter))?;
    let stdout = (config.stdout_logs && !config.stdout_console).then(|| {
        tracing_subscriber::fmt::layer()
            .event_format(logs::JsonWithTraceIds)
            .with_writer(std::io::stdout)
            .with_filter(stdout_filter)
    });
    let console = (config.stdout_logs && config.stdout_console)
        .then(|| env_filter(&config.log_filter))
        .transpose()?
        .map(|filter| {
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(std::io::stdout)
                .with_filter(filter)
        });
    let subscriber = tracing_subscriber::registry()
        .with(otel_trace_layer(&tracer, &config.span_filter)?)
        .with(stdout)
        .with(console)
        .with(OpenTelemetryTracingBridge::new(&logger).with_filter(bridge_filter));
    tracing::subscriber::set_global_default(subscriber)?;
    Ok(TelemetryGuard {
        tracer,
        meter,
        logger,
    })
}

/// The tracing → OpenTelemetry span layer. Spans are filtered on their own: `RUST_LOG=warn`
/// quiets stdout but must not cut the trace. `span_filter` holds `RUST_LOG`-style
/// directives (`TRACELAB_SPAN_FILTER`, default `info`); the transport crates' internals
/// are switched off after them whatever they say, or exports would trace themselves.
/// The same filter decides which events become span events.
pub(crate) fn otel_trace_layer<S>(
    tracer: &SdkTracerProvider,
    span_filter: &str,
) -> Result<impl Layer<S> + Send + Sync + use<S>, TelemetryError>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a> + Send + Sync,
{
    let filter = env_filter(&without_self_telemetry(span_filter))?;
    Ok(tracing_opentelemetry::layer()
        .with_tracer(tracer.tracer("tracelab"))
        .with_error_records_to_exceptions(true)
        .with_filter(filter))
}

fn env_filter(directives: &str) -> Result<EnvFilter, TelemetryError> {
    EnvFilter::try_new(directives).map_err(|source| TelemetryError::Filter {
        filter: directives.to_owned(),
        source,
    })
}

fn without_self_telemetry(directives: &str) -> String {
    let mut out = directives.to_owned();
    for target in SELF_TELEMETRY_TARGETS {
        out.push_str(&format!(",{target}=off"));
    }
    // Directives match by target prefix, so `reqwest=off` would also silence the
    // client spans of `reqwest_tracing`; the more specific directive wins.
    out.push_str(",reqwest_tracing=info");
    out
}

/// The current span's trace id as 32 lowercase hex digits.
pub fn current_trace_id() -> Option<String> {
    let cx = tracing::Span::current().context();
    let span = cx.span();
    let sc = span.span_context();
    sc.is_valid().then(|| sc.trace_id().to_string())
}
