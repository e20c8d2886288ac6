//! `SpanMatcher`: which spans an assertion is about (name, service, kind, status, attributes), and
//! the span kind / status vocabulary read from Jaeger tags (`span.kind`, `otel.status_code`, `error`).
//!
//! In YAML a matcher is either a bare string (the span name) or a map:
//! `{name: charge, service: payment-service, kind: internal, attributes: {payment.method: card}}`.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// OpenTelemetry span kind, as the `span.kind` tag carries it (absent = internal, as in Jaeger).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SpanKind {
    Internal,
    Server,
    Client,
    Producer,
    Consumer,
}

impl SpanKind {
    pub fn from_tag(tag: Option<&str>) -> Self {
        match tag.map(str::to_ascii_lowercase).as_deref() {
            Some("server") => SpanKind::Server,
            Some("client") => SpanKind::Client,
            Some("producer") => SpanKind::Producer,
            Some("consumer") => SpanKind::Consumer,
            _ => SpanKind::Internal,
        }
    }
}

impl fmt::Display for SpanKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SpanKind::Internal => "INTERNAL",
            SpanKind::Server => "SERVER",
            SpanKind::Client => "CLIENT",
            SpanKind::Producer => "PRODUCER",
            SpanKind::Consumer => "CONSUMER",
        })
    }
}

/// OpenTelemetry span status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SpanStatus {
    Unset,
    Ok,
    Error,
}

impl fmt::Display for SpanStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SpanStatus::Unset => "UNSET",
            SpanStatus::Ok => "OK",
            SpanStatus::Error => "ERROR",
        })
    }
}

/// Selects spans. Every field that is set must match; an empty matcher matches every span.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SpanMatcher {
    /// Exact operation name (`charge_payment`, `POST /orders`, `process orders`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Exact `service.name`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<SpanKind>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<SpanStatus>,
    /// Attribute values the span must carry; compared as text, so `201` matches an int64 tag 201.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, Value>,
}

impl SpanMatcher {
    /// Every span.
    pub fn any() -> Self {
        Self::default()
    }

    /// Spans named `name`.
    pub fn name(name: impl Into<String>) -> Self {
        Self {
            name: Some(name.into()),
            ..Self::default()
        }
    }

    /// Spans of `service`.
    pub fn in_service(service: impl Into<String>) -> Self {
        Self {
            service: Some(service.into()),
            ..Self::default()
        }
    }

    pub fn service(mut self, service: impl Into<String>) -> Self {
        self.service = Some(service.into());
        self
    }

    pub fn kind(mut self, kind: SpanKind) -> Self {
        self.kind = Some(kind);
        self
    }

    pub fn status(mut self, status: SpanStatus) -> Self {
        self.status = Some(status);
        self
    }

    pub fn attr(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.attributes.insert(key.into(), value.into());
        self
    }

    /// Whether a span with these properties matches; `attr` looks up an attribute as text.
    pub fn matches<'a>(
        &self,
        name: &str,
        service: &str,
        kind: SpanKind,
        status: SpanStatus,
        attr: impl Fn(&str) -> Option<String> + 'a,
    ) -> bool {
        self.name.as_deref().is_none_or(|n| n == name)
            && self.service.as_deref().is_none_or(|s| s == service)
            && self.kind.is_none_or(|k| k == kind)
            && self.status.is_none_or(|s| s == status)
            && self
                .attributes
                .iter()
                .all(|(k, v)| attr(k).is_some_and(|actual| actual == value_text(v)))
    }
}

/// A JSON value as the text Jaeger's tag search compares (`"card"` → `card`, `201` → `201`).
pub fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl From<&str> for SpanMatcher {
    fn from(name: &str) -> Self {
        SpanMatcher::name(name)
    }
}

