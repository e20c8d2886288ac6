//! The Jaeger HTTP JSON API's shapes (jaeger `model/json` + the query service's `structuredResponse`):
//! camelCase field names, microsecond times, tags as `{key, type, value}`, processes keyed by id.
//! Serialising these types gives byte-for-byte Jaeger field names so Grafana's Jaeger data source works.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Every Jaeger API answer: `{"data": ..., "total", "limit", "offset", "errors"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JaegerResponse<T> {
    pub data: T,
    #[serde(default)]
    pub total: usize,
    #[serde(default)]
    pub limit: usize,
    #[serde(default)]
    pub offset: usize,
    /// Jaeger sends `null` when there are no errors.
    #[serde(default)]
    pub errors: Option<Vec<JaegerError>>,
    /// tracelab: why a search answer may be incomplete (it stopped at the store's scan bound).
    /// Omitted when there is nothing to say, so answers keep Jaeger's exact shape; each returned
    /// trace's `warnings` (Jaeger's, shown by its UI) carries the same text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warnings: Option<Vec<String>>,
}

impl<T> JaegerResponse<T> {
    /// A successful answer; `total` is the number of items in `data`, as Jaeger reports it.
    pub fn ok(data: T, total: usize) -> Self {
        Self {
            data,
            total,
            limit: 0,
            offset: 0,
            errors: None,
            warnings: None,
        }
    }
}

impl JaegerResponse<Option<Value>> {
    /// An error answer: `{"data": null, ..., "errors": [{"code": 404, "msg": "trace not found"}]}`.
    pub fn error(code: u16, msg: impl Into<String>) -> Self {
        Self {
            data: None,
            total: 0,
            limit: 0,
            offset: 0,
            errors: Some(vec![JaegerError {
                code,
                msg: msg.into(),
                trace_id: None,
            }]),
            warnings: None,
        }
    }
}

/// One entry of `errors`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JaegerError {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub code: u16,
    pub msg: String,
    #[serde(rename = "traceID", default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
}

fn is_zero(c: &u16) -> bool {
    *c == 0
}

/// A whole trace: spans plus the processes (service + resource tags) they reference by `processID`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trace {
    #[serde(rename = "traceID")]
    pub trace_id: String,
    pub spans: Vec<Span>,
    /// Keyed by process id (`p1`, `p2`, …).
    pub processes: BTreeMap<String, Process>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub warnings: Vec<String>,
}

impl Trace {
    /// The service name of a span, through its process.
    pub fn service_of(&self, span: &Span) -> Option<&str> {
        self.processes
            .get(&span.process_id)
            .map(|p| p.service_name.as_str())
    }

    /// Spans without a CHILD_OF reference to a span present in this trace (the root, or the roots of
    /// fragments when context propagation broke).
    pub fn root_spans(&self) -> Vec<&Span> {
        let ids: std::collections::HashSet<&str> =
            self.spans.iter().map(|s| s.span_id.as_str()).collect();
        self.spans
            .iter()
            .filter(|s| s.parent_span_id().is_none_or(|p| !ids.contains(p)))
            .collect()
    }

    /// Spans whose operation name is `name`.
    pub fn spans_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Span> + 'a {
        self.spans.iter().filter(move |s| s.operation_name == name)
    }

    /// Distinct service names in the trace, sorted.
    pub fn services(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self
            .processes
            .values()
            .map(|p| p.service_name.as_str())
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// Wall-clock extent of the trace in µs: latest end minus earliest start.
    pub fn duration_us(&self) -> u64 {
        let start = self.spans.iter().map(|s| s.start_time).min().unwrap_or(0);
        let end = self.spans.iter().map(Span::end_time).max().unwrap_or(0);
        end.saturating_sub(start)
    }
}

/// One span in Jaeger's JSON model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Span {
    #[serde(rename = "traceID")]
    pub trace_id: String,
    #[serde(rename = "spanID")]
    pub span_id: String,
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub flags: u32,
    #[serde(rename = "operationName")]
    pub operation_name: String,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub references: Vec<Reference>,
    /// µs since the Unix epoch.
    #[serde(rename = "startTime")]
    pub start_time: u64,
    /// µs.
    pub duration: u64,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub tags: Vec<KeyValue>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub logs: Vec<Log>,
    #[serde(rename = "processID", default)]
    pub process_id: String,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub warnings: Vec<String>,
}

