//! The search form's state, read from and written to the URL in Jaeger UI's shapes
//! (`/search?service=…&operation=…&tags={"error":"true"}&minDuration=1.2s&lookback=1h&limit=20`),
//! so links made for Jaeger UI open here too, and turned into the collector's query parameters.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The lookbacks of Jaeger UI's menu (`custom` uses `start`/`end`).
pub const LOOKBACKS: [(&str, &str); 12] = [
    ("5m", "Last 5 minutes"),
    ("15m", "Last 15 minutes"),
    ("30m", "Last 30 minutes"),
    ("1h", "Last hour"),
    ("2h", "Last 2 hours"),
    ("3h", "Last 3 hours"),
    ("6h", "Last 6 hours"),
    ("12h", "Last 12 hours"),
    ("24h", "Last 24 hours"),
    ("2d", "Last 2 days"),
    ("7d", "Last 7 days"),
    ("custom", "Custom range (start/end)"),
];

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SearchForm {
    pub service: String,
    pub operation: String,
    /// As typed: `key=value key2="two words"`, or a Jaeger `tags` JSON object.
    pub tags: String,
    pub min_duration: String,
    pub max_duration: String,
    pub errors_only: bool,
    pub lookback: String,
    /// µs since the epoch (Jaeger's `start`/`end`), used with `lookback=custom`.
    pub start: String,
    pub end: String,
    pub limit: String,
}

impl SearchForm {
    /// From the page's query string (a `get(key)` over its parameters).
    pub fn from_query(get: impl Fn(&str) -> Option<String>) -> Self {
        let g = |k: &str| get(k).unwrap_or_default().trim().to_string();
        let tags = g("tags");
        Self {
            service: g("service"),
            operation: Some(g("operation"))
                .filter(|o| o != "all")
                .unwrap_or_default(),
            // Jaeger UI links carry JSON; show it as `key=value` in the box.
            tags: tags_from_json(&tags).map_or(tags, |t| tags_to_text(&t)),
            min_duration: g("minDuration"),
            max_duration: g("maxDuration"),
            errors_only: matches!(g("status").as_str(), "error" | "ERROR")
                || matches!(g("errors").as_str(), "on" | "true" | "1"),
            lookback: g("lookback"),
            start: g("start"),
            end: g("end"),
            limit: g("limit"),
        }
    }

    /// The lookback to show and send: `1h` unless the URL says otherwise.
    pub fn lookback_or_default(&self) -> &str {
        if self.lookback.is_empty() {
            "1h"
        } else {
            &self.lookback
        }
    }

    /// The collector's `/api/v1/traces` query parameters, or what is wrong with the form.
    pub fn api_params(&self) -> Result<Vec<(String, String)>, String> {
        let mut p: Vec<(String, String)> = Vec::new();
        let mut put = |k: &str, v: &str| {
            if !v.is_empty() {
                p.push((k.to_string(), v.to_string()));
            }
        };
        put("service", &self.service);
        put("operation", &self.operation);
        let tags = parse_tags(&self.tags)?;
        if !tags.is_empty() {
            let obj: serde_json::Map<String, serde_json::Value> = tags
                .into_iter()
                .map(|(k, v)| (k, serde_json::Value::String(v)))
                .collect();
            put("tags", &serde_json::Value::Object(obj).to_string());
        }
        for (key, v) in [
            ("minDuration", &self.min_duration),
            ("maxDuration", &self.max_duration),
        ] {
            if !v.is_empty() {
                collector_api::parse_go_duration(v)
                    .map_err(|e| format!("{key} {v:?}: {e} (try 100ms or 1.2s)"))?;
                put(key, v);
            }
        }
        if self.errors_only {
            put("status", "error");
        }
        let lookback = self.lookback_or_default();
        if lookback == "custom" {
            for (key, v) in [("start", &self.start), ("end", &self.end)] {
                if !v.is_empty() && v.parse::<u64>().is_err() {
                    return Err(format!("{key} must be µs since the epoch, got {v:?}"));
                }
                put(key, v);
            }
        } else {
            put("lookback", lookback);
        }
        if !self.limit.is_empty() {
            match self.limit.parse::<u32>() {
                Ok(n) if (1..=1500).contains(&n) => put("limit", &self.limit),
                _ => return Err(format!("limit must be 1–1500, got {:?}", self.limit)),
            }
        }
        Ok(p)
    }
}

