//! OTLP ↔ Jaeger JSON conversion, following the Jaeger OTLP translator's conventions: span kind →
//! tag `span.kind`, status → `otel.status_code` / `otel.status_description` and `error=true`,
//! events → logs (`event` field), links → FOLLOWS_FROM references, resource attributes → process
//! tags (without `service.name`, which becomes `serviceName`), scope → `otel.scope.name`/`version`.

use std::borrow::Cow;

use collector_api::ids::hex_id;
use collector_api::jaeger::{KeyValue, Log, RefType, Reference, Span};
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, KeyValue as OtlpKeyValue, any_value::Value,
};
use opentelemetry_proto::tonic::trace::v1::Span as OtlpSpan;

/// The service name of a resource when it has none (the OTel SDK default).
pub const UNKNOWN_SERVICE: &str = "unknown_service";

/// `span.kind` values by OTLP `SpanKind`.
pub fn kind_name(kind: i32) -> &'static str {
    match kind {
        1 => "internal",
        2 => "server",
        3 => "client",
        4 => "producer",
        5 => "consumer",
        _ => "",
    }
}

/// OTLP `SpanKind` from a Jaeger `span.kind` / `spanKind` string.
pub fn kind_from_name(name: &str) -> Option<i32> {
    Some(match name {
        "internal" => 1,
        "server" => 2,
        "client" => 3,
        "producer" => 4,
        "consumer" => 5,
        "unspecified" | "" => 0,
        _ => return None,
    })
}

/// Text of an attribute value for indexing and tag search (`201`, `true`, `GET`).
pub fn value_text(v: &AnyValue) -> Option<String> {
    value_cow(v).map(Cow::into_owned)
}

/// [`value_text`] borrowing string values (the write path dedups before it allocates).
pub fn value_cow(v: &AnyValue) -> Option<Cow<'_, str>> {
    Some(match v.value.as_ref()? {
        Value::StringValue(s) => Cow::Borrowed(s.as_str()),
        Value::BoolValue(b) => Cow::Owned(b.to_string()),
        Value::IntValue(i) => Cow::Owned(i.to_string()),
        Value::DoubleValue(d) => Cow::Owned(d.to_string()),
        _ => return None,
    })
}

/// One OTLP attribute as a Jaeger tag; arrays and maps become their JSON text.
pub fn tag(kv: &OtlpKeyValue) -> KeyValue {
    let key = kv.key.clone();
    match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(Value::StringValue(s)) => KeyValue::string(key, s.clone()),
        Some(Value::BoolValue(b)) => KeyValue::bool(key, *b),
        Some(Value::IntValue(i)) => KeyValue::int64(key, *i),
        Some(Value::DoubleValue(d)) => KeyValue::float64(key, *d),
        Some(Value::BytesValue(b)) => KeyValue::binary(key, base64(b)),
        Some(other) => KeyValue::string(key, any_to_json(other).to_string()),
        None => KeyValue::string(key, String::new()),
    }
}

/// Any OTLP value as JSON (for arrays, maps and log bodies).
pub fn any_to_json(v: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        Value::StringValue(s) => J::String(s.clone()),
        Value::BoolValue(b) => J::Bool(*b),
        Value::IntValue(i) => J::from(*i),
        Value::DoubleValue(d) => serde_json::Number::from_f64(*d).map_or(J::Null, J::Number),
        Value::BytesValue(b) => J::String(base64(b)),
        Value::ArrayValue(a) => J::Array(
            a.values
                .iter()
                .map(|x| x.value.as_ref().map_or(J::Null, any_to_json))
                .collect(),
        ),
        Value::KvlistValue(kv) => J::Object(
            kv.values
                .iter()
                .map(|e| {
                    (
                        e.key.clone(),
                        e.value
                            .as_ref()
                            .and_then(|x| x.value.as_ref())
                            .map_or(J::Null, any_to_json),
                    )
                })
                .collect(),
        ),
        // Reference into a profiles string table: meaningless outside profiles.
        #[allow(unreachable_patterns)]
        _ => J::Null,
    }
}

