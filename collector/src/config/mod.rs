//! Collector configuration: the OpenTelemetry-Collector YAML schema, env substitution and validation.
//!
//! `load_file` / `load_files` / `load_str` parse the YAML (with a line for every key path, see
//! [`yaml`]), substitute `${env:VAR}`, merge several files in order as the OpenTelemetry
//! Collector does ([`merge_sources`]: every key path remembers its file and line), deserialize
//! every component into its typed config (each one `deny_unknown_fields`, through
//! `serde_path_to_error`), run each component's `validate()` and
//! check the `service.pipelines` graph. Every problem becomes a [`ConfigIssue`] naming the file,
//! the line, the full key path and what was expected; all issues are collected, not just the first.

pub mod registry;
pub mod yaml;

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

pub use crate::component::{ComponentId, FieldError, SignalKind, duration};
pub use registry::{
    ConnectorConfig, ExporterConfig, ExtensionConfig, ProcessorConfig, ReceiverConfig,
};

/// One problem in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    pub file: String,
    pub line: usize,
    /// Full key path, e.g. `processors.tail_sampling.policies[1].latency.threshold_ms`.
    pub path: String,
    pub message: String,
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: ", self.file, self.line)?;
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        write!(f, "{}", self.message)
    }
}

/// Why a config did not load: every issue found, in file order, and the warnings (unset
/// environment variables) that may explain some of them.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ConfigError {
    pub issues: Vec<ConfigIssue>,
    pub warnings: Vec<ConfigIssue>,
}

impl ConfigError {
    fn new(issues: Vec<ConfigIssue>) -> Self {
        Self {
            issues,
            warnings: Vec::new(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.issues.len();
        write!(
            f,
            "invalid collector config ({n} problem{})",
            if n == 1 { "" } else { "s" }
        )?;
        for i in &self.issues {
            write!(f, "\n  {i}")?;
        }
        for w in &self.warnings {
            write!(f, "\n  warning: {w}")?;
        }
        Ok(())
    }
}

/// One `service.pipelines` entry.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineConfig {
    pub receivers: Vec<String>,
    pub processors: Vec<String>,
    pub exporters: Vec<String>,
}

/// A pipeline after validation: `traces`, `traces/name`, ...
#[derive(Debug, Clone)]
pub struct Pipeline {
    pub id: String,
    pub signal: SignalKind,
    pub receivers: Vec<ComponentId>,
    pub processors: Vec<ComponentId>,
    pub exporters: Vec<ComponentId>,
}

/// `service.telemetry`: the collector's own telemetry.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServiceTelemetryConfig {
    pub metrics: SelfMetricsConfig,
    pub logs: SelfLogsConfig,
}

/// `service.telemetry.metrics`: where the collector serves its own `/metrics` (besides the
/// health_check extension's endpoint).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SelfMetricsConfig {
    pub address: Option<String>,
    /// `none` turns the collector's own metrics off (no `/metrics` on the health_check endpoint,
    /// no `address` server); `basic`, `normal` (default) and `detailed` all serve the same set
    /// (case-insensitive, as contrib).
    pub level: Option<String>,
}

impl SelfMetricsConfig {
    /// Whether the collector serves its own metrics (`level` is not `none`).
    pub fn enabled(&self) -> bool {
        !self
            .level
            .as_deref()
            .is_some_and(|l| l.eq_ignore_ascii_case("none"))
    }
}

/// `service.telemetry.logs`: the collector's own log output.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SelfLogsConfig {
    /// `debug`, `info` (default), `warn` or `error`: the log filter, unless `RUST_LOG` is set
    /// (non-empty), which wins.
    pub level: Option<String>,
    /// `json` (default) or `console` (human-readable lines).
    pub encoding: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct ServiceSection {
    extensions: Vec<String>,
    pipelines: BTreeMap<String, PipelineConfig>,
    telemetry: ServiceTelemetryConfig,
}

