//! `prometheus` exporter: keeps the latest state of every metric series it receives (OTLP
//! metrics from applications, spanmetrics from the connector) and serves it in the Prometheus
//! text exposition format on `endpoint` (default 8889) at `/metrics`.
//!
//! Cumulative sums and histograms replace the stored value; delta ones are accumulated.
//! Monotonic sums become counters (`_total`), histograms get `_bucket{le}`, `_sum`, `_count`;
//! units become suffixes (`ms` → `_milliseconds`). With `enable_open_metrics: true` a scraper
//! accepting `application/openmetrics-text` gets OpenMetrics, with exemplars (trace ids) on
//! histogram buckets and counter samples; other scrapers get the text format.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, ResourceMetrics, metric, number_data_point,
};
use serde::Deserialize;

use crate::component::FieldError;
use crate::pipeline::{ConsumeError, Consumer};

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResourceToTelemetry {
    pub enabled: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrometheusExporterConfig {
    pub endpoint: String,
    /// Prefix for every metric name.
    pub namespace: String,
    pub const_labels: BTreeMap<String, String>,
    /// Add every resource attribute as a label (otherwise only `job` and `instance`).
    pub resource_to_telemetry_conversion: ResourceToTelemetry,
    /// Series not updated for this long disappear.
    #[serde(deserialize_with = "crate::component::duration::deserialize")]
    pub metric_expiration: Duration,
    pub add_metric_suffixes: bool,
    pub enable_open_metrics: bool,
    /// Only `false` (refused in `validate`): samples carry no timestamp.
    pub send_timestamps: bool,
}

impl Default for PrometheusExporterConfig {
    fn default() -> Self {
        Self {
            endpoint: "0.0.0.0:8889".into(),
            namespace: String::new(),
            const_labels: BTreeMap::new(),
            resource_to_telemetry_conversion: ResourceToTelemetry::default(),
            metric_expiration: Duration::from_secs(300),
            add_metric_suffixes: true,
            enable_open_metrics: false,
            send_timestamps: false,
        }
    }
}

impl PrometheusExporterConfig {
    pub fn validate(&self) -> Result<(), FieldError> {
        crate::component::endpoint::check_listen("endpoint", &self.endpoint)?;
        if self.send_timestamps {
            return Err(FieldError::new(
                "send_timestamps",
                "`send_timestamps: true` is not supported: the exporter keeps no data point \
                 timestamps, so samples are exposed without one (Prometheus stamps them at scrape \
                 time); remove the key or set it to false",
            ));
        }
        if self.metric_expiration.is_zero() {
            return Err(FieldError::new(
                "metric_expiration",
                "must be greater than 0",
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
    Summary,
}

#[derive(Debug, Clone)]
struct Exemplar {
    trace_id: String,
    span_id: String,
    value: f64,
}

#[derive(Debug, Clone)]
enum Value {
    Number(f64),
    Histogram {
        bounds: Vec<f64>,
        counts: Vec<u64>,
        sum: f64,
        count: u64,
        exemplars: Vec<Option<Exemplar>>,
    },
    Summary {
        quantiles: Vec<(f64, f64)>,
        sum: f64,
        count: u64,
    },
}

#[derive(Debug)]
struct Series {
    value: Value,
    updated: Instant,
    /// A counter's latest exemplar (OpenMetrics puts it on the `_total` sample).
    exemplar: Option<Exemplar>,
}

#[derive(Debug)]
struct Family {
    kind: Kind,
    help: String,
    series: BTreeMap<String, Series>,
}

/// The exporter's state; shared with its HTTP server.
pub struct PrometheusExporter {
    cfg: PrometheusExporterConfig,
    families: Mutex<BTreeMap<String, Family>>,
}

fn sanitize(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

fn unit_suffix(unit: &str) -> Option<&'static str> {
    Some(match unit {
        "s" => "seconds",
        "ms" => "milliseconds",
        "us" => "microseconds",
        "ns" => "nanoseconds",
        "By" => "bytes",
        "KiBy" => "kibibytes",
        "MiBy" => "mebibytes",
        "m" => "meters",
        "%" => "percent",
        _ => return None,
    })
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn attr_string(kv: &KeyValue) -> String {
    match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

fn label_string(labels: &BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{}=\"{}\"", sanitize(k), escape(v)))
        .collect::<Vec<_>>()
        .join(",")
}

fn fmt_f64(v: f64) -> String {
    if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else if v.is_nan() {
        "NaN".into()
    } else {
        format!("{v}")
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl PrometheusExporter {
    pub fn new(cfg: PrometheusExporterConfig) -> Arc<Self> {
        Arc::new(Self {
            cfg,
            families: Mutex::new(BTreeMap::new()),
        })
    }

    pub fn content_type(&self) -> &'static str {
        Self::content_type_for(self.cfg.enable_open_metrics)
    }

    fn content_type_for(open: bool) -> &'static str {
        if open {
            "application/openmetrics-text; version=1.0.0; charset=utf-8"
        } else {
            "text/plain; version=0.0.4; charset=utf-8"
        }
    }

    /// Whether a scrape with this `Accept` header gets OpenMetrics: only with
    /// `enable_open_metrics`, and (as contrib's promhttp handler negotiates) only when the scraper
    /// accepts `application/openmetrics-text` — Prometheus does by default; a plain `curl` gets
    /// the text format.
    pub fn serves_open_metrics(&self, accept: Option<&str>) -> bool {
        self.cfg.enable_open_metrics
            && accept.is_some_and(|a| a.contains("application/openmetrics-text"))
    }

    fn family_name(&self, name: &str, unit: &str, kind: Kind) -> String {
        let mut n = sanitize(name);
        if !self.cfg.namespace.is_empty() {
            n = format!("{}_{n}", sanitize(&self.cfg.namespace));
        }
        if self.cfg.add_metric_suffixes {
            if let Some(s) = unit_suffix(unit)
                && !n.ends_with(s)
            {
                n = format!("{n}_{s}");
            }
            if kind == Kind::Counter && !n.ends_with("_total") {
                n.push_str("_total");
            }
        }
        n
    }

    fn ingest(&self, rm: &ResourceMetrics) {
        let mut base = BTreeMap::new();
        for (k, v) in &self.cfg.const_labels {
            base.insert(k.clone(), v.clone());
        }
        let res_attrs: Vec<KeyValue> = rm
            .resource
            .as_ref()
            .map(|r| r.attributes.clone())
            .unwrap_or_default();
        let get = |k: &str| res_attrs.iter().find(|kv| kv.key == k).map(attr_string);
        if let Some(svc) = get("service.name") {
            let job = match get("service.namespace") {
                Some(ns) => format!("{ns}/{svc}"),
                None => svc,
            };
            base.insert("job".into(), job);
        }
        if let Some(inst) = get("service.instance.id") {
            base.insert("instance".into(), inst);
        }
        if self.cfg.resource_to_telemetry_conversion.enabled {
            for kv in &res_attrs {
                base.insert(sanitize(&kv.key), attr_string(kv));
            }
        }
        let now = Instant::now();
        let mut fams = self.families.lock().unwrap_or_else(|p| p.into_inner());
        for sm in &rm.scope_metrics {
            for m in &sm.metrics {
                let labels_of = |attrs: &[KeyValue]| {
                    let mut l = base.clone();
                    for kv in attrs {
                        l.insert(sanitize(&kv.key), attr_string(kv));
                    }
                    label_string(&l)
                };
                match &m.data {
                    Some(metric::Data::Gauge(g)) => {
                        let fam = self.family(&mut fams, m, Kind::Gauge);
                        for p in &g.data_points {
                            fam.series.insert(
                                labels_of(&p.attributes),
                                Series {
                                    value: Value::Number(number(p)),
                                    updated: now,
                                    exemplar: None,
                                },
                            );
                        }
                    }
                    Some(metric::Data::Sum(s)) => {
                        let kind = if s.is_monotonic {
                            Kind::Counter
                        } else {
                            Kind::Gauge
                        };
                        let delta =
                            s.aggregation_temporality == AggregationTemporality::Delta as i32;
                        let fam = self.family(&mut fams, m, kind);
                        for p in &s.data_points {
                            let key = labels_of(&p.attributes);
                            let v = number(p);
                            let entry = fam.series.entry(key).or_insert(Series {
                                value: Value::Number(0.0),
                                updated: now,
                                exemplar: None,
                            });
                            if let Some(e) = p.exemplars.last().and_then(exemplar_of) {
                                entry.exemplar = Some(e);
                            }
                            let old = match entry.value {
                                Value::Number(o) => o,
                                _ => 0.0,
                            };
                            entry.value = Value::Number(if delta { old + v } else { v });
                            entry.updated = now;
                        }
                    }
                    Some(metric::Data::Histogram(h)) => {
                        let delta =
                            h.aggregation_temporality == AggregationTemporality::Delta as i32;
                        let fam = self.family(&mut fams, m, Kind::Histogram);
                        for p in &h.data_points {
                            let key = labels_of(&p.attributes);
                            let mut exemplars: Vec<Option<Exemplar>> =
                                vec![None; p.explicit_bounds.len() + 1];
                            for e in p.exemplars.iter().filter_map(exemplar_of) {
                                let idx = p
                                    .explicit_bounds
                                    .iter()
                                    .position(|b| e.value <= *b)
                                    .unwrap_or(p.explicit_bounds.len());
                                exemplars[idx] = Some(e);
                            }
                            let mut new = Value::Histogram {
                                bounds: p.explicit_bounds.clone(),
                                counts: p.bucket_counts.clone(),
                                sum: p.sum.unwrap_or(0.0),
                                count: p.count,
                                exemplars,
                            };
                            if delta
                                && let Some(Series {
                                    value:
                                        Value::Histogram {
                                            bounds,
                                            counts,
                                            sum,
                                            count,
                                            exemplars: old_ex,
                                        },
                                    ..
                                }) = fam.series.get(&key)
                                && *bounds == p.explicit_bounds
                                && let Value::Histogram {
                                    counts: nc,
                                    sum: ns,
                                    count: ncount,
                                    exemplars: nex,
                                    ..
                                } = &mut new
                            {
                                for (a, b) in nc.iter_mut().zip(counts) {
                                    *a += b;
                                }
                                *ns += sum;
                                *ncount += count;
                                for (a, b) in nex.iter_mut().zip(old_ex) {
                                    if a.is_none() {
                                        a.clone_from(b);
                                    }
                                }
                            }
                            fam.series.insert(
                                key,
                                Series {
                                    value: new,
                                    updated: now,
                                    exemplar: None,
                                },
                            );
                        }
                    }
                    Some(metric::Data::Summary(s)) => {
                        let fam = self.family(&mut fams, m, Kind::Summary);
                        for p in &s.data_points {
                            fam.series.insert(
                                labels_of(&p.attributes),
                                Series {
                                    value: Value::Summary {
                                        quantiles: p
                                            .quantile_values
                                            .iter()
                                            .map(|q| (q.quantile, q.value))
                                            .collect(),
                                        sum: p.sum,
                                        count: p.count,
                                    },
                                    updated: now,
                                    exemplar: None,
                                },
                            );
                        }
                    }
                    Some(metric::Data::ExponentialHistogram(_)) | None => {
                        tracing::debug!(metric = %m.name, "prometheus: exponential histograms are not exposed");
                    }
                }
            }
        }
    }

    fn family<'f>(
        &self,
        fams: &'f mut BTreeMap<String, Family>,
        m: &opentelemetry_proto::tonic::metrics::v1::Metric,
        kind: Kind,
    ) -> &'f mut Family {
        let name = self.family_name(&m.name, &m.unit, kind);
        let fam = fams.entry(name).or_insert_with(|| Family {
            kind,
            help: m.description.clone(),
            series: BTreeMap::new(),
        });
        if fam.kind != kind {
            // A metric changed type: start over rather than mixing shapes.
            fam.kind = kind;
            fam.series.clear();
        }
        fam
    }

    /// The exposition text in the configured format (OpenMetrics with `enable_open_metrics`).
    pub fn render(&self) -> String {
        self.render_as(self.cfg.enable_open_metrics)
    }

    /// The exposition text: OpenMetrics (with exemplars) when `open`, else the text format.
    pub fn render_as(&self, open: bool) -> String {
        let expiry = self.cfg.metric_expiration;
        let mut fams = self.families.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let mut out = String::new();
        for fam in fams.values_mut() {
            fam.series
                .retain(|_, s| now.duration_since(s.updated) < expiry);
        }
        fams.retain(|_, f| !f.series.is_empty());
        for (name, fam) in fams.iter() {
            let ty = match fam.kind {
                Kind::Counter => "counter",
                Kind::Gauge => "gauge",
                Kind::Histogram => "histogram",
                Kind::Summary => "summary",
            };
            // OpenMetrics names the counter family without `_total`.
            let fam_name = if open && fam.kind == Kind::Counter {
                name.trim_end_matches("_total")
            } else {
                name
            };
            if !fam.help.is_empty() {
                let _ = writeln!(out, "# HELP {fam_name} {}", fam.help.replace('\n', " "));
            }
            let _ = writeln!(out, "# TYPE {fam_name} {ty}");
            for (labels, s) in &fam.series {
                let with = |extra: &str| -> String {
                    match (labels.is_empty(), extra.is_empty()) {
                        (true, true) => String::new(),
                        (true, false) => format!("{{{extra}}}"),
                        (false, true) => format!("{{{labels}}}"),
                        (false, false) => format!("{{{labels},{extra}}}"),
                    }
                };
                match &s.value {
                    Value::Number(v) => {
                        let _ = write!(out, "{name}{} {}", with(""), fmt_f64(*v));
                        if open
                            && fam.kind == Kind::Counter
                            && let Some(e) = &s.exemplar
                        {
                            let _ = write!(
                                out,
                                " # {{trace_id=\"{}\",span_id=\"{}\"}} {}",
                                e.trace_id,
                                e.span_id,
                                fmt_f64(e.value)
                            );
                        }
                        out.push('\n');
                    }
                    Value::Histogram {
                        bounds,
                        counts,
                        sum,
                        count,
                        exemplars,
                    } => {
                        let mut cum = 0u64;
                        for (i, b) in bounds.iter().enumerate() {
                            cum += counts.get(i).copied().unwrap_or(0);
                            let _ = write!(
                                out,
                                "{name}_bucket{} {cum}",
                                with(&format!("le=\"{}\"", fmt_f64(*b)))
                            );
                            if open && let Some(Some(e)) = exemplars.get(i) {
                                let _ = write!(
                                    out,
                                    " # {{trace_id=\"{}\",span_id=\"{}\"}} {}",
                                    e.trace_id,
                                    e.span_id,
                                    fmt_f64(e.value)
                                );
                            }
                            out.push('\n');
                        }
                        let _ = write!(out, "{name}_bucket{} {count}", with("le=\"+Inf\""));
                        if open && let Some(Some(e)) = exemplars.get(bounds.len()) {
                            let _ = write!(
                                out,
                                " # {{trace_id=\"{}\",span_id=\"{}\"}} {}",
                                e.trace_id,
                                e.span_id,
                                fmt_f64(e.value)
                            );
                        }
                        out.push('\n');
                        let _ = writeln!(out, "{name}_sum{} {}", with(""), fmt_f64(*sum));
                        let _ = writeln!(out, "{name}_count{} {count}", with(""));
                    }
                    Value::Summary {
                        quantiles,
                        sum,
                        count,
                    } => {
                        for (q, v) in quantiles {
                            let _ = writeln!(
                                out,
                                "{name}{} {}",
                                with(&format!("quantile=\"{q}\"")),
                                fmt_f64(*v)
                            );
                        }
                        let _ = writeln!(out, "{name}_sum{} {}", with(""), fmt_f64(*sum));
                        let _ = writeln!(out, "{name}_count{} {count}", with(""));
                    }
                }
            }
        }
        if open {
            out.push_str("# EOF\n");
        }
        out
    }

    /// `GET /metrics`.
    pub fn router(self: &Arc<Self>) -> axum::Router {
        let me = self.clone();
        axum::Router::new().route(
            "/metrics",
            axum::routing::get(move |headers: http::HeaderMap| {
                let me = me.clone();
                async move {
                    let accept = headers
                        .get(http::header::ACCEPT)
                        .and_then(|v| v.to_str().ok());
                    let open = me.serves_open_metrics(accept);
                    (
                        [(http::header::CONTENT_TYPE, Self::content_type_for(open))],
                        me.render_as(open),
                    )
                }
            }),
        )
    }
}

/// An OTLP exemplar with a value, as exposed: hex trace and span ids.
fn exemplar_of(e: &opentelemetry_proto::tonic::metrics::v1::Exemplar) -> Option<Exemplar> {
    use opentelemetry_proto::tonic::metrics::v1::exemplar::Value as V;
    let value = match e.value? {
        V::AsDouble(d) => d,
        V::AsInt(i) => i as f64,
    };
    Some(Exemplar {
        trace_id: hex(&e.trace_id),
        span_id: hex(&e.span_id),
        value,
    })
}

fn number(p: &opentelemetry_proto::tonic::metrics::v1::NumberDataPoint) -> f64 {
    match p.value {
        Some(number_data_point::Value::AsDouble(d)) => d,
        Some(number_data_point::Value::AsInt(i)) => i as f64,
        None => 0.0,
    }
}

/// The consumer side: the exporter in a metrics pipeline.
pub struct PrometheusConsumer(pub Arc<PrometheusExporter>);

#[async_trait::async_trait]
impl Consumer<ResourceMetrics> for PrometheusConsumer {
    async fn consume(&self, batch: Vec<ResourceMetrics>) -> Result<(), ConsumeError> {
        for rm in &batch {
            self.0.ingest(rm);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connectors::spanmetrics::{SpanMetricsConfig, SpanMetricsConnector};
    use opentelemetry_proto::tonic::common::v1::AnyValue;
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

    /// Collects what the connector emits, to feed the exporter by hand.
    struct Capture(Mutex<Vec<ResourceMetrics>>);

    #[async_trait::async_trait]
    impl Consumer<ResourceMetrics> for Capture {
        async fn consume(&self, batch: Vec<ResourceMetrics>) -> Result<(), ConsumeError> {
            self.0.lock().unwrap().extend(batch);
            Ok(())
        }
    }

    fn s(v: &str) -> Option<AnyValue> {
        Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        })
    }

    #[tokio::test]
    async fn spanmetrics_overflow_and_service_name_become_labels() {
        let cfg: SpanMetricsConfig = serde_json::from_value(serde_json::json!({
            "aggregation_cardinality_limit": 1, "metrics_flush_interval": "1h",
            "exemplars": {"enabled": true}}))
        .unwrap();
        let sink = Arc::new(Capture(Mutex::new(Vec::new())));
        let conn = SpanMetricsConnector::new(cfg, sink.clone());
        let input = crate::connectors::spanmetrics::SpanMetricsInput(conn.clone());
        let span = |name: &str| Span {
            name: name.into(),
            trace_id: vec![0x11; 16],
            span_id: vec![0x22; 8],
            start_time_unix_nano: 0,
            end_time_unix_nano: 3_000_000,
            ..Default::default()
        };
        input
            .consume(vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![KeyValue {
                        key: "service.name".into(),
                        value: s("cart"),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans: vec![span("a"), span("b")],
                    ..Default::default()
                }],
                ..Default::default()
            }])
            .await
            .unwrap();
        conn.flush().await.unwrap();
        let exp = PrometheusExporter::new(PrometheusExporterConfig {
            enable_open_metrics: true,
            ..Default::default()
        });
        for rm in sink.0.lock().unwrap().iter() {
            exp.ingest(rm);
        }
        let text = exp.render_as(true);
        assert!(
            text.contains(r#"traces_span_metrics_calls_total{job="cart",service_name="cart",span_kind="SPAN_KIND_UNSPECIFIED",span_name="a",status_code="STATUS_CODE_UNSET"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(
                r#"traces_span_metrics_calls_total{job="cart",otel_metric_overflow="true"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                r#"traces_span_metrics_duration_milliseconds_bucket{{job="cart",service_name="cart",span_kind="SPAN_KIND_UNSPECIFIED",span_name="a",status_code="STATUS_CODE_UNSET",le="4"}} 1 # {{trace_id="{}",span_id="{}"}} 3"#,
                "11".repeat(16),
                "22".repeat(8)
            )),
            "{text}"
        );
        assert!(!exp.render_as(false).contains("trace_id="));
        assert!(!exp.serves_open_metrics(Some("text/plain")));
        assert!(exp.serves_open_metrics(Some("application/openmetrics-text;version=1.0.0")));
    }
}
