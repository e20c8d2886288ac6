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

/// Every environment variable a process that calls [`crate::init`] reads: the kit's own, and
/// those the OpenTelemetry SDK and OTLP exporter (0.33, with the kit's features) read themselves.
/// `(name, what it sets)`, in the order `--help` lists them. The one list behind the services'
/// `--help` (service-kit's `telemetry_env_help`) and their `--print-config`, so the two cannot drift.
///
/// Checked against the 0.33.1 sources, not the specification: left out are variables those
/// versions read but never act on here (`OTEL_BSP_MAX_CONCURRENT_EXPORTS`, used only by the
/// async-runtime processor; `OTEL_METRIC_EXPORT_TIMEOUT`, likewise; the per-signal
/// `OTEL_EXPORTER_OTLP_*_PROTOCOL`, because the kit always passes the protocol it chose from
/// `OTEL_EXPORTER_OTLP_PROTOCOL`) and those they do not read at all (`OTEL_PROPAGATORS`: the kit
/// always propagates W3C trace context and baggage).
pub const ENV_VARS: &[(&str, &str)] = &[
    (
        "OTEL_SERVICE_NAME",
        "service.name (default: the binary's name)",
    ),
    (
        "OTEL_RESOURCE_ATTRIBUTES",
        "extra resource attributes, k=v,k=v (service.version defaults to the crate version)",
    ),
    (
        "OTEL_SDK_DISABLED",
        "true: no span recorded, nothing exported (trace ids still propagate)",
    ),
    (
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTLP endpoint (default http://localhost:4318, grpc :4317)",
    ),
    (
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "traces URL, used only when OTEL_EXPORTER_OTLP_ENDPOINT is unset",
    ),
    (
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
        "metrics URL, used only when OTEL_EXPORTER_OTLP_ENDPOINT is unset",
    ),
    (
        "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
        "logs URL, used only when OTEL_EXPORTER_OTLP_ENDPOINT is unset",
    ),
    (
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        "http/protobuf (default) | grpc | http/json",
    ),
    (
        "OTEL_EXPORTER_OTLP_HEADERS",
        "headers sent with every export, k=v,k=v (per signal: OTEL_EXPORTER_OTLP_<SIGNAL>_HEADERS)",
    ),
    (
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
        "headers of trace exports",
    ),
    (
        "OTEL_EXPORTER_OTLP_METRICS_HEADERS",
        "headers of metric exports",
    ),
    ("OTEL_EXPORTER_OTLP_LOGS_HEADERS", "headers of log exports"),
    (
        "OTEL_EXPORTER_OTLP_TIMEOUT",
        "export timeout in ms (default 10000; per signal: OTEL_EXPORTER_OTLP_<SIGNAL>_TIMEOUT)",
    ),
    (
        "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
        "trace export timeout, ms",
    ),
    (
        "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT",
        "metric export timeout, ms",
    ),
    ("OTEL_EXPORTER_OTLP_LOGS_TIMEOUT", "log export timeout, ms"),
    (
        "OTEL_EXPORTER_OTLP_COMPRESSION",
        "gzip (gRPC only: the HTTP exporter lacks gzip) | none",
    ),
    (
        "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
        "compression of trace exports",
    ),
    (
        "OTEL_EXPORTER_OTLP_METRICS_COMPRESSION",
        "compression of metric exports",
    ),
    (
        "OTEL_EXPORTER_OTLP_LOGS_COMPRESSION",
        "compression of log exports",
    ),
    (
        "OTEL_EXPORTER_OTLP_INSECURE",
        "grpc only: true allows plaintext to an endpoint without a scheme",
    ),
    ("OTEL_EXPORTER_OTLP_TRACES_INSECURE", "grpc only, traces"),
    ("OTEL_EXPORTER_OTLP_METRICS_INSECURE", "grpc only, metrics"),
    ("OTEL_EXPORTER_OTLP_LOGS_INSECURE", "grpc only, logs"),
    (
        "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE",
        "cumulative (default) | delta | lowmemory",
    ),
    ("OTEL_TRACES_EXPORTER", "otlp (default) | none"),
    ("OTEL_METRICS_EXPORTER", "otlp (default) | none"),
    ("OTEL_LOGS_EXPORTER", "otlp (default) | none"),
    (
        "OTEL_TRACES_SAMPLER",
        "e.g. parentbased_traceidratio (default parentbased_always_on)",
    ),
    ("OTEL_TRACES_SAMPLER_ARG", "sampler argument, e.g. 0.25"),
    (
        "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT",
        "attributes per span (default 128)",
    ),
    (
        "OTEL_SPAN_EVENT_COUNT_LIMIT",
        "events per span (default 128)",
    ),
    ("OTEL_SPAN_LINK_COUNT_LIMIT", "links per span (default 128)"),
    (
        "OTEL_BSP_SCHEDULE_DELAY",
        "span batch interval, ms (default 5000)",
    ),
    (
        "OTEL_BSP_MAX_QUEUE_SIZE",
        "spans buffered before dropping (default 2048)",
    ),
    (
        "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
        "spans per export (default 512)",
    ),
    (
        "OTEL_BSP_EXPORT_TIMEOUT",
        "span export timeout, ms (default 30000)",
    ),
    (
        "OTEL_BLRP_SCHEDULE_DELAY",
        "log batch interval, ms (default 1000)",
    ),
    (
        "OTEL_BLRP_MAX_QUEUE_SIZE",
        "log records buffered before dropping (default 2048)",
    ),
    (
        "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE",
        "log records per export (default 512)",
    ),
    (
        "OTEL_BLRP_EXPORT_TIMEOUT",
        "log export timeout, ms (default 30000)",
    ),
    (
        "OTEL_METRIC_EXPORT_INTERVAL",
        "metric export interval, ms (default 60000)",
    ),
    (
        "RUST_LOG",
        "log filter for stdout and OTLP logs (default: info)",
    ),
    (
        SPAN_FILTER_ENV,
        "RUST_LOG-style filter for exported spans (default: info)",
    ),
];

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
    /// Write stdout logs as human-readable lines (tracing's default format) instead of JSON.
    /// Off by default; never set from the environment (the collector's
    /// `service.telemetry.logs.encoding: console` sets it).
    pub stdout_console: bool,
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
            stdout_console: false,
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
    fn env_vars_lists_every_variable_the_kit_reads() {
        let mut names: Vec<&str> = ENV_VARS.iter().map(|(name, _)| *name).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(names.len(), before, "a variable is listed twice");
        // Every `f("OTEL_…")` / `var("RUST_LOG")` in the kit's sources (the SDK's own reads were
        // checked by hand, see ENV_VARS). Skips this module's tests (ENV_VARS itself is above).
        let config = include_str!("config.rs");
        let config = &config[..config.find("mod tests").unwrap()];
        for source in [config, include_str!("otlp.rs"), include_str!("lib.rs")] {
            for read in source.split("(\"").skip(1) {
                let Some(end) = read.find('"') else { continue };
                let name = &read[..end];
                let is_var = name.chars().all(|c| c.is_ascii_uppercase() || c == '_');
                if is_var && (name.starts_with("OTEL_") || name == "RUST_LOG") {
                    assert!(names.contains(&name), "{name} is read but not in ENV_VARS");
                }
            }
        }
        assert!(names.contains(&SPAN_FILTER_ENV));
    }

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