/// A config that loaded and validated: typed components and the pipeline graph.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    /// The file name (or the name given to `load_str`), used in messages; several merged files
    /// are joined with ` + ` (`gateway.yaml + tail-sampling.yaml`).
    pub source: String,
    pub receivers: BTreeMap<ComponentId, ReceiverConfig>,
    pub processors: BTreeMap<ComponentId, ProcessorConfig>,
    pub exporters: BTreeMap<ComponentId, ExporterConfig>,
    pub connectors: BTreeMap<ComponentId, ConnectorConfig>,
    pub extensions: BTreeMap<ComponentId, ExtensionConfig>,
    /// `service.extensions`: the extensions that run.
    pub service_extensions: Vec<ComponentId>,
    pub pipelines: Vec<Pipeline>,
    pub telemetry: ServiceTelemetryConfig,
    /// Not problems, but worth printing: every unset environment variable a `${env:NAME}` without
    /// a default referenced (it expanded to ""), once per variable, at its first reference.
    pub warnings: Vec<ConfigIssue>,
}

/// Reads and validates a config file.
pub fn load_file(path: impl AsRef<Path>) -> Result<LoadedConfig, ConfigError> {
    load_files(&[path.as_ref().to_path_buf()])
}

/// Reads several config files, merges them in order (see [`merge_sources`]) and validates the
/// result. Every issue names the file and line its key came from.
pub fn load_files(paths: &[PathBuf]) -> Result<LoadedConfig, ConfigError> {
    let sources = read_files(paths)?;
    let refs: Vec<(&str, &str)> = sources
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    load_sources_with_env(&refs, &|k| std::env::var(k).ok())
}

/// The text of every file, as `(name, text)`; every file that cannot be read is an issue.
pub fn read_files(paths: &[PathBuf]) -> Result<Vec<(String, String)>, ConfigError> {
    let mut sources = Vec::new();
    let mut issues = Vec::new();
    for path in paths {
        let name = path.display().to_string();
        match std::fs::read_to_string(path) {
            Ok(text) => sources.push((name, text)),
            Err(e) => issues.push(ConfigIssue {
                file: name,
                line: 0,
                path: String::new(),
                message: format!("cannot read the config file: {e}"),
            }),
        }
    }
    if paths.is_empty() {
        issues.push(ConfigIssue {
            file: String::new(),
            line: 0,
            path: String::new(),
            message: "no config file given".into(),
        });
    }
    if issues.is_empty() {
        Ok(sources)
    } else {
        Err(ConfigError::new(issues))
    }
}

/// Validates a config given as text; `name` stands for the file in messages.
pub fn load_str(yaml: &str, name: &str) -> Result<LoadedConfig, ConfigError> {
    load_str_with_env(yaml, name, &|k| std::env::var(k).ok())
}

