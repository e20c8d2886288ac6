//! `spanmetrics` connector (traces → metrics), as contrib's: a `calls` counter and a `duration`
//! histogram per resource (keyed by `resource_metrics_key_attributes`) and per `service.name`,
//! `span.name`, `span.kind`, `status.code` (data point attributes) plus configured dimensions;
//! optional exemplars carrying trace and span ids; `aggregation_cardinality_limit` series per
//! resource, then one `otel.metric.overflow=true` series; `metrics_expiration` /
//! `series_expiration` drop what stopped being updated. Emitted as cumulative OTLP metrics every
//! `metrics_flush_interval` and once more at shutdown.
//!
//! Beside them, unless `time_series.enabled` is false, the connector keeps RED time series in a
//! [`red::RedStore`] (bounded rings of fixed-width buckets with exemplars) that the query API's
//! `/api/v1/metrics/red` reads through the [`red::RedRegistry`].

pub mod red;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Exemplar, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum, exemplar, metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, span, status};
use serde::Deserialize;

use crate::component::FieldError;
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

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExemplarsConfig {
    /// Off by default, as in contrib.
    pub enabled: bool,
    /// Exemplars kept per data point between flushes (the first ones, as contrib); 0 = no limit.
    pub max_per_data_point: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpanMetricsConfig {
    pub histogram: HistogramConfig,
    pub dimensions: Vec<Dimension>,
    pub exemplars: ExemplarsConfig,
    #[serde(deserialize_with = "crate::component::duration::deserialize")]
    pub metrics_flush_interval: Duration,
    /// A resource (its metrics, all series) not updated for this long is dropped; 0 = never.
    #[serde(deserialize_with = "crate::component::duration::deserialize")]
    pub metrics_expiration: Duration,
    /// A series not updated for this long is dropped; 0 = never.
    #[serde(deserialize_with = "crate::component::duration::deserialize")]
    pub series_expiration: Duration,
    /// Resource attributes that identify a resource's metrics (empty: all of them).
    pub resource_metrics_key_attributes: Vec<String>,
    /// Most resources held (contrib's LRU); the least recently updated one is evicted.
    pub resource_metrics_cache_size: u32,
    /// Most series per resource; later new series go to one overflow series
    /// (`otel.metric.overflow=true`). 0 = no limit.
    pub aggregation_cardinality_limit: u32,
    /// Deprecated in contrib (v0.130.0); refused here with a message (see `validate`).
    pub dimensions_cache_size: Option<serde::de::IgnoredAny>,
    pub namespace: String,
    /// tracelab's RED time series (not in contrib): see [`red::TimeSeriesConfig`].
    pub time_series: red::TimeSeriesConfig,
}

impl Default for SpanMetricsConfig {
    fn default() -> Self {
        Self {
            histogram: HistogramConfig::default(),
            dimensions: Vec::new(),
            exemplars: ExemplarsConfig::default(),
            metrics_flush_interval: Duration::from_secs(60),
            metrics_expiration: Duration::ZERO,
            series_expiration: Duration::ZERO,
            resource_metrics_key_attributes: Vec::new(),
            resource_metrics_cache_size: 1000,
            aggregation_cardinality_limit: 0,
            dimensions_cache_size: None,
            namespace: "traces.span.metrics".into(),
            time_series: red::TimeSeriesConfig::default(),
        }
    }
}

/// The dimensions every data point carries (contrib's reserved names).
const SERVICE_NAME: &str = "service.name";
const RESERVED: [&str; 4] = [SERVICE_NAME, "span.name", "span.kind", "status.code"];
/// The attribute of the overflow series (OpenTelemetry's cardinality-limit convention).
pub const OVERFLOW_ATTRIBUTE: &str = "otel.metric.overflow";

impl SpanMetricsConfig {
    pub fn validate(&self) -> Result<(), FieldError> {
        if self.dimensions_cache_size.is_some() {
            return Err(FieldError::new(
                "dimensions_cache_size",
                "deprecated in the OpenTelemetry Collector contrib (v0.130.0), where it only sized a \
                 lookup cache and never bounded the series; remove it and bound the series with \
                 `aggregation_cardinality_limit` (and `metrics_expiration`)",
            ));
        }
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
        for (i, d) in self.dimensions.iter().enumerate() {
            if RESERVED.contains(&d.name.as_str())
                || self.dimensions[..i].iter().any(|e| e.name == d.name)
            {
                return Err(FieldError::new(
                    format!("dimensions[{i}].name"),
                    format!("duplicate dimension name {}", d.name),
                ));
            }
        }
        if self.metrics_flush_interval.is_zero() {
            return Err(FieldError::new(
                "metrics_flush_interval",
                "must be greater than 0",
            ));
        }
        if self.resource_metrics_cache_size == 0 {
            return Err(FieldError::new(
                "resource_metrics_cache_size",
                "must be greater than 0",
            ));
        }
        self.time_series.validate()
    }
}

struct SeriesState {
    calls: u64,
    counts: Vec<u64>,
    sum: f64,
    /// On both the calls and the duration data point, as contrib.
    exemplars: Vec<Exemplar>,
    last_seen: Instant,
}

impl SeriesState {
    fn new(buckets: usize, now: Instant) -> Self {
        Self {
            calls: 0,
            counts: vec![0; buckets + 1],
            sum: 0.0,
            exemplars: Vec::new(),
            last_seen: now,
        }
    }
}

/// Dimensions of a series, in order: service.name, span.name, span.kind, status.code, configured.
type Dims = Vec<(String, String)>;

/// The metrics of one resource (contrib's `resourceMetrics`).
struct ResourceState {
    attributes: Vec<KeyValue>,
    last_seen: Instant,
    series: BTreeMap<Dims, SeriesState>,
    /// Points beyond `aggregation_cardinality_limit`.
    overflow: Option<SeriesState>,
}

pub struct SpanMetricsConnector {
    cfg: SpanMetricsConfig,
    bounds: Vec<f64>,
    start_ns: u64,
    /// By resource key (the sorted key attributes as strings).
    state: Mutex<BTreeMap<Vec<(String, String)>, ResourceState>>,
    /// The RED time series (`None` when `time_series.enabled` is false).
    red: Option<Arc<red::RedStore>>,
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
        let c = Self::new_unstarted(cfg, next);
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

    /// The connector without its flush timer (tests drive `record_at` / `snapshot_at`).
    fn new_unstarted(
        cfg: SpanMetricsConfig,
        next: Arc<dyn Consumer<ResourceMetrics>>,
    ) -> Arc<Self> {
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
        let red = cfg.time_series.enabled.then(|| {
            Arc::new(red::RedStore::new(
                &cfg.time_series,
                &cfg.histogram.explicit.buckets,
                cfg.aggregation_cardinality_limit as usize,
            ))
        });
        Arc::new(Self {
            cfg,
            bounds,
            red,
            start_ns: now_ns(),
            state: Mutex::new(BTreeMap::new()),
            next,
            stop: tokio::sync::Notify::new(),
        })
    }

    /// The RED time series this connector feeds, when enabled.
    pub fn red(&self) -> Option<Arc<red::RedStore>> {
        self.red.clone()
    }

    /// The resource's key: its `resource_metrics_key_attributes` (all attributes when none are
    /// configured), sorted.
    fn resource_key(&self, attrs: &[KeyValue]) -> Vec<(String, String)> {
        let keys = &self.cfg.resource_metrics_key_attributes;
        let mut key: Vec<(String, String)> = attrs
            .iter()
            .filter(|kv| keys.is_empty() || keys.contains(&kv.key))
            .map(|kv| (kv.key.clone(), attr_to_string(kv)))
            .collect();
        key.sort();
        key
    }

    fn record_at(&self, batch: &[ResourceSpans], now: Instant) {
        let per_unit = if self.cfg.histogram.unit == "s" {
            1e-9
        } else {
            1e-6
        };
        let max_exemplars = match self.cfg.exemplars.max_per_data_point {
            0 => usize::MAX,
            n => n as usize,
        };
        let limit = self.cfg.aggregation_cardinality_limit as usize;
        let buckets = self.bounds.len();
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        // Wall-clock time places spans (by their end) in the time series' buckets.
        let mut red = self.red.as_deref().map(|r| r.writer(now_ns()));
        for rs in batch {
            let res_attrs: &[KeyValue] = rs.resource.as_ref().map_or(&[], |r| &r.attributes);
            // contrib skips the spans of a resource without `service.name`.
            let Some(svc) = service_name(rs.resource.as_ref()).map(str::to_string) else {
                continue;
            };
            let key = self.resource_key(res_attrs);
            if !state.contains_key(&key)
                && state.len() >= self.cfg.resource_metrics_cache_size as usize
            {
                // contrib's LRU: the least recently updated resource goes.
                if let Some(oldest) = state
                    .iter()
                    .min_by_key(|(_, r)| r.last_seen)
                    .map(|(k, _)| k.clone())
                {
                    state.remove(&oldest);
                }
            }
            let res = state.entry(key).or_insert_with(|| ResourceState {
                attributes: res_attrs.to_vec(),
                last_seen: now,
                series: BTreeMap::new(),
                overflow: None,
            });
            res.last_seen = now;
            for ss in &rs.scope_spans {
                for sp in &ss.spans {
                    let mut dims = vec![
                        (SERVICE_NAME.to_string(), svc.clone()),
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
                            .chain(res_attrs)
                            .find(|kv| kv.key == d.name)
                            .map(attr_to_string);
                        if let Some(v) = found.or_else(|| d.default.clone()) {
                            dims.push((d.name.clone(), v));
                        }
                    }
                    let dur_ns = sp
                        .end_time_unix_nano
                        .saturating_sub(sp.start_time_unix_nano);
                    if let Some(w) = red.as_mut() {
                        w.record(&red::Observation {
                            service: &svc,
                            operation: &sp.name,
                            kind: sp.kind,
                            error: sp
                                .status
                                .as_ref()
                                .is_some_and(|s| s.code == status::StatusCode::Error as i32),
                            end_ns: sp.end_time_unix_nano,
                            duration_ns: dur_ns,
                            trace_id: &sp.trace_id,
                            span_id: &sp.span_id,
                        });
                    }
                    let dur = dur_ns as f64 * per_unit;
                    let s =
                        if limit == 0 || res.series.len() < limit || res.series.contains_key(&dims)
                        {
                            res.series
                                .entry(dims)
                                .or_insert_with(|| SeriesState::new(buckets, now))
                        } else {
                            res.overflow
                                .get_or_insert_with(|| SeriesState::new(buckets, now))
                        };
                    s.last_seen = now;
                    let idx = self
                        .bounds
                        .iter()
                        .position(|b| dur <= *b)
                        .unwrap_or(self.bounds.len());
                    s.counts[idx] += 1;
                    s.calls += 1;
                    s.sum += dur;
                    if self.cfg.exemplars.enabled
                        && !sp.trace_id.iter().all(|b| *b == 0)
                        && s.exemplars.len() < max_exemplars
                    {
                        // Cleared on each flush (they describe this interval's spans).
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

    fn snapshot_at(&self, now: Instant) -> Vec<ResourceMetrics> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let expired = |last: Instant, after: Duration| {
            !after.is_zero() && now.saturating_duration_since(last) >= after
        };
        let (res_exp, series_exp) = (self.cfg.metrics_expiration, self.cfg.series_expiration);
        state.retain(|_, r| !expired(r.last_seen, res_exp));
        for r in state.values_mut() {
            r.series.retain(|_, s| !expired(s.last_seen, series_exp));
            if r.overflow
                .as_ref()
                .is_some_and(|s| expired(s.last_seen, series_exp))
            {
                r.overflow = None;
            }
        }
        state.retain(|_, r| !r.series.is_empty() || r.overflow.is_some());
        let ts = now_ns();
        let ns = &self.cfg.namespace;
        let name = |m: &str| {
            if ns.is_empty() {
                m.to_string()
            } else {
                format!("{ns}.{m}")
            }
        };
        let mut out = Vec::with_capacity(state.len());
        for r in state.values_mut() {
            let mut calls = Vec::with_capacity(r.series.len() + 1);
            let mut durs = Vec::with_capacity(r.series.len() + 1);
            let overflow_attrs = vec![KeyValue {
                key: OVERFLOW_ATTRIBUTE.into(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::BoolValue(true)),
                }),
                ..Default::default()
            }];
            let points = r
                .series
                .iter_mut()
                .map(|(dims, s)| {
                    let attrs: Vec<KeyValue> = dims
                        .iter()
                        .map(|(k, v)| KeyValue {
                            key: k.clone(),
                            value: string_value(v.clone()),
                            ..Default::default()
                        })
                        .collect();
                    (attrs, s)
                })
                .chain(r.overflow.iter_mut().map(|s| (overflow_attrs.clone(), s)));
            for (attrs, s) in points {
                let exemplars = std::mem::take(&mut s.exemplars);
                calls.push(NumberDataPoint {
                    attributes: attrs.clone(),
                    start_time_unix_nano: self.start_ns,
                    time_unix_nano: ts,
                    exemplars: exemplars.clone(),
                    flags: 0,
                    value: Some(number_data_point::Value::AsInt(s.calls as i64)),
                });
                durs.push(HistogramDataPoint {
                    attributes: attrs,
                    start_time_unix_nano: self.start_ns,
                    time_unix_nano: ts,
                    count: s.calls,
                    sum: Some(s.sum),
                    bucket_counts: s.counts.clone(),
                    explicit_bounds: self.bounds.clone(),
                    exemplars,
                    flags: 0,
                    min: None,
                    max: None,
                });
            }
            out.push(ResourceMetrics {
                resource: Some(Resource {
                    attributes: r.attributes.clone(),
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
            });
        }
        out
    }

    pub async fn flush(&self) -> Result<(), ConsumeError> {
        let batch = self.snapshot_at(Instant::now());
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
        self.0.record_at(&batch, Instant::now());
        Ok(())
    }

    async fn shutdown(&self) -> Result<(), ConsumeError> {
        self.0.stop.notify_waiters();
        self.0.flush().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::trace::v1::{ScopeSpans, Span, Status};

    struct Sink;

    #[async_trait::async_trait]
    impl Consumer<ResourceMetrics> for Sink {
        async fn consume(&self, _: Vec<ResourceMetrics>) -> Result<(), ConsumeError> {
            Ok(())
        }
    }

    fn kv(k: &str, v: &str) -> KeyValue {
        KeyValue {
            key: k.into(),
            value: string_value(v.to_string()),
            ..Default::default()
        }
    }

    fn spans(resource: Vec<KeyValue>, names: &[&str]) -> ResourceSpans {
        ResourceSpans {
            resource: Some(Resource {
                attributes: resource,
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans: names
                    .iter()
                    .map(|n| Span {
                        name: n.to_string(),
                        trace_id: vec![0xab; 16],
                        span_id: vec![0xcd; 8],
                        kind: 2,
                        start_time_unix_nano: 1_000_000,
                        end_time_unix_nano: 6_000_000,
                        status: Some(Status {
                            code: 0,
                            message: String::new(),
                        }),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    fn connector(json: serde_json::Value) -> Arc<SpanMetricsConnector> {
        let cfg: SpanMetricsConfig = serde_json::from_value(json).expect("parses");
        cfg.validate().expect("valid");
        SpanMetricsConnector::new_unstarted(cfg, Arc::new(Sink))
    }

    /// (resource attributes, [(data point attributes, calls, exemplar count)]) per resource.
    type Flat = Vec<(
        Vec<(String, String)>,
        Vec<(Vec<(String, String)>, i64, usize)>,
    )>;

    fn flatten(out: &[ResourceMetrics]) -> Flat {
        let strs = |a: &[KeyValue]| -> Vec<(String, String)> {
            a.iter()
                .map(|kv| (kv.key.clone(), attr_to_string(kv)))
                .collect()
        };
        out.iter()
            .map(|rm| {
                let ms = &rm.scope_metrics[0].metrics;
                let Some(metric::Data::Sum(calls)) = &ms[0].data else {
                    panic!("calls is a sum")
                };
                let Some(metric::Data::Histogram(h)) = &ms[1].data else {
                    panic!("duration is a histogram")
                };
                let points = calls
                    .data_points
                    .iter()
                    .zip(&h.data_points)
                    .map(|(c, d)| {
                        let Some(number_data_point::Value::AsInt(n)) = c.value else {
                            panic!("int calls")
                        };
                        (strs(&c.attributes), n, d.exemplars.len())
                    })
                    .collect();
                (strs(&rm.resource.as_ref().unwrap().attributes), points)
            })
            .collect()
    }

    #[test]
    fn defaults_are_contribs() {
        let c = SpanMetricsConfig::default();
        assert!(!c.exemplars.enabled);
        assert_eq!(c.metrics_flush_interval, Duration::from_secs(60));
        assert_eq!(c.metrics_expiration, Duration::ZERO);
        assert_eq!(c.aggregation_cardinality_limit, 0);
        assert_eq!(c.namespace, "traces.span.metrics");
    }

    #[test]
    fn every_data_point_carries_service_name_and_exemplars_are_opt_in() {
        let t0 = Instant::now();
        for enabled in [false, true] {
            let c = connector(serde_json::json!({"exemplars": {"enabled": enabled}}));
            c.record_at(
                &[spans(vec![kv("service.name", "cart")], &["GET /cart"])],
                t0,
            );
            let flat = flatten(&c.snapshot_at(t0));
            assert_eq!(flat.len(), 1);
            let (attrs, calls, exemplars) = &flat[0].1[0];
            assert_eq!(attrs[0], ("service.name".into(), "cart".into()));
            assert_eq!(attrs[1], ("span.name".into(), "GET /cart".into()));
            assert_eq!(*calls, 1);
            assert_eq!(*exemplars, usize::from(enabled));
        }
    }

    #[test]
    fn resource_metrics_key_attributes_split_resources() {
        let t0 = Instant::now();
        let pod = |p: &str| {
            vec![
                kv("service.name", "cart"),
                kv("k8s.pod.name", p),
                kv("process.pid", p),
            ]
        };
        // Default: every resource attribute is part of the key → one resource per pod.
        let c = connector(serde_json::json!({}));
        c.record_at(&[spans(pod("a"), &["op"]), spans(pod("b"), &["op"])], t0);
        assert_eq!(c.snapshot_at(t0).len(), 2);
        // Keyed by service.name only: both pods aggregate into one resource (the first one seen).
        let c = connector(serde_json::json!({"resource_metrics_key_attributes": ["service.name"]}));
        c.record_at(&[spans(pod("a"), &["op"]), spans(pod("b"), &["op"])], t0);
        let flat = flatten(&c.snapshot_at(t0));
        assert_eq!(flat.len(), 1);
        assert_eq!(flat[0].1[0].1, 2);
        assert!(flat[0].0.contains(&("k8s.pod.name".into(), "a".into())));
    }

    #[test]
    fn cardinality_limit_sends_new_series_to_the_overflow_series() {
        let t0 = Instant::now();
        let c = connector(serde_json::json!({"aggregation_cardinality_limit": 2}));
        let svc = vec![kv("service.name", "cart")];
        c.record_at(&[spans(svc.clone(), &["a", "b", "c", "d", "a"])], t0);
        let flat = flatten(&c.snapshot_at(t0));
        let points = &flat[0].1;
        assert_eq!(points.len(), 3, "{points:?}");
        assert_eq!(points[0].1, 2, "known series keep counting");
        assert_eq!(points[1].1, 1);
        assert_eq!(
            points[2],
            (vec![("otel.metric.overflow".into(), "true".into())], 2, 0),
            "c and d overflow"
        );
    }

    #[test]
    fn metrics_and_series_expire() {
        let t0 = Instant::now();
        let secs = Duration::from_secs;
        let c = connector(serde_json::json!({"metrics_expiration": "10s"}));
        c.record_at(&[spans(vec![kv("service.name", "old")], &["op"])], t0);
        c.record_at(
            &[spans(vec![kv("service.name", "new")], &["op"])],
            t0 + secs(8),
        );
        let flat = flatten(&c.snapshot_at(t0 + secs(11)));
        assert_eq!(
            flat.len(),
            1,
            "the resource not updated for 11 s is dropped"
        );
        assert_eq!(flat[0].0, vec![("service.name".into(), "new".into())]);

        let c = connector(serde_json::json!({"series_expiration": "10s"}));
        let svc = vec![kv("service.name", "s")];
        c.record_at(&[spans(svc.clone(), &["stale", "fresh"])], t0);
        c.record_at(&[spans(svc, &["fresh"])], t0 + secs(5));
        let flat = flatten(&c.snapshot_at(t0 + secs(12)));
        assert_eq!(flat[0].1.len(), 1);
        assert_eq!(flat[0].1[0].0[1].1, "fresh");

        // 0 (the default) never expires.
        let c = connector(serde_json::json!({}));
        c.record_at(&[spans(vec![kv("service.name", "s")], &["op"])], t0);
        assert_eq!(c.snapshot_at(t0 + secs(86_400)).len(), 1);
    }

    #[test]
    fn resources_without_service_name_are_skipped_and_the_resource_cache_is_an_lru() {
        let t0 = Instant::now();
        let c = connector(serde_json::json!({"resource_metrics_cache_size": 2}));
        c.record_at(&[spans(vec![kv("host.name", "h")], &["op"])], t0);
        assert!(
            c.snapshot_at(t0).is_empty(),
            "no service.name: skipped, as contrib"
        );
        let at = |ms| t0 + Duration::from_millis(ms);
        c.record_at(&[spans(vec![kv("service.name", "a")], &["op"])], at(1));
        c.record_at(&[spans(vec![kv("service.name", "b")], &["op"])], at(2));
        c.record_at(&[spans(vec![kv("service.name", "a")], &["op"])], at(3));
        c.record_at(&[spans(vec![kv("service.name", "c")], &["op"])], at(4));
        let names: Vec<String> = flatten(&c.snapshot_at(at(5)))
            .into_iter()
            .map(|(r, _)| r[0].1.clone())
            .collect();
        assert_eq!(names, vec!["a", "c"], "b was the least recently updated");
    }

    #[test]
    fn exemplars_go_on_both_points_up_to_max_per_data_point_and_clear_on_flush() {
        let t0 = Instant::now();
        let c =
            connector(serde_json::json!({"exemplars": {"enabled": true, "max_per_data_point": 2}}));
        let svc = vec![kv("service.name", "s")];
        c.record_at(&[spans(svc, &["op", "op", "op"])], t0);
        let out = c.snapshot_at(t0);
        let ms = &out[0].scope_metrics[0].metrics;
        let Some(metric::Data::Sum(calls)) = &ms[0].data else {
            panic!()
        };
        assert_eq!(calls.data_points[0].exemplars.len(), 2);
        assert_eq!(calls.data_points[0].exemplars[0].trace_id, vec![0xab; 16]);
        assert_eq!(flatten(&out)[0].1[0].2, 2);
        assert_eq!(
            flatten(&c.snapshot_at(t0))[0].1[0].2,
            0,
            "cleared by the flush"
        );
    }

    #[test]
    fn dimensions_cache_size_is_refused_with_the_replacement() {
        let cfg: SpanMetricsConfig =
            serde_json::from_value(serde_json::json!({"dimensions_cache_size": 1000})).unwrap();
        let e = cfg.validate().unwrap_err();
        assert_eq!(e.path, "dimensions_cache_size");
        assert!(
            e.message.contains("aggregation_cardinality_limit"),
            "{}",
            e.message
        );
        let dup: SpanMetricsConfig =
            serde_json::from_value(serde_json::json!({"dimensions": [{"name": "service.name"}]}))
                .unwrap();
        assert_eq!(dup.validate().unwrap_err().path, "dimensions[0].name");
    }
}
