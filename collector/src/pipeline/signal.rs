//! The [`Signal`] trait: what generic components (batch, memory_limiter, attributes, exporters)
//! need to know about `ResourceSpans`, `ResourceMetrics` and `ResourceLogs`.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::ResourceLogs;
use opentelemetry_proto::tonic::metrics::v1::{ResourceMetrics, metric};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;

use crate::component::SignalKind;

pub trait Signal: Clone + Send + Sync + std::fmt::Debug + 'static {
    const KIND: SignalKind;
    /// The OTLP export request carrying a batch of these.
    type Request: prost::Message
        + Default
        + serde::Serialize
        + serde::de::DeserializeOwned
        + Clone
        + Send
        + 'static;

    /// Items this carries: spans, metric data points or log records.
    fn item_count(&self) -> usize;
    fn resource(&self) -> Option<&Resource>;
    fn into_request(batch: Vec<Self>) -> Self::Request;
    fn from_request(req: Self::Request) -> Vec<Self>;
    /// Removes up to `n` items from the front and returns them as a new value with the same
    /// resource and scopes (batch splitting).
    fn take_front(&mut self, n: usize) -> Self;
    /// Calls `f` with the attribute list of every item (span, data point, log record).
    fn for_each_item_attributes(&mut self, f: &mut dyn FnMut(&mut Vec<KeyValue>));
    /// Keeps only items whose trace id passes `keep`; items without a trace id are passed an
    /// empty slice. Returns how many were removed.
    fn retain_by_trace_id(&mut self, keep: &mut dyn FnMut(&[u8]) -> bool) -> usize;
}

pub fn count<T: Signal>(batch: &[T]) -> usize {
    batch.iter().map(Signal::item_count).sum()
}

/// The `service.name` resource attribute, if any.
pub fn service_name(resource: Option<&Resource>) -> Option<&str> {
    resource?
        .attributes
        .iter()
        .find(|kv| kv.key == "service.name")
        .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
            any_value::Value::StringValue(s) => Some(s.as_str()),
            _ => None,
        })
}

pub fn string_value(s: impl Into<String>) -> Option<AnyValue> {
    Some(AnyValue {
        value: Some(any_value::Value::StringValue(s.into())),
    })
}

impl Signal for ResourceSpans {
    const KIND: SignalKind = SignalKind::Traces;
    type Request = ExportTraceServiceRequest;

    fn item_count(&self) -> usize {
        self.scope_spans.iter().map(|s| s.spans.len()).sum()
    }
    fn resource(&self) -> Option<&Resource> {
        self.resource.as_ref()
    }
    fn into_request(batch: Vec<Self>) -> Self::Request {
        ExportTraceServiceRequest {
            resource_spans: batch,
        }
    }
    fn from_request(req: Self::Request) -> Vec<Self> {
        req.resource_spans
    }
    fn take_front(&mut self, mut n: usize) -> Self {
        let mut out = Self {
            resource: self.resource.clone(),
            scope_spans: Vec::new(),
            schema_url: self.schema_url.clone(),
        };
        while n > 0 && !self.scope_spans.is_empty() {
            let first = &mut self.scope_spans[0];
            if first.spans.len() <= n {
                n -= first.spans.len();
                out.scope_spans.push(self.scope_spans.remove(0));
            } else {
                let mut part = first.clone();
                part.spans = first.spans.drain(..n).collect();
                out.scope_spans.push(part);
                n = 0;
            }
        }
        out
    }
    fn for_each_item_attributes(&mut self, f: &mut dyn FnMut(&mut Vec<KeyValue>)) {
        for ss in &mut self.scope_spans {
            for span in &mut ss.spans {
                f(&mut span.attributes);
            }
        }
    }
    fn retain_by_trace_id(&mut self, keep: &mut dyn FnMut(&[u8]) -> bool) -> usize {
        let mut removed = 0;
        for ss in &mut self.scope_spans {
            let before = ss.spans.len();
            ss.spans.retain(|s| keep(&s.trace_id));
            removed += before - ss.spans.len();
        }
        self.scope_spans.retain(|ss| !ss.spans.is_empty());
        removed
    }
}

impl Signal for ResourceLogs {
    const KIND: SignalKind = SignalKind::Logs;
    type Request = ExportLogsServiceRequest;

