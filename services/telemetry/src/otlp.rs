//! OTLP exporters and SDK providers for traces, metrics and logs.
//!
//! One protocol switch (`OTEL_EXPORTER_OTLP_PROTOCOL`) picks tonic (gRPC) or the blocking
//! reqwest client (HTTP protobuf/JSON). The blocking client is deliberate: the SDK's batch
//! processors run on their own threads, where an async client would have no runtime.

use opentelemetry::{Key, KeyValue};
use opentelemetry_otlp::{ExporterBuildError, WithExportConfig};
use opentelemetry_sdk::{
    Resource,
    logs::SdkLoggerProvider,
    metrics::SdkMeterProvider,
    resource::{EnvResourceDetector, ResourceDetector as _},
    trace::SdkTracerProvider,
};

use crate::config::{Protocol, TelemetryConfig};

/// The `service.*` resource. The SDK's detectors read `OTEL_SERVICE_NAME` and
/// `OTEL_RESOURCE_ATTRIBUTES`; the compiled-in name and version fill in only what the
/// environment leaves unset, because the specification lets the environment win.
pub fn resource(config: &TelemetryConfig) -> Resource {
    // `Resource::builder()` has already run the detectors, and `with_attribute` overrides
    // what they found. The SDK detector always yields a `service.name` (`unknown_service`
    // at worst), so the environment is read once more to see which defaults it leaves room for.
    let from_env = EnvResourceDetector::new().detect();
    let otel_service_name = std::env::var("OTEL_SERVICE_NAME")
        .ok()
        .filter(|v| !v.is_empty());
    let mut builder = Resource::builder();
    if let Some(name) = otel_service_name {
        // The SDK merges `OTEL_RESOURCE_ATTRIBUTES` over `OTEL_SERVICE_NAME`; the
        // specification says `OTEL_SERVICE_NAME` takes precedence.
        builder = builder.with_service_name(name);
    } else if from_env.get(&Key::from_static_str(SERVICE_NAME)).is_none() {
        builder = builder.with_service_name(config.default_service_name.clone());
    }
    let env_sets_version = from_env
        .get(&Key::from_static_str(SERVICE_VERSION))
        .is_some();
    if !env_sets_version && !config.service_version.is_empty() {
        builder = builder.with_attribute(KeyValue::new(
            SERVICE_VERSION,
            config.service_version.clone(),
        ));
    }
    builder.build()
}

const SERVICE_NAME: &str = "service.name";
const SERVICE_VERSION: &str = "service.version";

/// The exporter builders of opentelemetry-otlp differ per signal only in type and URL
/// path, so one macro keeps the three protocol switches identical.
macro_rules! build_exporter {
    ($exporter:ty, $config:expr, $path:literal) => {{
        let config: &TelemetryConfig = $config;
        match config.effective_protocol() {
            Protocol::Grpc => {
                let mut builder = <$exporter>::builder().with_tonic();
                if let Some(endpoint) = &config.endpoint {
                    builder = builder.with_endpoint(endpoint.clone());
                }
                builder.build()
            }
            protocol @ (Protocol::HttpProtobuf | Protocol::HttpJson) => {
                let wire = if protocol == Protocol::HttpJson {
                    opentelemetry_otlp::Protocol::HttpJson
                } else {
                    opentelemetry_otlp::Protocol::HttpBinary
                };
                let mut builder = <$exporter>::builder().with_http().with_protocol(wire);
                if let Some(endpoint) = &config.endpoint {
                    // An explicit endpoint is the signal URL for the builder; the base
                    // endpoint of the specification gets the per-signal path appended.
                    builder = builder.with_endpoint(format!(
                        "{}{}",
                        endpoint.trim_end_matches('/'),
                        $path
                    ));
                }
                builder.build()
            }
        }
    }};
}

pub fn span_exporter(
    config: &TelemetryConfig,
) -> Result<opentelemetry_otlp::SpanExporter, ExporterBuildError> {
    build_exporter!(opentelemetry_otlp::SpanExporter, config, "/v1/traces")
}

pub fn metric_exporter(
    config: &TelemetryConfig,
) -> Result<opentelemetry_otlp::MetricExporter, ExporterBuildError> {
    build_exporter!(opentelemetry_otlp::MetricExporter, config, "/v1/metrics")
}

pub fn log_exporter(
    config: &TelemetryConfig,
) -> Result<opentelemetry_otlp::LogExporter, ExporterBuildError> {
    build_exporter!(opentelemetry_otlp::LogExporter, config, "/v1/logs")
}

/// Tracer provider with a batch OTLP exporter. The sampler comes from
/// `OTEL_TRACES_SAMPLER`/`OTEL_TRACES_SAMPLER_ARG` (the SDK reads them); with export
/// off, spans are still created so context keeps propagating; with `OTEL_SDK_DISABLED=true`
/// they are not recorded either.
pub fn tracer_provider(
    config: &TelemetryConfig,
    resource: Resource,
) -> Result<SdkTracerProvider, ExporterBuildError> {
    let mut builder = SdkTracerProvider::builder().with_resource(resource);
    if config.sdk_disabled {
        // The specification's no-op SDK: without a processor the default sampler would still
        // record every span (attributes, events) only to drop it at its end. Non-recording
        // spans still carry trace ids, so JSON logs and `X-Trace-Id` keep them.
        builder = builder.with_sampler(opentelemetry_sdk::trace::Sampler::AlwaysOff);
    } else if config.export_traces {
        builder = builder.with_batch_exporter(span_exporter(config)?);
    }
    Ok(builder.build())
}

pub fn meter_provider(
    config: &TelemetryConfig,
    resource: Resource,
) -> Result<SdkMeterProvider, ExporterBuildError> {
    let mut builder = SdkMeterProvider::builder().with_resource(resource);
    if !config.sdk_disabled && config.export_metrics {
        builder = builder.with_periodic_exporter(metric_exporter(config)?);
    }
    Ok(builder.build())
}

pub fn logger_provider(
    config: &TelemetryConfig,
    resource: Resource,
) -> Result<SdkLoggerProvider, ExporterBuildError> {
    let mut builder = SdkLoggerProvider::builder().with_resource(resource);
    if !config.sdk_disabled && config.export_logs {
        builder = builder.with_batch_exporter(log_exporter(config)?);
    }
    Ok(builder.build())
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::{Span as _, Tracer as _, TracerProvider as _};

    use super::*;

    #[test]
    fn a_disabled_sdk_records_no_span_but_keeps_trace_ids() {
        let mut config = TelemetryConfig::from_env("test", "0");
        config.sdk_disabled = true;
        let provider = tracer_provider(&config, resource(&config)).unwrap();
        let span = provider.tracer("t").start("work");
        assert!(!span.is_recording());
        assert!(span.span_context().is_valid());
        assert!(!span.span_context().is_sampled());
    }
}