fn is_zero_u32(v: &u32) -> bool {
    *v == 0
}

impl Span {
    /// µs since the epoch at which the span ended.
    pub fn end_time(&self) -> u64 {
        self.start_time + self.duration
    }

    /// The first tag named `key`.
    pub fn tag(&self, key: &str) -> Option<&KeyValue> {
        self.tags.iter().find(|t| t.key == key)
    }

    /// A tag's value as a string (string tags only).
    pub fn tag_str(&self, key: &str) -> Option<&str> {
        self.tag(key).and_then(|t| t.value.as_str())
    }

    /// The parent span id from the CHILD_OF reference within the same trace.
    pub fn parent_span_id(&self) -> Option<&str> {
        self.references
            .iter()
            .find(|r| r.ref_type == RefType::ChildOf && r.trace_id == self.trace_id)
            .map(|r| r.span_id.as_str())
    }

    /// `span.kind` tag (`server`, `client`, `producer`, `consumer`, `internal`).
    pub fn kind(&self) -> Option<&str> {
        self.tag_str("span.kind")
    }

    /// True when the span carries Jaeger's `error=true` tag or OTel status ERROR.
    pub fn is_error(&self) -> bool {
        self.tag("error")
            .is_some_and(|t| t.value == Value::Bool(true))
            || self.tag_str("otel.status_code") == Some("ERROR")
    }
}

/// `CHILD_OF` (parent) or `FOLLOWS_FROM` (OTel span links).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RefType {
    #[serde(rename = "CHILD_OF")]
    ChildOf,
    #[serde(rename = "FOLLOWS_FROM")]
    FollowsFrom,
}

/// A reference from a span to another span.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reference {
    #[serde(rename = "refType")]
    pub ref_type: RefType,
    #[serde(rename = "traceID")]
    pub trace_id: String,
    #[serde(rename = "spanID")]
    pub span_id: String,
}

/// Jaeger's tag value types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ValueType {
    String,
    Bool,
    Int64,
    Float64,
    /// The value is base64 (Go's `[]byte` JSON encoding).
    Binary,
}

/// A tag, log field or process tag: `{"key": "http.status_code", "type": "int64", "value": 201}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyValue {
    pub key: String,
    #[serde(rename = "type")]
    pub value_type: ValueType,
    pub value: Value,
}

impl KeyValue {
    pub fn string(key: impl Into<String>, v: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            value_type: ValueType::String,
            value: Value::String(v.into()),
        }
    }
    pub fn bool(key: impl Into<String>, v: bool) -> Self {
        Self {
            key: key.into(),
            value_type: ValueType::Bool,
            value: Value::Bool(v),
        }
    }
    pub fn int64(key: impl Into<String>, v: i64) -> Self {
        Self {
            key: key.into(),
            value_type: ValueType::Int64,
            value: Value::from(v),
        }
    }
    /// Non-finite floats have no JSON form; they become strings so nothing is lost.
    pub fn float64(key: impl Into<String>, v: f64) -> Self {
        match serde_json::Number::from_f64(v) {
            Some(n) => Self {
                key: key.into(),
                value_type: ValueType::Float64,
                value: Value::Number(n),
            },
            None => Self::string(key, v.to_string()),
        }
    }
    /// `value` must already be base64.
    pub fn binary(key: impl Into<String>, base64: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            value_type: ValueType::Binary,
            value: Value::String(base64.into()),
        }
    }

    /// The value rendered as text whatever its type (`"201"`, `"true"`, `"GET"`), as Jaeger's tag
    /// search compares values.
    pub fn value_as_string(&self) -> String {
        match &self.value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    }
}

/// A span event in Jaeger's terms: a timestamped list of fields (`event` holds the event name).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Log {
    /// µs since the epoch.
    pub timestamp: u64,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub fields: Vec<KeyValue>,
}