impl fmt::Display for SpanMatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = Vec::new();
        if let Some(s) = &self.service {
            parts.push(format!("service={s}"));
        }
        if let Some(k) = self.kind {
            parts.push(format!("kind={k}"));
        }
        if let Some(s) = self.status {
            parts.push(format!("status={s}"));
        }
        for (k, v) in &self.attributes {
            parts.push(format!("{k}={}", value_text(v)));
        }
        match (&self.name, parts.is_empty()) {
            (Some(n), true) => write!(f, "span \"{n}\""),
            (Some(n), false) => write!(f, "span \"{n}\" ({})", parts.join(", ")),
            (None, true) => write!(f, "any span"),
            (None, false) => write!(f, "a span with {}", parts.join(", ")),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MatcherFields {
    name: Option<String>,
    service: Option<String>,
    kind: Option<SpanKind>,
    status: Option<SpanStatus>,
    #[serde(default)]
    attributes: BTreeMap<String, Value>,
}

/// A bare string is a name; a map is checked field by field (unknown fields are errors, so a
/// typo such as `servce:` fails the spec instead of silently matching more spans).
impl<'de> Deserialize<'de> for SpanMatcher {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = SpanMatcher;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a span name or a map {name, service, kind, status, attributes}")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<SpanMatcher, E> {
                Ok(SpanMatcher::name(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<SpanMatcher, A::Error> {
                let f = MatcherFields::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(SpanMatcher {
                    name: f.name,
                    service: f.service,
                    kind: f.kind,
                    status: f.status,
                    attributes: f.attributes,
                })
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(key: &str) -> Option<String> {
        match key {
            "http.response.status_code" => Some("201".into()),
            "payment.method" => Some("card".into()),
            _ => None,
        }
    }

    #[test]
    fn every_set_field_must_match() {
        let m = SpanMatcher::name("charge")
            .service("payment-service")
            .kind(SpanKind::Internal)
            .attr("payment.method", "card");
        assert!(m.matches(
            "charge",
            "payment-service",
            SpanKind::Internal,
            SpanStatus::Unset,
            attrs
        ));
        assert!(!m.matches(
            "charge",
            "order-service",
            SpanKind::Internal,
            SpanStatus::Unset,
            attrs
        ));
        assert!(!m.matches(
            "charge",
            "payment-service",
            SpanKind::Client,
            SpanStatus::Unset,
            attrs
        ));
        let typed = SpanMatcher::any().attr("http.response.status_code", 201);
        assert!(typed.matches("x", "y", SpanKind::Server, SpanStatus::Ok, attrs));
        let missing = SpanMatcher::any().attr("order.id", "o-1");
        assert!(!missing.matches("x", "y", SpanKind::Server, SpanStatus::Ok, attrs));
        let status = SpanMatcher::any().status(SpanStatus::Error);
        assert!(!status.matches("x", "y", SpanKind::Server, SpanStatus::Ok, attrs));
    }

    #[test]
    fn deserializes_from_a_name_or_a_map_and_rejects_typos() {
        let m: SpanMatcher = serde_json::from_str(r#""charge_payment""#).unwrap();
        assert_eq!(m, SpanMatcher::name("charge_payment"));
        let m: SpanMatcher = serde_json::from_str(
            r#"{"name":"process orders","service":"inventory-service","kind":"consumer","attributes":{"messaging.system":"kafka"}}"#,
        )
        .unwrap();
        assert_eq!(
            m,
            SpanMatcher::name("process orders")
                .service("inventory-service")
                .kind(SpanKind::Consumer)
                .attr("messaging.system", "kafka")
        );
        let err = serde_json::from_str::<SpanMatcher>(r#"{"servce":"x"}"#).unwrap_err();
        assert!(err.to_string().contains("servce"), "{err}");
    }

    #[test]
    fn displays_what_it_looks_for() {
        assert_eq!(SpanMatcher::name("charge").to_string(), "span \"charge\"");
        assert_eq!(
            SpanMatcher::name("POST")
                .service("order-service")
                .kind(SpanKind::Client)
                .to_string(),
            "span \"POST\" (service=order-service, kind=CLIENT)"
        );
        assert_eq!(
            SpanMatcher::any().status(SpanStatus::Error).to_string(),
            "a span with status=ERROR"
        );
    }
}