/// Like [`load_str`] with an explicit environment (tests).
pub fn load_str_with_env(
    yaml: &str,
    name: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<LoadedConfig, ConfigError> {
    load_sources_with_env(&[(name, yaml)], env)
}

/// Parses every `(name, text)` source (each with its own `${env:...}` substitution) and merges
/// them in order as the OpenTelemetry Collector's confmap does: mappings merge key by key,
/// recursively; a later scalar, sequence or null replaces the earlier value. The document
/// records, for every key path, the file (index into `sources`) and line it came from. Parse
/// errors of every file are reported.
pub fn merge_sources(
    sources: &[(&str, &str)],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<yaml::Document, ConfigError> {
    let mut docs = Vec::new();
    let mut issues = Vec::new();
    for (name, text) in sources {
        match yaml::parse(text, env) {
            Ok(doc) => docs.push(doc),
            Err(e) => issues.push(ConfigIssue {
                file: name.to_string(),
                line: e.line,
                path: e.path,
                message: e.message,
            }),
        }
    }
    if !issues.is_empty() {
        return Err(ConfigError::new(issues));
    }
    let mut docs = docs.into_iter().enumerate();
    let mut merged = docs.next().map(|(_, d)| d).unwrap_or_default();
    for (i, doc) in docs {
        merged.merge(doc, i);
    }
    Ok(merged)
}

/// Merges and validates several `(name, text)` sources with an explicit environment.
pub fn load_sources_with_env(
    sources: &[(&str, &str)],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<LoadedConfig, ConfigError> {
    let doc = merge_sources(sources, env)?;
    let files: Vec<String> = sources.iter().map(|(n, _)| n.to_string()).collect();
    let mut l = Loader {
        files: &files,
        doc: &doc,
        issues: Vec::new(),
        broken: HashSet::new(),
    };
    let mut cfg = l.load();
    let warnings = unset_var_warnings(&doc, &files);
    if l.issues.is_empty() {
        cfg.warnings = warnings;
        Ok(cfg)
    } else {
        let mut issues = l.issues;
        issues.sort_by_key(|i| (files.iter().position(|f| *f == i.file), i.line));
        Err(ConfigError { issues, warnings })
    }
}

/// One warning per unset variable (its first reference over all files, in merge order).
fn unset_var_warnings(doc: &yaml::Document, files: &[String]) -> Vec<ConfigIssue> {
    let mut seen = HashSet::new();
    doc.unset_vars
        .iter()
        .filter(|u| seen.insert(u.name.clone()))
        .map(|u| ConfigIssue {
            file: files.get(u.file).cloned().unwrap_or_default(),
            line: u.line,
            path: u.path.clone(),
            message: format!(
                "environment variable `{}` is not set; `${{env:{}}}` expanded to \"\" (give a default with `${{env:{}:-value}}`)",
                u.name, u.name, u.name
            ),
        })
        .collect()
}

struct Loader<'d> {
    /// The files merged, in order (their names, for messages).
    files: &'d [String],
    doc: &'d yaml::Document,
    issues: Vec<ConfigIssue>,
    /// Component ids that are present but failed to parse: already reported, so pipelines
    /// referencing them get no second error.
    broken: HashSet<String>,
}

/// Deserializes `value` into `T`; the error carries the key path inside `value`.
pub(crate) fn deserialize_at<T: DeserializeOwned>(value: Value) -> Result<T, FieldError> {
    let value = if value.is_null() {
        Value::Object(Default::default())
    } else {
        value
    };
    serde_path_to_error::deserialize::<_, T>(value).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        FieldError::new(path, e.into_inner().to_string())
    })
}

/// Deserializes a component config and runs its `validate()`.
pub(crate) fn parse_component<T: DeserializeOwned>(
    value: Value,
    validate: impl Fn(&T) -> Result<(), FieldError>,
) -> Result<T, FieldError> {
    let cfg = deserialize_at::<T>(value)?;
    validate(&cfg)?;
    Ok(cfg)
}