    fn item_count(&self) -> usize {
        self.scope_logs.iter().map(|s| s.log_records.len()).sum()
    }
    fn resource(&self) -> Option<&Resource> {
        self.resource.as_ref()
    }
    fn into_request(batch: Vec<Self>) -> Self::Request {
        ExportLogsServiceRequest {
            resource_logs: batch,
        }
    }
    fn from_request(req: Self::Request) -> Vec<Self> {
        req.resource_logs
    }
    fn take_front(&mut self, mut n: usize) -> Self {
        let mut out = Self {
            resource: self.resource.clone(),
            scope_logs: Vec::new(),
            schema_url: self.schema_url.clone(),
        };
        while n > 0 && !self.scope_logs.is_empty() {
            let first = &mut self.scope_logs[0];
            if first.log_records.len() <= n {
                n -= first.log_records.len();
                out.scope_logs.push(self.scope_logs.remove(0));
            } else {
                let mut part = first.clone();
                part.log_records = first.log_records.drain(..n).collect();
                out.scope_logs.push(part);
                n = 0;
            }
        }
        out
    }
    fn for_each_item_attributes(&mut self, f: &mut dyn FnMut(&mut Vec<KeyValue>)) {
        for sl in &mut self.scope_logs {
            for r in &mut sl.log_records {
                f(&mut r.attributes);
            }
        }
    }
    fn retain_by_trace_id(&mut self, keep: &mut dyn FnMut(&[u8]) -> bool) -> usize {
        let mut removed = 0;
        for sl in &mut self.scope_logs {
            let before = sl.log_records.len();
            sl.log_records.retain(|r| keep(&r.trace_id));
            removed += before - sl.log_records.len();
        }
        self.scope_logs.retain(|sl| !sl.log_records.is_empty());
        removed
    }
}

/// Data points of one metric.
pub fn data_point_count(m: &opentelemetry_proto::tonic::metrics::v1::Metric) -> usize {
    match &m.data {
        Some(metric::Data::Gauge(g)) => g.data_points.len(),
        Some(metric::Data::Sum(s)) => s.data_points.len(),
        Some(metric::Data::Histogram(h)) => h.data_points.len(),
        Some(metric::Data::ExponentialHistogram(h)) => h.data_points.len(),
        Some(metric::Data::Summary(s)) => s.data_points.len(),
        None => 0,
    }
}

impl Signal for ResourceMetrics {
    const KIND: SignalKind = SignalKind::Metrics;
    type Request = ExportMetricsServiceRequest;

    fn item_count(&self) -> usize {
        self.scope_metrics
            .iter()
            .flat_map(|s| &s.metrics)
            .map(data_point_count)
            .sum()
    }
    fn resource(&self) -> Option<&Resource> {
        self.resource.as_ref()
    }
    fn into_request(batch: Vec<Self>) -> Self::Request {
        ExportMetricsServiceRequest {
            resource_metrics: batch,
        }
    }
    fn from_request(req: Self::Request) -> Vec<Self> {
        req.resource_metrics
    }
    /// Splits at metric granularity: a metric's data points stay together.
    fn take_front(&mut self, n: usize) -> Self {
        let mut out = Self {
            resource: self.resource.clone(),
            scope_metrics: Vec::new(),
            schema_url: self.schema_url.clone(),
        };
        let mut taken = 0;
        while taken < n && !self.scope_metrics.is_empty() {
            let first = &mut self.scope_metrics[0];
            let mut part = first.clone();
            part.metrics.clear();
            while taken < n && !first.metrics.is_empty() {
                let m = first.metrics.remove(0);
                taken += data_point_count(&m).max(1);
                part.metrics.push(m);
            }
            out.scope_metrics.push(part);
            if first.metrics.is_empty() {
                self.scope_metrics.remove(0);
            }
        }
        out
    }
    fn for_each_item_attributes(&mut self, f: &mut dyn FnMut(&mut Vec<KeyValue>)) {
        for sm in &mut self.scope_metrics {
            for m in &mut sm.metrics {
                match &mut m.data {
                    Some(metric::Data::Gauge(g)) => {
                        g.data_points.iter_mut().for_each(|d| f(&mut d.attributes))
                    }
                    Some(metric::Data::Sum(s)) => {
                        s.data_points.iter_mut().for_each(|d| f(&mut d.attributes))
                    }
                    Some(metric::Data::Histogram(h)) => {
                        h.data_points.iter_mut().for_each(|d| f(&mut d.attributes))
                    }
                    Some(metric::Data::ExponentialHistogram(h)) => {
                        h.data_points.iter_mut().for_each(|d| f(&mut d.attributes))
                    }
                    Some(metric::Data::Summary(s)) => {
                        s.data_points.iter_mut().for_each(|d| f(&mut d.attributes))
                    }
                    None => {}
                }
            }
        }
    }
    /// Metrics carry no trace ids: nothing is removed.
    fn retain_by_trace_id(&mut self, _keep: &mut dyn FnMut(&[u8]) -> bool) -> usize {
        0
    }
}
