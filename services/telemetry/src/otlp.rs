//! OTLP exporters and SDK providers for traces, metrics and logs.
//!
//! One protocol switch (`OTEL_EXPORTER_OTLP_PROTOCOL`) picks tonic (gRPC) or the blocking
//! reqwest client (HTTP protobuf/JSON). The blocking client is deliberate: the SDK's batch
//! processors run on their own threads, where an async client would have no runtime.

use opentelemetry::KeyValue;
use opentelemetry_otlp::{ExporterBuildError, WithExportConfig};
use opentelemetry_sdk::{
    Resource, logs::SdkLoggerProvider, metrics::SdkMeterProvider, trace::SdkTracerProvider,
};

use crate::config::{Protocol, TelemetryConfig};

/// The `service.*` resource: environment detectors first (`OTEL_SERVICE_NAME`,
/// `OTEL_RESOURCE_ATTRIBUTES`), the compiled-in default name only when they name no service.
pub fn resource(config: &TelemetryConfig) -> Resource {
    let env_names_service = std::env::var("OTEL_SERVICE_NAME").is_ok_and(|v| !v.is_empty())
        || std::env::var("OTEL_RESOURCE_ATTRIBUTES").is_ok_and(|v| {
            v.split(',')
                .any(|kv| kv.trim().starts_with("service.name="))
        });
    let mut builder = Resource::builder();
    if !env_names_service {
        builder = builder.with_service_name(config.default_service_name.clone());
    }
    if !config.service_version.is_empty() {
        builder = builder.with_attribute(KeyValue::new(
            "service.version",
            config.service_version.clone(),
        ));
    }
    builder.build()
}

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
/// off, spans are still created so context keeps propagating.
pub fn tracer_provider(
    config: &TelemetryConfig,
    resource: Resource,
) -> Result<SdkTracerProvider, ExporterBuildError> {
    let mut builder = SdkTracerProvider::builder().with_resource(resource);
    if !config.sdk_disabled && config.export_traces {
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