impl Loader<'_> {
    fn issue(&mut self, path: String, message: impl Into<String>) {
        let (file, line) = self.doc.locate(&path);
        self.issues.push(ConfigIssue {
            file: self.files.get(file).cloned().unwrap_or_default(),
            line,
            path,
            message: message.into(),
        });
    }

    fn load(&mut self) -> LoadedConfig {
        let mut cfg = LoadedConfig {
            source: self.files.join(" + "),
            receivers: BTreeMap::new(),
            processors: BTreeMap::new(),
            exporters: BTreeMap::new(),
            connectors: BTreeMap::new(),
            extensions: BTreeMap::new(),
            service_extensions: Vec::new(),
            pipelines: Vec::new(),
            telemetry: ServiceTelemetryConfig::default(),
            warnings: Vec::new(),
        };
        let root = match &self.doc.value {
            Value::Object(m) => m.clone(),
            Value::Null => {
                self.issue(
                    String::new(),
                    "the config is empty; expected `receivers`, `exporters` and `service.pipelines`",
                );
                return cfg;
            }
            _ => {
                self.issue(
                    String::new(),
                    "expected a mapping with `receivers`, `processors`, `exporters`, `connectors`, `extensions`, `service`",
                );
                return cfg;
            }
        };
        const TOP: [&str; 6] = [
            "receivers",
            "processors",
            "exporters",
            "connectors",
            "extensions",
            "service",
        ];
        for key in root.keys() {
            if !TOP.contains(&key.as_str()) {
                self.issue(
                    key.clone(),
                    format!(
                        "unknown top-level key `{key}`; expected one of: {}",
                        TOP.join(", ")
                    ),
                );
            }
        }
        cfg.receivers = self.section(&root, "receivers", registry::parse_receiver);
        cfg.processors = self.section(&root, "processors", registry::parse_processor);
        cfg.exporters = self.section(&root, "exporters", registry::parse_exporter);
        cfg.connectors = self.section(&root, "connectors", registry::parse_connector);
        cfg.extensions = self.section(&root, "extensions", registry::parse_extension);

        let service_value = root.get("service").cloned().unwrap_or(Value::Null);
        if service_value.is_null() {
            self.issue(
                String::new(),
                "missing `service` section; expected `service.pipelines` with at least one pipeline",
            );
            return cfg;
        }
        let service: ServiceSection = match deserialize_at(service_value) {
            Ok(s) => s,
            Err(e) => {
                self.issue(yaml::join_key("service", &e.path), e.message);
                return cfg;
            }
        };
        cfg.telemetry = service.telemetry.clone();
        self.check_telemetry(&cfg.telemetry);
        if let Some(addr) = &cfg.telemetry.metrics.address
            && cfg.telemetry.metrics.enabled()
            && addr.parse::<std::net::SocketAddr>().is_err()
            && registry::resolve_endpoint(addr).is_err()
        {
            self.issue(
                "service.telemetry.metrics.address".into(),
                format!("invalid address `{addr}`; expected host:port"),
            );
        }
        for (i, ext) in service.extensions.iter().enumerate() {
            let path = format!("service.extensions[{i}]");
            match ComponentId::parse(ext) {
                Ok(id) if cfg.extensions.contains_key(&id) => cfg.service_extensions.push(id),
                Ok(_) => self.issue(
                    path,
                    format!(
                        "extension `{ext}` is not defined in the top-level `extensions` section"
                    ),
                ),
                Err(e) => self.issue(path, e),
            }
        }
        if service.pipelines.is_empty() {
            self.issue(
                "service.pipelines".into(),
                "no pipelines; expected at least one of `traces`, `metrics`, `logs` (or `traces/name`, ...)",
            );
        }
        let mut connector_as_exporter: BTreeMap<ComponentId, Vec<SignalKind>> = BTreeMap::new();
        let mut connector_as_receiver: BTreeMap<ComponentId, Vec<SignalKind>> = BTreeMap::new();
        for (pid, p) in &service.pipelines {
            let base = format!("service.pipelines.{pid}");
            let signal = match pid.split('/').next().unwrap_or_default() {
                "traces" => SignalKind::Traces,
                "metrics" => SignalKind::Metrics,
                "logs" => SignalKind::Logs,
                other => {
                    self.issue(
                        base,
                        format!(
                            "unknown pipeline type `{other}`; expected `traces`, `metrics` or `logs` (optionally `/name`)"
                        ),
                    );
                    continue;
                }
            };
            if pid.ends_with('/') {
                self.issue(base.clone(), "the pipeline name after `/` is empty");
            }
            let mut pipeline = Pipeline {
                id: pid.clone(),
                signal,
                receivers: Vec::new(),
                processors: Vec::new(),
                exporters: Vec::new(),
            };
            if p.receivers.is_empty() {
                self.issue(
                    format!("{base}.receivers"),
                    "a pipeline needs at least one receiver",
                );
            }
            if p.exporters.is_empty() {
                self.issue(
                    format!("{base}.exporters"),
                    "a pipeline needs at least one exporter",
                );
            }
            for (i, r) in p.receivers.iter().enumerate() {
                let path = format!("{base}.receivers[{i}]");
                let Some(id) = self.component_ref(&path, r) else {
                    continue;
                };
                if cfg.receivers.contains_key(&id) {
                    pipeline.receivers.push(id);
                } else if let Some(c) = cfg.connectors.get(&id) {
                    if !c.input_signals_for_output(signal) {
                        self.issue(
                            path,
                            format!(
                                "connector `{id}` cannot emit {} (it emits: {})",
                                signal.as_str(),
                                c.describe_outputs()
                            ),
                        );
                        continue;
                    }
                    connector_as_receiver
                        .entry(id.clone())
                        .or_default()
                        .push(signal);
                    pipeline.receivers.push(id);
                } else {
                    self.issue(
                        path,
                        format!(
                            "receiver `{r}` is not defined in `receivers` (or `connectors`); defined: {}",
                            names(cfg.receivers.keys().chain(cfg.connectors.keys()))
                        ),
                    );
                }
            }
            let mut seen = HashSet::new();
            for (i, r) in p.processors.iter().enumerate() {
                let path = format!("{base}.processors[{i}]");
                let Some(id) = self.component_ref(&path, r) else {
                    continue;
                };
                if !seen.insert(id.clone()) {
                    self.issue(
                        path,
                        format!("processor `{r}` is listed twice in this pipeline"),
                    );
                    continue;
                }
                match cfg.processors.get(&id) {
                    Some(pc) if !pc.supports(signal) => self.issue(
                        path,
                        format!(
                            "processor `{r}` does not support {} pipelines",
                            signal.as_str()
                        ),
                    ),
                    Some(_) => pipeline.processors.push(id),
                    None => self.issue(
                        path,
                        format!(
                            "processor `{r}` is not defined in `processors`; defined: {}",
                            names(cfg.processors.keys())
                        ),
                    ),
                }
            }
            for (i, r) in p.exporters.iter().enumerate() {
                let path = format!("{base}.exporters[{i}]");
                let Some(id) = self.component_ref(&path, r) else {
                    continue;
                };
                if let Some(ec) = cfg.exporters.get(&id) {
                    if ec.supports(signal) {
                        pipeline.exporters.push(id);
                    } else {
                        self.issue(
                            path,
                            format!(
                                "exporter `{r}` does not support {} pipelines",
                                signal.as_str()
                            ),
                        );
                    }
                } else if let Some(c) = cfg.connectors.get(&id) {
                    if c.accepts(signal) {
                        connector_as_exporter
                            .entry(id.clone())
                            .or_default()
                            .push(signal);
                        pipeline.exporters.push(id);
                    } else {
                        self.issue(
                            path,
                            format!("connector `{r}` cannot consume {}", signal.as_str()),
                        );
                    }
                } else {
                    self.issue(
                        path,
                        format!(
                            "exporter `{r}` is not defined in `exporters` (or `connectors`); defined: {}",
                            names(cfg.exporters.keys().chain(cfg.connectors.keys()))
                        ),
                    );
                }
            }
            cfg.pipelines.push(pipeline);
        }
        for id in cfg.connectors.keys() {
            let as_exp = connector_as_exporter.contains_key(id);
            let as_rcv = connector_as_receiver.contains_key(id);
            if as_exp != as_rcv {
                let path = format!("connectors.{id}");
                let msg = if as_exp {
                    format!(
                        "connector `{id}` is used as an exporter but no pipeline uses it as a receiver"
                    )
                } else {
                    format!(
                        "connector `{id}` is used as a receiver but no pipeline uses it as an exporter"
                    )
                };
                self.issue(path, msg);
            }
        }
        if self.issues.is_empty()
            && let Err(cycle) = pipeline_order(&cfg.pipelines, &cfg.connectors)
        {
            self.issue("service.pipelines".into(), cycle);
        }
        cfg
    }

    /// `service.telemetry`: every key either acts or is refused here.
    fn check_telemetry(&mut self, t: &ServiceTelemetryConfig) {
        if let Some(level) = &t.metrics.level {
            let known = ["none", "basic", "normal", "detailed"];
            if !known.iter().any(|k| level.eq_ignore_ascii_case(k)) {
                self.issue(
                    "service.telemetry.metrics.level".into(),
                    format!("unknown level `{level}`; expected none, basic, normal or detailed"),
                );
            } else if !t.metrics.enabled() && t.metrics.address.is_some() {
                self.issue(
                    "service.telemetry.metrics.address".into(),
                    "`address` has no effect with `level: none` (the collector's own metrics are off); remove one of them",
                );
            }
        }
        if let Some(level) = &t.logs.level
            && !["debug", "info", "warn", "error"]
                .iter()
                .any(|k| level.eq_ignore_ascii_case(k))
        {
            self.issue(
                "service.telemetry.logs.level".into(),
                format!(
                    "unsupported level `{level}`; expected debug, info, warn or error (contrib's dpanic, panic and fatal have no equivalent here)"
                ),
            );
        }
        if let Some(enc) = &t.logs.encoding
            && enc != "json"
            && enc != "console"
        {
            self.issue(
                "service.telemetry.logs.encoding".into(),
                format!("unknown encoding `{enc}`; expected json or console"),
            );
        }
    }

    fn component_ref(&mut self, path: &str, s: &str) -> Option<ComponentId> {
        if self.broken.contains(s) {
            return None;
        }
        match ComponentId::parse(s) {
            Ok(id) => Some(id),
            Err(e) => {
                self.issue(path.to_string(), e);
                None
            }
        }
    }

    fn section<C>(
        &mut self,
        root: &serde_json::Map<String, Value>,
        section: &str,
        parse: fn(&str, Value) -> Result<C, registry::ParseError>,
    ) -> BTreeMap<ComponentId, C> {
        let mut out = BTreeMap::new();
        let Some(v) = root.get(section) else {
            return out;
        };
        let map = match v {
            Value::Null => return out,
            Value::Object(m) => m,
            _ => {
                self.issue(
                    section.to_string(),
                    "expected a mapping of component ids (`type` or `type/name`) to their settings",
                );
                return out;
            }
        };
        for (key, value) in map {
            let base = format!("{section}.{key}");
            let id = match ComponentId::parse(key) {
                Ok(id) => id,
                Err(e) => {
                    self.issue(base, e);
                    continue;
                }
            };
            let parsed = parse(&id.ty, value.clone());
            if parsed.is_err() {
                self.broken.insert(key.clone());
            }
            match parsed {
                Ok(c) => {
                    out.insert(id, c);
                }
                Err(registry::ParseError::UnknownType(expected)) => self.issue(
                    base,
                    format!(
                        "unknown {} type `{}`; expected one of: {expected}",
                        section.trim_end_matches('s'),
                        id.ty
                    ),
                ),
                Err(registry::ParseError::Field(e)) => {
                    let path = if e.path.is_empty() {
                        base
                    } else {
                        format!("{base}.{}", e.path)
                    };
                    self.issue(path, e.message);
                }
            }
        }
        out
    }
}

