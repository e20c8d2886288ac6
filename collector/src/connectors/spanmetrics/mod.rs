//! `spanmetrics` connector (traces → metrics): a `calls` counter and a `duration` histogram per
//! `service.name`, `span.name`, `span.kind`, `status.code` (plus configured dimensions), with
//! exemplars carrying trace and span ids. Emitted as cumulative OTLP metrics every
//! `metrics_flush_interval` and once more at shutdown.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::common::v1::{InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Exemplar, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum, exemplar, metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, span, status};
use serde::Deserialize;

use crate::config::FieldError;
use crate::pipeline::signal::{service_name, string_value};
use crate::pipeline::{ConsumeError, Consumer};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExplicitBuckets {
    #[serde(deserialize_with = "durations")]
    pub buckets: Vec<Duration>,
}

fn durations<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Duration>, D::Error> {
    let raw: Vec<String> = Vec::deserialize(d)?;
    raw.iter()
        .map(|s| collector_api::duration::parse_go_duration(s).map_err(serde::de::Error::custom))
        .collect()
}

impl Default for ExplicitBuckets {
    fn default() -> Self {
        let ms = [
            2, 4, 6, 8, 10, 50, 100, 200, 400, 800, 1000, 1400, 2000, 5000, 10_000, 15_000,
        ];
        Self {
            buckets: ms.iter().map(|m| Duration::from_millis(*m)).collect(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HistogramConfig {
    /// `ms` (default) or `s`.
    pub unit: String,
    pub explicit: ExplicitBuckets,
}

impl Default for HistogramConfig {
    fn default() -> Self {
        Self {
            unit: "ms".into(),
            explicit: ExplicitBuckets::default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dimension {
    pub name: String,
    #[serde(default)]
    pub default: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExemplarsConfig {
    pub enabled: bool,
}

impl Default for ExemplarsConfig {
    fn default() -> Self {
        Self { enabled: true }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpanMetricsConfig {
    pub histogram: HistogramConfig,
    pub dimensions: Vec<Dimension>,
    pub exemplars: ExemplarsConfig,
    #[serde(deserialize_with = "crate::config::duration::deserialize")]
    pub metrics_flush_interval: Duration,
    pub namespace: String,
}

impl Default for SpanMetricsConfig {
    fn default() -> Self {
        Self {
            histogram: HistogramConfig::default(),
            dimensions: Vec::new(),
            exemplars: ExemplarsConfig::default(),
            metrics_flush_interval: Duration::from_secs(15),
            namespace: "traces.span.metrics".into(),
        }
    }
}

impl SpanMetricsConfig {
    pub fn validate(&self) -> Result<(), FieldError> {
        if !matches!(self.histogram.unit.as_str(), "ms" | "s") {
            return Err(FieldError::new(
                "histogram.unit",
                format!(
                    "unsupported unit `{}`; expected `ms` or `s`",
                    self.histogram.unit
                ),
            ));
        }
        let b = &self.histogram.explicit.buckets;
        if b.windows(2).any(|w| w[0] >= w[1]) {
            return Err(FieldError::new(
                "histogram.explicit.buckets",
                "bucket bounds must be strictly increasing",
            ));
        }
        if self.metrics_flush_interval.is_zero() {
            return Err(FieldError::new(
                "metrics_flush_interval",
                "must be greater than 0",
            ));
        }
        Ok(())
    }
}

#[derive(Default)]
struct SeriesState {
    calls: u64,
    counts: Vec<u64>,
    sum: f64,
    exemplars: Vec<Exemplar>,
}

/// Key: (service, dims as sorted pairs).
type Key = (String, Vec<(String, String)>);

pub struct SpanMetricsConnector {
    cfg: SpanMetricsConfig,
    bounds: Vec<f64>,
    start_ns: u64,
    state: Mutex<BTreeMap<Key, SeriesState>>,
    next: Arc<dyn Consumer<ResourceMetrics>>,
    stop: tokio::sync::Notify,
}

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

fn kind_name(k: i32) -> &'static str {
    span::SpanKind::try_from(k)
        .unwrap_or(span::SpanKind::Unspecified)
        .as_str_name()
}

fn status_name(code: i32) -> &'static str {
    status::StatusCode::try_from(code)
        .unwrap_or(status::StatusCode::Unset)
        .as_str_name()
}

impl SpanMetricsConnector {
    pub fn new(cfg: SpanMetricsConfig, next: Arc<dyn Consumer<ResourceMetrics>>) -> Arc<Self> {
        let per_unit = if cfg.histogram.unit == "s" {
            1.0
        } else {
            1000.0
        };
        let bounds = cfg
            .histogram
            .explicit
            .buckets
            .iter()
            .map(|d| d.as_secs_f64() * per_unit)
            .collect();
        let c = Arc::new(Self {
            cfg,
            bounds,
            start_ns: now_ns(),
            state: Mutex::new(BTreeMap::new()),
            next,
            stop: tokio::sync::Notify::new(),
        });
        let weak = Arc::downgrade(&c);
        let every = c.cfg.metrics_flush_interval;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                let Some(c) = weak.upgrade() else { return };
                tokio::select! {
                    _ = tick.tick() => {
                        if let Err(e) = c.flush().await {
                            tracing::warn!(error = %e, "spanmetrics: flush failed");
                        }
                    }
                    _ = c.stop.notified() => return,
                }
            }
        });
        c
    }

    fn record(&self, batch: &[ResourceSpans]) {
        let per_unit = if self.cfg.histogram.unit == "s" {
            1e-9
        } else {
            1e-6
        };
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        for rs in batch {
            let svc = service_name(rs.resource.as_ref())
                .unwrap_or("unknown_service")
                .to_string();
            for ss in &rs.scope_spans {
                for sp in &ss.spans {
                    let mut dims = vec![
                        ("span.name".to_string(), sp.name.clone()),
                        ("span.kind".to_string(), kind_name(sp.kind).to_string()),
                        (
                            "status.code".to_string(),
                            status_name(sp.status.as_ref().map(|s| s.code).unwrap_or(0))
                                .to_string(),
                        ),
                    ];
                    for d in &self.cfg.dimensions {
                        let found = sp
                            .attributes
                            .iter()
                            .chain(rs.resource.iter().flat_map(|r| &r.attributes))
                            .find(|kv| kv.key == d.name)
                            .map(attr_to_string);
                        if let Some(v) = found.or_else(|| d.default.clone()) {
                            dims.push((d.name.clone(), v));
                        }
                    }
                    let dur =
                        sp.end_time_unix_nano
                            .saturating_sub(sp.start_time_unix_nano) as f64
                            * per_unit;
                    let s = state.entry((svc.clone(), dims)).or_default();
                    if s.counts.is_empty() {
                        s.counts = vec![0; self.bounds.len() + 1];
                    }
                    let idx = self
                        .bounds
                        .iter()
                        .position(|b| dur <= *b)
                        .unwrap_or(self.bounds.len());
                    s.counts[idx] += 1;
                    s.calls += 1;
                    s.sum += dur;
                    if self.cfg.exemplars.enabled {
                        // Keep a few recent exemplars per series; they are cleared on each flush.
                        if s.exemplars.len() >= 8 {
                            s.exemplars.remove(0);
                        }
                        s.exemplars.push(Exemplar {
                            filtered_attributes: Vec::new(),
                            time_unix_nano: sp.end_time_unix_nano,
                            span_id: sp.span_id.clone(),
                            trace_id: sp.trace_id.clone(),
                            value: Some(exemplar::Value::AsDouble(dur)),
                        });
                    }
                }
            }
        }
    }

    fn snapshot(&self) -> Vec<ResourceMetrics> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let now = now_ns();
        let mut by_service: BTreeMap<String, (Vec<NumberDataPoint>, Vec<HistogramDataPoint>)> =
            BTreeMap::new();
        for ((svc, dims), s) in state.iter_mut() {
            let attrs: Vec<KeyValue> = dims
                .iter()
                .map(|(k, v)| KeyValue {
                    key: k.clone(),
                    value: string_value(v.clone()),
                    ..Default::default()
                })
                .collect();
            let e = by_service.entry(svc.clone()).or_default();
            e.0.push(NumberDataPoint {
                attributes: attrs.clone(),
                start_time_unix_nano: self.start_ns,
                time_unix_nano: now,
                exemplars: Vec::new(),
                flags: 0,
                value: Some(number_data_point::Value::AsInt(s.calls as i64)),
            });
            e.1.push(HistogramDataPoint {
                attributes: attrs,
                start_time_unix_nano: self.start_ns,
                time_unix_nano: now,
                count: s.calls,
                sum: Some(s.sum),
                bucket_counts: s.counts.clone(),
                explicit_bounds: self.bounds.clone(),
                exemplars: std::mem::take(&mut s.exemplars),
                flags: 0,
                min: None,
                max: None,
            });
        }
        let ns = &self.cfg.namespace;
        let name = |m: &str| {
            if ns.is_empty() {
                m.to_string()
            } else {
                format!("{ns}.{m}")
            }
        };
        by_service
            .into_iter()
            .map(|(svc, (calls, durs))| ResourceMetrics {
                resource: Some(Resource {
                    attributes: vec![KeyValue {
                        key: "service.name".into(),
                        value: string_value(svc),
                        ..Default::default()
                    }],
                    dropped_attributes_count: 0,
                    entity_refs: Vec::new(),
                }),
                scope_metrics: vec![ScopeMetrics {
                    scope: Some(InstrumentationScope {
                        name: "spanmetricsconnector".into(),
                        ..Default::default()
                    }),
                    metrics: vec![
                        Metric {
                            name: name("calls"),
                            description: "Number of spans, by service, span name, kind and status"
                                .into(),
                            unit: String::new(),
                            metadata: Vec::new(),
                            data: Some(metric::Data::Sum(Sum {
                                data_points: calls,
                                aggregation_temporality: AggregationTemporality::Cumulative as i32,
                                is_monotonic: true,
                            })),
                        },
                        Metric {
                            name: name("duration"),
                            description: "Span durations, by service, span name, kind and status"
                                .into(),
                            unit: self.cfg.histogram.unit.clone(),
                            metadata: Vec::new(),
                            data: Some(metric::Data::Histogram(Histogram {
                                data_points: durs,
                                aggregation_temporality: AggregationTemporality::Cumulative as i32,
                            })),
                        },
                    ],
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            })
            .collect()
    }

    pub async fn flush(&self) -> Result<(), ConsumeError> {
        let batch = self.snapshot();
        if batch.is_empty() {
            return Ok(());
        }
        self.next.consume(batch).await
    }
}

fn attr_to_string(kv: &KeyValue) -> String {
    use opentelemetry_proto::tonic::common::v1::any_value::Value as V;
    match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(V::StringValue(s)) => s.clone(),
        Some(V::IntValue(i)) => i.to_string(),
        Some(V::DoubleValue(d)) => d.to_string(),
        Some(V::BoolValue(b)) => b.to_string(),
        _ => String::new(),
    }
}

/// The traces side of the connector.
pub struct SpanMetricsInput(pub Arc<SpanMetricsConnector>);

#[async_trait::async_trait]
impl Consumer<ResourceSpans> for SpanMetricsInput {
    async fn consume(&self, batch: Vec<ResourceSpans>) -> Result<(), ConsumeError> {
        self.0.record(&batch);
        Ok(())
    }

    async fn shutdown(&self) -> Result<(), ConsumeError> {
        self.0.stop.notify_waiters();
        self.0.flush().await
    }
}
