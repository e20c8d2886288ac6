//! OTLP/JSON decoding. `opentelemetry-proto`'s serde handles the specification's encoding, but
//! not enum values given by name (`"kind": "SPAN_KIND_SERVER"`, `"code": "STATUS_CODE_ERROR"`),
//! which some senders emit; the value tree is normalised to integers before deserializing.

use opentelemetry_proto::tonic::logs::v1::SeverityNumber;
use opentelemetry_proto::tonic::metrics::v1::AggregationTemporality;
use opentelemetry_proto::tonic::trace::v1::{span::SpanKind, status::StatusCode};
use serde_json::Value;

fn enum_number(key: &str, name: &str) -> Option<i32> {
    let try_both = |f: &dyn Fn(&str) -> Option<i32>, prefix: &str| {
        f(name).or_else(|| f(&format!("{prefix}{name}")))
    };
    match key {
        "kind" => try_both(
            &|s| SpanKind::from_str_name(s).map(|v| v as i32),
            "SPAN_KIND_",
        ),
        "code" => try_both(
            &|s| StatusCode::from_str_name(s).map(|v| v as i32),
            "STATUS_CODE_",
        ),
        "severityNumber" => try_both(
            &|s| SeverityNumber::from_str_name(s).map(|v| v as i32),
            "SEVERITY_NUMBER_",
        ),
        "aggregationTemporality" => try_both(
            &|s| AggregationTemporality::from_str_name(s).map(|v| v as i32),
            "AGGREGATION_TEMPORALITY_",
        ),
        _ => None,
    }
}

/// Rewrites enum names to their numbers, in place. Leaves unknown names alone (the
/// deserializer then reports them).
pub fn normalize_enums(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, child) in map.iter_mut() {
                if let Value::String(s) = child
                    && let Some(n) = enum_number(k, s)
                {
                    *child = Value::from(n);
                    continue;
                }
                normalize_enums(child);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(normalize_enums),
        _ => {}
    }
}

/// Parses an OTLP/JSON export request.
pub fn decode<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    let mut v: Value = serde_json::from_slice(body).map_err(|e| format!("invalid JSON: {e}"))?;
    normalize_enums(&mut v);
    serde_path_to_error::deserialize(v)
        .map_err(|e| format!("invalid OTLP/JSON at `{}`: {}", e.path(), e.inner()))
}
