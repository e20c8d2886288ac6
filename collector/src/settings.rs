//! `collector --print-config`: the config loaded and validated exactly as a run would, and every
//! environment variable the collector process reads, as one JSON document.
//!
//! The variables of the config file are the ones the loader actually asked for while
//! substituting `${env:NAME}` (recorded through the environment function it is given, so a
//! reference in a YAML comment is not one), not a text scan. The collector's own telemetry
//! variables are listed from what `telemetry::TelemetryConfig::from_env` and the telemetry kit
//! read ([`TELEMETRY_VARS`]), and the OpenTelemetry SDK knobs the exporter crates read once
//! the collector's own export is on ([`TELEMETRY_SDK_VARS`]), then what the runtime
//! ([`RUNTIME_VARS`]) and the HTTP client's proxy support ([`HTTP_CLIENT_VARS`]) read.

use std::cell::RefCell;
use std::path::PathBuf;

use serde::Serialize;
use serde_json::Value;

use crate::config::ConfigError;

/// The variable naming the config file (the `--config` flag's environment fallback).
pub const CONFIG_VAR: &str = "COLLECTOR_CONFIG";

/// Read by `telemetry::TelemetryConfig::from_env` and the kit's resource setup.
pub const TELEMETRY_VARS: &[&str] = &[
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_SDK_DISABLED",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_TRACES_EXPORTER",
    "OTEL_METRICS_EXPORTER",
    "OTEL_LOGS_EXPORTER",
    "RUST_LOG",
    "TRACELAB_SPAN_FILTER",
];

/// Read by the OpenTelemetry SDK / OTLP exporter crates themselves when the collector exports
/// its own telemetry (only with `OTEL_EXPORTER_OTLP_ENDPOINT` set).
pub const TELEMETRY_SDK_VARS: &[&str] = &[
    "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_EXPORTER_OTLP_TIMEOUT",
    "OTEL_EXPORTER_OTLP_COMPRESSION",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
    "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
    "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    "OTEL_EXPORTER_OTLP_METRICS_HEADERS",
    "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT",
    "OTEL_EXPORTER_OTLP_METRICS_COMPRESSION",
    "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
    "OTEL_EXPORTER_OTLP_LOGS_HEADERS",
    "OTEL_EXPORTER_OTLP_LOGS_TIMEOUT",
    "OTEL_EXPORTER_OTLP_LOGS_COMPRESSION",
    "OTEL_TRACES_SAMPLER",
    "OTEL_TRACES_SAMPLER_ARG",
    "OTEL_METRIC_EXPORT_INTERVAL",
    "OTEL_METRIC_EXPORT_TIMEOUT",
    "OTEL_BSP_SCHEDULE_DELAY",
    "OTEL_BSP_EXPORT_TIMEOUT",
    "OTEL_BSP_MAX_QUEUE_SIZE",
    "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
    "OTEL_BSP_MAX_CONCURRENT_EXPORTS",
    "OTEL_BLRP_SCHEDULE_DELAY",
    "OTEL_BLRP_EXPORT_TIMEOUT",
    "OTEL_BLRP_MAX_QUEUE_SIZE",
    "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE",
];

/// Read by the runtime: tokio's multi-thread runtime (`TOKIO_WORKER_THREADS`) and the standard
/// library's panic handler (`RUST_BACKTRACE`, `RUST_LIB_BACKTRACE`).
pub const RUNTIME_VARS: &[&str] = &[
    "TOKIO_WORKER_THREADS",
    "RUST_BACKTRACE",
    "RUST_LIB_BACKTRACE",
];

/// Read by reqwest (through hyper-util's proxy matcher) whenever an HTTP client is built: the
/// `otlphttp` exporter's, and the telemetry kit's for OTLP/HTTP self-export.
pub const HTTP_CLIENT_VARS: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "ALL_PROXY",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
    "REQUEST_METHOD",
];

/// One environment variable the process reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Setting {
    pub env: String,
    /// The value in effect (after a `:-default`; `""` for a config reference to an unset variable
    /// without a default); `null` for an unset telemetry variable.
    pub value: Option<String>,
    /// `flag` / `env` / `default` for `COLLECTOR_CONFIG`; `env` / `default` / `unset` for config
    /// references; `env` / `unset` for telemetry variables.
    pub source: &'static str,
    /// Who reads it: `cli`, `config`, `telemetry`, `telemetry-sdk`, `runtime` or `http-client`.
    pub read_by: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct PrintedConfig {
    pub binary: &'static str,
    /// The config file; several merged files are joined with ` + ` (as in `validate`'s output).
    pub config_file: String,
    /// Every config file, in merge order.
    pub config_files: Vec<String>,
    pub settings: Vec<Setting>,
    /// The loader's warnings (`file:line: path: message`): unset variables referenced without a
    /// default. Empty when none.
    pub warnings: Vec<String>,
    pub config: Value,
}

/// `${env:NAME:-default}` references in `text`, in order: (name, default).
fn defaults_in(text: &str) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        let tail = &rest[i..];
        if let Some(after) = tail.strip_prefix("$$") {
            rest = after;
            continue;
        }
        let Some(body) = tail.strip_prefix("${") else {
            rest = &tail[1..];
            continue;
        };
        let Some(end) = body.find('}') else { break };
        let reference = body[..end].strip_prefix("env:").unwrap_or(&body[..end]);
        let (name, default) = match reference.split_once(":-") {
            Some((n, d)) => (n, Some(d.to_string())),
            None => (reference, None),
        };
        out.push((name.to_string(), default));
        rest = &body[end + 1..];
    }
    out
}