impl Log {
    /// The `event` field (the OTel event name).
    pub fn event_name(&self) -> Option<&str> {
        self.fields
            .iter()
            .find(|f| f.key == "event")
            .and_then(|f| f.value.as_str())
    }
}

/// The emitter of spans: service name plus resource attributes as tags.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Process {
    #[serde(rename = "serviceName")]
    pub service_name: String,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub tags: Vec<KeyValue>,
}

/// `/api/dependencies` entry: `parent` service called `child` service `callCount` times.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DependencyLink {
    pub parent: String,
    pub child: String,
    #[serde(rename = "callCount")]
    pub call_count: u64,
}

/// `/api/operations` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operation {
    pub name: String,
    /// `server`, `client`, `producer`, `consumer`, `internal`, or empty when unknown.
    #[serde(rename = "spanKind")]
    pub span_kind: String,
}

/// Jaeger sends `null` for empty arrays (Go nil slices); accept both.
fn null_as_empty<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A trimmed answer of Jaeger 1.x's `/api/traces/{id}` (nulls where Go has nil slices).
    const JAEGER_FIXTURE: &str = r#"{
      "data": [{
        "traceID": "4bf92f3577b34da6a3ce929d0e0e4736",
        "spans": [
          {"traceID": "4bf92f3577b34da6a3ce929d0e0e4736", "spanID": "00f067aa0ba902b7", "flags": 1,
           "operationName": "POST /orders", "references": [], "startTime": 1700000000000000,
           "duration": 1300000, "tags": [{"key": "span.kind", "type": "string", "value": "server"},
           {"key": "http.response.status_code", "type": "int64", "value": 201}],
           "logs": [], "processID": "p1", "warnings": null},
          {"traceID": "4bf92f3577b34da6a3ce929d0e0e4736", "spanID": "00f067aa0ba902b8", "flags": 1,
           "operationName": "charge", "references": [{"refType": "CHILD_OF",
           "traceID": "4bf92f3577b34da6a3ce929d0e0e4736", "spanID": "00f067aa0ba902b7"}],
           "startTime": 1700000000050000, "duration": 1200000,
           "tags": [{"key": "error", "type": "bool", "value": true}],
           "logs": [{"timestamp": 1700000000060000, "fields": [{"key": "event", "type": "string", "value": "payment_started"}]}],
           "processID": "p2", "warnings": null}
        ],
        "processes": {"p1": {"serviceName": "api-gateway", "tags": []},
                      "p2": {"serviceName": "payment-service", "tags": null}},
        "warnings": null
      }],
      "total": 0, "limit": 0, "offset": 0, "errors": null
    }"#;

    #[test]
    fn a_jaeger_answer_round_trips_and_helpers_work() {
        let resp: JaegerResponse<Vec<Trace>> = serde_json::from_str(JAEGER_FIXTURE).unwrap();
        let t = &resp.data[0];
        assert_eq!(t.services(), vec!["api-gateway", "payment-service"]);
        let roots = t.root_spans();
        assert_eq!(roots.len(), 1);
        assert_eq!(roots[0].operation_name, "POST /orders");
        let charge = t.spans_named("charge").next().unwrap();
        assert_eq!(charge.parent_span_id(), Some("00f067aa0ba902b7"));
        assert!(charge.is_error());
        assert_eq!(t.service_of(charge), Some("payment-service"));
        assert_eq!(charge.logs[0].event_name(), Some("payment_started"));
        assert_eq!(t.duration_us(), 1_300_000);
        assert_eq!(
            roots[0]
                .tag("http.response.status_code")
                .unwrap()
                .value_as_string(),
            "201"
        );

        let again = serde_json::to_value(&resp).unwrap();
        let span = &again["data"][0]["spans"][1];
        assert_eq!(span["references"][0]["refType"], "CHILD_OF");
        assert_eq!(span["processID"], "p2");
        assert_eq!(span["tags"][0]["type"], "bool");
        assert!(again["errors"].is_null());
    }

    #[test]
    fn error_answers_have_jaegers_shape() {
        let v = serde_json::to_value(JaegerResponse::error(404, "trace not found")).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"data": null, "total": 0, "limit": 0, "offset": 0,
                               "errors": [{"code": 404, "msg": "trace not found"}]})
        );
    }
}