/// `key=value` pairs separated by spaces (values may be `"quoted with spaces"`), or a JSON object.
pub fn parse_tags(text: &str) -> Result<BTreeMap<String, String>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(BTreeMap::new());
    }
    if text.starts_with('{') {
        return tags_from_json(text).ok_or_else(|| {
            format!("tags {text:?} is not a JSON object of strings like {{\"error\":\"true\"}}")
        });
    }
    let mut out = BTreeMap::new();
    let mut rest = text;
    while !rest.is_empty() {
        let (key, after) = rest
            .split_once('=')
            .ok_or_else(|| format!("tag {rest:?} is not key=value"))?;
        let key = key.trim();
        if key.is_empty() || key.contains(char::is_whitespace) {
            return Err(format!("tag key {key:?} is not a single word before '='"));
        }
        let (value, next) = if let Some(q) = after.strip_prefix('"') {
            let end = q
                .find('"')
                .ok_or_else(|| format!("tag {key}: closing quote missing"))?;
            (&q[..end], &q[end + 1..])
        } else {
            after.split_once(char::is_whitespace).unwrap_or((after, ""))
        };
        out.insert(key.to_string(), value.to_string());
        rest = next.trim_start();
    }
    Ok(out)
}

fn tags_from_json(text: &str) -> Option<BTreeMap<String, String>> {
    let v: serde_json::Map<String, serde_json::Value> = serde_json::from_str(text).ok()?;
    Some(
        v.into_iter()
            .map(|(k, v)| {
                let s = match v {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                };
                (k, s)
            })
            .collect(),
    )
}

fn tags_to_text(t: &BTreeMap<String, String>) -> String {
    t.iter()
        .map(|(k, v)| {
            if v.contains(char::is_whitespace) || v.is_empty() {
                format!("{k}=\"{v}\"")
            } else {
                format!("{k}={v}")
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> SearchForm {
        SearchForm::from_query(|k| {
            pairs
                .iter()
                .find(|(key, _)| *key == k)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn jaeger_ui_links_read_as_the_form() {
        let f = form(&[
            ("service", "payment-service"),
            ("operation", "all"),
            ("tags", r#"{"error":"true","order.id":"ORD 1"}"#),
            ("minDuration", "1.2s"),
            ("lookback", "2d"),
            ("limit", "50"),
        ]);
        assert_eq!(f.operation, "");
        assert_eq!(f.tags, r#"error=true order.id="ORD 1""#);
        let p = f.api_params().unwrap();
        let get = |k: &str| p.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
        assert_eq!(get("tags"), Some(r#"{"error":"true","order.id":"ORD 1"}"#));
        assert_eq!(get("minDuration"), Some("1.2s"));
        assert_eq!(get("lookback"), Some("2d"));
        assert_eq!(get("operation"), None);
    }

    #[test]
    fn the_form_defaults_to_the_last_hour_and_says_what_is_wrong() {
        let p = form(&[]).api_params().unwrap();
        assert_eq!(p, vec![("lookback".to_string(), "1h".to_string())]);
        assert!(
            form(&[("minDuration", "fast")])
                .api_params()
                .unwrap_err()
                .contains("minDuration")
        );
        assert!(
            form(&[("tags", "error")])
                .api_params()
                .unwrap_err()
                .contains("key=value")
        );
        assert!(
            form(&[("limit", "0")])
                .api_params()
                .unwrap_err()
                .contains("limit")
        );
        let custom = form(&[
            ("lookback", "custom"),
            ("start", "5"),
            ("end", "9"),
            ("errors", "on"),
        ]);
        let p = custom.api_params().unwrap();
        assert!(
            p.contains(&("start".into(), "5".into()))
                && p.contains(&("status".into(), "error".into()))
        );
    }

    #[test]
    fn tags_parse_as_logfmt_with_quotes() {
        let t = parse_tags(r#"http.response.status_code=402 payment.method="card x"  error=true"#)
            .unwrap();
        assert_eq!(t["http.response.status_code"], "402");
        assert_eq!(t["payment.method"], "card x");
        assert_eq!(t["error"], "true");
        assert!(parse_tags("a b=c").is_err());
    }
}