/// A log body as text: strings as they are, anything else as JSON.
pub fn body_text(v: Option<&AnyValue>) -> String {
    match v.and_then(|v| v.value.as_ref()) {
        Some(Value::StringValue(s)) => s.clone(),
        Some(other) => any_to_json(other).to_string(),
        None => String::new(),
    }
}

/// Resource attributes as Jaeger process tags, and the service name.
pub fn process_of(attrs: &[OtlpKeyValue]) -> (String, Vec<KeyValue>) {
    let mut service = None;
    let mut tags = Vec::with_capacity(attrs.len());
    for kv in attrs {
        if kv.key == "service.name" {
            service = kv.value.as_ref().and_then(value_text);
        } else {
            tags.push(tag(kv));
        }
    }
    (
        service
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| UNKNOWN_SERVICE.to_string()),
        tags,
    )
}

/// A stored OTLP span as a Jaeger span.
pub fn jaeger_span(
    s: &OtlpSpan,
    scope_name: &str,
    scope_version: &str,
    process_id: String,
) -> Span {
    let trace_id = hex_id(&s.trace_id);
    let mut references = Vec::with_capacity(1 + s.links.len());
    if !s.parent_span_id.is_empty() && s.parent_span_id.iter().any(|b| *b != 0) {
        references.push(Reference {
            ref_type: RefType::ChildOf,
            trace_id: trace_id.clone(),
            span_id: hex_id(&s.parent_span_id),
        });
    }
    for l in &s.links {
        references.push(Reference {
            ref_type: RefType::FollowsFrom,
            trace_id: hex_id(&l.trace_id),
            span_id: hex_id(&l.span_id),
        });
    }
    let mut tags: Vec<KeyValue> = s.attributes.iter().map(tag).collect();
    if !scope_name.is_empty() {
        tags.push(KeyValue::string("otel.scope.name", scope_name));
    }
    if !scope_version.is_empty() {
        tags.push(KeyValue::string("otel.scope.version", scope_version));
    }
    let kind = kind_name(s.kind);
    if !kind.is_empty() {
        tags.push(KeyValue::string("span.kind", kind));
    }
    if let Some(st) = &s.status {
        match st.code {
            1 => tags.push(KeyValue::string("otel.status_code", "OK")),
            2 => {
                tags.push(KeyValue::string("otel.status_code", "ERROR"));
                tags.push(KeyValue::bool("error", true));
            }
            _ => {}
        }
        if !st.message.is_empty() {
            tags.push(KeyValue::string(
                "otel.status_description",
                st.message.clone(),
            ));
        }
    }
    if !s.trace_state.is_empty() {
        tags.push(KeyValue::string("w3c.tracestate", s.trace_state.clone()));
    }
    let logs = s
        .events
        .iter()
        .map(|e| {
            let mut fields = Vec::with_capacity(1 + e.attributes.len());
            fields.push(KeyValue::string("event", e.name.clone()));
            fields.extend(e.attributes.iter().map(tag));
            Log {
                timestamp: e.time_unix_nano / 1000,
                fields,
            }
        })
        .collect();
    let start = s.start_time_unix_nano / 1000;
    Span {
        trace_id,
        span_id: hex_id(&s.span_id),
        // Jaeger's flags: bit 0 = sampled; stored spans were sampled.
        flags: 1,
        operation_name: s.name.clone(),
        references,
        start_time: start,
        duration: (s.end_time_unix_nano / 1000).saturating_sub(start),
        tags,
        logs,
        process_id,
        warnings: Vec::new(),
    }
}

/// Standard base64 (Jaeger renders binary tags as Go's `[]byte` JSON, which is base64).
pub fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        out.push(T[(n >> 18) as usize & 63] as char);
        out.push(T[(n >> 12) as usize & 63] as char);
        out.push(if chunk.len() > 1 {
            T[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if chunk.len() > 2 {
            T[n as usize & 63] as char
        } else {
            '='
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_rfc_vectors() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }
}