fn names<'a>(ids: impl Iterator<Item = &'a ComponentId>) -> String {
    let v: Vec<String> = ids.map(|i| format!("`{i}`")).collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

/// Pipelines ordered so that a pipeline feeding a connector comes after every pipeline the
/// connector feeds (downstream first: build order). Errors on a connector cycle.
pub fn pipeline_order(
    pipelines: &[Pipeline],
    connectors: &BTreeMap<ComponentId, ConnectorConfig>,
) -> Result<Vec<usize>, String> {
    let mut done = vec![false; pipelines.len()];
    let mut order = Vec::new();
    for _ in 0..=pipelines.len() {
        let mut progressed = false;
        for (i, p) in pipelines.iter().enumerate() {
            if done[i] {
                continue;
            }
            // Ready when every connector it exports to has all its consuming pipelines built.
            let ready = p
                .exporters
                .iter()
                .filter(|e| connectors.contains_key(e))
                .all(|c| {
                    pipelines
                        .iter()
                        .enumerate()
                        .filter(|(_, q)| q.receivers.contains(c))
                        .all(|(j, _)| done[j])
                });
            if ready {
                done[i] = true;
                order.push(i);
                progressed = true;
            }
        }
        if !progressed {
            break;
        }
    }
    if order.len() == pipelines.len() {
        Ok(order)
    } else {
        Err("the pipelines form a cycle through connectors".into())
    }
}
