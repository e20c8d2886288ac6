//! Telemetry settings, read from the standard `OTEL_*` environment variables.
//!
//! Apart from [`SPAN_FILTER_ENV`], only the variables the OpenTelemetry specification
//! defines are read, so any deployment recipe written for another OpenTelemetry SDK
//! configures ours too.
//! The exporter crates read the finer knobs themselves (`OTEL_EXPORTER_OTLP_HEADERS`,
//! `..._TIMEOUT`, `..._COMPRESSION`, per-signal endpoints, `OTEL_TRACES_SAMPLER(_ARG)`,
//! `OTEL_METRIC_EXPORT_INTERVAL`, `OTEL_BSP_*`).

use std::env;

/// `RUST_LOG`-style directives choosing which spans (and span events) are exported,
/// e.g. `info,order_service=debug`. tracelab's own name: the specification has no such
/// variable, and `RUST_LOG` filters logs, which must not cut traces.
pub const SPAN_FILTER_ENV: &str = "TRACELAB_SPAN_FILTER";

/// The span filter when [`SPAN_FILTER_ENV`] is unset: every INFO+ span.
pub const DEFAULT_SPAN_FILTER: &str = "info";

/// Wire protocol of the OTLP exporters (`OTEL_EXPORTER_OTLP_PROTOCOL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Grpc,
    HttpProtobuf,
    HttpJson,
}

impl Protocol {
    /// Parses the specification's spelling: `grpc`, `http/protobuf`, `http/json`.
    pub fn parse(value: &str) -> Option<Self> {
        match value.trim().to_ascii_lowercase().as_str() {
            "grpc" => Some(Self::Grpc),
            "http/protobuf" => Some(Self::HttpProtobuf),
            "http/json" => Some(Self::HttpJson),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Grpc => "grpc",
            Self::HttpProtobuf => "http/protobuf",
            Self::HttpJson => "http/json",
        }
    }
}

/// Everything [`crate::init_with`] needs. Build it with [`TelemetryConfig::from_env`]
/// and override fields in code (tests point the exporters at a local receiver this way,
/// without touching the process environment).
#[derive(Debug, Clone)]
pub struct TelemetryConfig {
    /// `service.name` used when neither `OTEL_SERVICE_NAME` nor a `service.name` in
    /// `OTEL_RESOURCE_ATTRIBUTES` is set.
    pub default_service_name: String,
    /// `service.version` used unless `OTEL_RESOURCE_ATTRIBUTES` sets one (usually
    /// `env!("CARGO_PKG_VERSION")`); empty means none.
    pub service_version: String,
    /// `OTEL_SDK_DISABLED=true`: no exporters, no-op providers; JSON logs and context
    /// propagation still work.
    pub sdk_disabled: bool,
    /// `OTEL_EXPORTER_OTLP_PROTOCOL`; `None` means the specification's default, `http/protobuf`.
    pub protocol: Option<Protocol>,
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`; `None` lets the exporter use its default
    /// (`http://localhost:4317` for gRPC, `http://localhost:4318` for HTTP).
    pub endpoint: Option<String>,
    /// Export traces, metrics and logs over OTLP. Off when `OTEL_TRACES_EXPORTER`,
    /// `OTEL_METRICS_EXPORTER` or `OTEL_LOGS_EXPORTER` is `none`.
    pub export_traces: bool,
    pub export_metrics: bool,
    pub export_logs: bool,
    /// `RUST_LOG`-style directives for stdout and the OTLP log bridge.
    pub log_filter: String,
    /// `TRACELAB_SPAN_FILTER`: `RUST_LOG`-style directives for the exported spans.
    pub span_filter: String,
    /// Write JSON logs to stdout.
    pub stdout_logs: bool,
}

impl TelemetryConfig {
    /// Reads the variables; `default_service_name` and `service_version` (usually
    /// `env!("CARGO_PKG_VERSION")`) are used when the environment sets no `service.name` /
    /// `service.version`.
    pub fn from_env(default_service_name: &str, service_version: &str) -> Self {
        let var = |name: &str| env::var(name).ok().filter(|v| !v.trim().is_empty());
        let exporter_on = |name: &str| var(name).is_none_or(|v| !v.eq_ignore_ascii_case("none"));
        Self {
            default_service_name: default_service_name.to_owned(),
            service_version: service_version.to_owned(),
            sdk_disabled: var("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")),
            protocol: var("OTEL_EXPORTER_OTLP_PROTOCOL").and_then(|v| Protocol::parse(&v)),
            endpoint: var("OTEL_EXPORTER_OTLP_ENDPOINT"),
            export_traces: exporter_on("OTEL_TRACES_EXPORTER"),
            export_metrics: exporter_on("OTEL_METRICS_EXPORTER"),
            export_logs: exporter_on("OTEL_LOGS_EXPORTER"),
            log_filter: var("RUST_LOG").unwrap_or_else(|| "info".to_owned()),
            span_filter: span_filter_from_env(),
            stdout_logs: true,
        }
    }

    /// The protocol actually used: the configured one or the specification's default.
    pub fn effective_protocol(&self) -> Protocol {
        self.protocol.unwrap_or(Protocol::HttpProtobuf)
    }
}

/// [`SPAN_FILTER_ENV`], or [`DEFAULT_SPAN_FILTER`] when unset or blank.
pub fn span_filter_from_env() -> String {
    env::var(SPAN_FILTER_ENV)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_SPAN_FILTER.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_spellings_follow_the_specification() {
        assert_eq!(Protocol::parse("grpc"), Some(Protocol::Grpc));
        assert_eq!(
            Protocol::parse("HTTP/Protobuf"),
            Some(Protocol::HttpProtobuf)
        );
        assert_eq!(Protocol::parse("http/json"), Some(Protocol::HttpJson));
        assert_eq!(Protocol::parse("http"), None);
        for p in [Protocol::Grpc, Protocol::HttpProtobuf, Protocol::HttpJson] {
            assert_eq!(Protocol::parse(p.as_str()), Some(p));
        }
    }
}