/// Loads and validates `paths` (merged in order) as a run would (same loader, same
/// environment), then describes them. `config_source` says where the paths came from (`flag`,
/// `env` or `default`).
pub fn print_config(
    paths: &[PathBuf],
    config_source: &'static str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<PrintedConfig, ConfigError> {
    let sources = crate::config::read_files(paths)?;
    let sources: Vec<(&str, &str)> = sources
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    let asked: RefCell<Vec<String>> = RefCell::new(Vec::new());
    let recording = |k: &str| {
        let mut a = asked.borrow_mut();
        if !a.iter().any(|x| x == k) {
            a.push(k.to_string());
        }
        env(k)
    };
    let loaded = crate::config::load_sources_with_env(&sources, &recording)?;
    let doc = crate::config::merge_sources(&sources, env)?;
    let names: Vec<String> = sources.iter().map(|(n, _)| n.to_string()).collect();
    let mut settings = vec![Setting {
        env: CONFIG_VAR.into(),
        value: Some(names.join(",")),
        source: config_source,
        read_by: "cli",
    }];
    let defaults: Vec<_> = sources.iter().flat_map(|(_, t)| defaults_in(t)).collect();
    for var in asked.into_inner() {
        let default = defaults
            .iter()
            .find(|(n, d)| *n == var && d.is_some())
            .and_then(|(_, d)| d.clone());
        let set = env(&var);
        // As the loader substitutes: a set variable (even empty) wins; the default only when
        // unset; unset without a default expands to "" (source `unset`).
        let (value, source) = match (set, default) {
            (Some(v), _) => (Some(v), "env"),
            (None, Some(d)) => (Some(d), "default"),
            (None, None) => (Some(String::new()), "unset"),
        };
        settings.push(Setting {
            env: var,
            value,
            source,
            read_by: "config",
        });
    }
    for (vars, read_by) in [
        (TELEMETRY_VARS, "telemetry"),
        (TELEMETRY_SDK_VARS, "telemetry-sdk"),
        (RUNTIME_VARS, "runtime"),
        (HTTP_CLIENT_VARS, "http-client"),
    ] {
        for var in vars {
            if settings.iter().any(|s| s.env == *var) {
                continue;
            }
            let value = env(var);
            settings.push(Setting {
                env: var.to_string(),
                source: if value.is_some() { "env" } else { "unset" },
                value,
                read_by,
            });
        }
    }
    Ok(PrintedConfig {
        binary: "collector",
        config_file: names.join(" + "),
        config_files: names,
        settings,
        warnings: loaded.warnings.iter().map(|w| w.to_string()).collect(),
        config: doc.value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_and_defaults_are_found_in_order() {
        assert_eq!(
            defaults_in("a: ${env:A}\nb: $${NOT}\nc: ${env:B:-x:y}\nd: ${C}"),
            [
                ("A".to_string(), None),
                ("B".to_string(), Some("x:y".to_string())),
                ("C".to_string(), None)
            ]
        );
    }

    #[test]
    fn settings_list_config_references_with_their_source() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.yaml");
        std::fs::write(
            &path,
            "# ${env:IN_A_COMMENT}\nreceivers:\n  otlp:\n    protocols:\n      grpc: {endpoint: \"${env:GRPC:-0.0.0.0:4317}\"}\n      http: {endpoint: \"${env:HTTP:-0.0.0.0:4318}\"}\nexporters:\n  debug:\nservice:\n  pipelines:\n    traces: {receivers: [otlp], exporters: [debug]}\n",
        )
        .unwrap();
        let env = |k: &str| match k {
            "HTTP" => Some("127.0.0.1:9999".to_string()),
            "RUST_LOG" => Some("debug".to_string()),
            _ => None,
        };
        let p = print_config(&[path], "flag", &env).unwrap();
        let get = |n: &str| p.settings.iter().find(|s| s.env == n).cloned();
        assert_eq!(get("COLLECTOR_CONFIG").unwrap().source, "flag");
        let grpc = get("GRPC").unwrap();
        assert_eq!(
            (grpc.value.as_deref(), grpc.source),
            (Some("0.0.0.0:4317"), "default")
        );
        let http = get("HTTP").unwrap();
        assert_eq!(
            (http.value.as_deref(), http.source),
            (Some("127.0.0.1:9999"), "env")
        );
        assert!(get("IN_A_COMMENT").is_none(), "comments are not read");
        assert_eq!(get("RUST_LOG").unwrap().source, "env");
        assert_eq!(get("OTEL_SERVICE_NAME").unwrap().source, "unset");
        for v in [
            "OTEL_BSP_SCHEDULE_DELAY",
            "TOKIO_WORKER_THREADS",
            "HTTPS_PROXY",
        ] {
            assert_eq!(get(v).unwrap().source, "unset", "{v}");
        }
        let mut names: Vec<&str> = p.settings.iter().map(|s| s.env.as_str()).collect();
        let n = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), n, "each variable once");
        assert_eq!(
            p.config["receivers"]["otlp"]["protocols"]["http"]["endpoint"],
            "127.0.0.1:9999"
        );
    }
}
