//! Query-string parsing with Jaeger's conventions: `tags` as a JSON object string (or repeated
//! `tag=key:value`), Go durations for `minDuration`/`maxDuration`/`lookback`, µs for `start`/`end`.

use std::time::{SystemTime, UNIX_EPOCH};

use collector_api::{parse_go_duration, parse_trace_id as parse_id};

use super::QueryError;
use crate::store::{TraceId, TraceQuery};

/// Default and largest `limit` of a search.
const DEFAULT_LIMIT: usize = 20;
const MAX_LIMIT: usize = 1500;

pub(super) fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// The first value of `key`.
pub(super) fn get<'a>(q: &'a [(String, String)], key: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

pub(super) fn opt_u64(q: &[(String, String)], key: &str) -> Result<Option<u64>, QueryError> {
    match get(q, key).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => v.parse().map(Some).map_err(|_| {
            QueryError::BadRequest(format!(
                "parameter '{key}' must be a non-negative integer, got {v:?}"
            ))
        }),
    }
}

pub(super) fn opt_duration_us(
    q: &[(String, String)],
    key: &str,
) -> Result<Option<u64>, QueryError> {
    match get(q, key).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => parse_go_duration(v)
            .map(|d| Some(d.as_micros() as u64))
            .map_err(|e| QueryError::BadRequest(format!("parameter '{key}': {e}"))),
    }
}

/// `lookback`: a Go duration, or whole days (`2d`, `7d`) as the Jaeger UI's menu sends them.
pub(super) fn lookback_us(v: &str) -> Result<u64, QueryError> {
    if let Some(days) = v.strip_suffix('d').and_then(|d| d.parse::<u64>().ok()) {
        return Ok(days.saturating_mul(86_400_000_000));
    }
    parse_go_duration(v)
        .map(|d| d.as_micros() as u64)
        .map_err(|e| QueryError::BadRequest(format!("parameter 'lookback': {e}")))
}

/// A trace id path/query parameter (1–32 hex digits).
pub fn parse_trace_id(s: &str) -> Result<TraceId, QueryError> {
    parse_id(s).map_err(|e| QueryError::BadRequest(format!("malformed trace id {s:?}: {e}")))
}

/// A span id query parameter (1–16 hex digits).
pub fn parse_span_id(s: &str) -> Result<[u8; 8], QueryError> {
    let norm = collector_api::normalize_span_id(s)
        .map_err(|e| QueryError::BadRequest(format!("malformed span id {s:?}: {e}")))?;
    let mut out = [0u8; 8];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&norm[i * 2..i * 2 + 2], 16).unwrap_or(0);
    }
    Ok(out)
}

/// The search parameters of `/api/traces` (and `/api/v1/traces`).
pub fn parse_search(q: &[(String, String)], now_us: u64) -> Result<TraceQuery, QueryError> {
    let mut out = TraceQuery {
        service: get(q, "service")
            .filter(|v| !v.is_empty())
            .map(str::to_string),
        operation: get(q, "operation")
            .filter(|v| !v.is_empty() && *v != "all")
            .map(str::to_string),
        ..Default::default()
    };
    if let Some(tags) = get(q, "tags").filter(|v| !v.is_empty()) {
        let obj: serde_json::Map<String, serde_json::Value> = serde_json::from_str(tags).map_err(|e| {
            QueryError::BadRequest(format!(
                "parameter 'tags' must be a JSON object like {{\"http.status_code\":\"500\"}}: {e}"
            ))
        })?;
        for (k, v) in obj {
            let v = match v {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            };
            out.tags.push((k, v));
        }
    }
    for (_, t) in q.iter().filter(|(k, _)| k == "tag") {
        let (k, v) = t.split_once(':').ok_or_else(|| {
            QueryError::BadRequest(format!("parameter 'tag' must be key:value, got {t:?}"))
        })?;
        out.tags.push((k.to_string(), v.to_string()));
    }
    out.min_duration_us = opt_duration_us(q, "minDuration")?;
    out.max_duration_us = opt_duration_us(q, "maxDuration")?;
    if let (Some(lo), Some(hi)) = (out.min_duration_us, out.max_duration_us)
        && lo > hi
    {
        return Err(QueryError::BadRequest(
            "minDuration is greater than maxDuration".into(),
        ));
    }
    out.start_us = opt_u64(q, "start")?;
    out.end_us = opt_u64(q, "end")?;
    if out.start_us.is_none() {
        // Jaeger UI sends lookback=1h (or "custom" with start/end).
        if let Some(lb) = get(q, "lookback").filter(|v| !v.is_empty() && *v != "custom") {
            out.start_us = Some(
                out.end_us
                    .unwrap_or(now_us)
                    .saturating_sub(lookback_us(lb)?),
            );
        }
    }
    if let (Some(lo), Some(hi)) = (out.start_us, out.end_us)
        && lo > hi
    {
        return Err(QueryError::BadRequest("start is after end".into()));
    }
    out.errors_only = matches!(get(q, "status"), Some("error" | "ERROR"));
    let limit = opt_u64(q, "limit")?.map_or(DEFAULT_LIMIT, |l| l as usize);
    out.limit = if limit == 0 {
        DEFAULT_LIMIT
    } else {
        limit.min(MAX_LIMIT)
    };
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn jaeger_search_params_parse() {
        let p = parse_search(
            &q(&[
                ("service", "order-service"),
                ("operation", "all"),
                (
                    "tags",
                    r#"{"http.response.status_code":"500","error":true}"#,
                ),
                ("tag", "order.id:ORD-1"),
                ("minDuration", "1.2s"),
                ("maxDuration", "5s"),
                ("lookback", "1h"),
                ("limit", "50"),
            ]),
            10_000_000_000,
        )
        .unwrap();
        assert_eq!(p.service.as_deref(), Some("order-service"));
        assert_eq!(p.operation, None, "'all' means any operation");
        assert_eq!(
            p.tags,
            vec![
                ("error".into(), "true".into()),
                ("http.response.status_code".into(), "500".into()),
                ("order.id".into(), "ORD-1".into())
            ]
        );
        assert_eq!(
            (p.min_duration_us, p.max_duration_us),
            (Some(1_200_000), Some(5_000_000))
        );
        assert_eq!(p.start_us, Some(10_000_000_000 - 3_600_000_000));
        assert_eq!(p.limit, 50);
        let p = parse_search(&q(&[("lookback", "2d")]), 10 * 86_400_000_000).unwrap();
        assert_eq!(
            p.start_us,
            Some(8 * 86_400_000_000),
            "the Jaeger UI's day lookbacks"
        );
        let p = parse_search(
            &q(&[("lookback", "custom"), ("start", "5"), ("end", "9")]),
            0,
        )
        .unwrap();
        assert_eq!((p.start_us, p.end_us), (Some(5), Some(9)));
    }

    #[test]
    fn bad_search_params_say_what_is_wrong() {
        let err = |pairs: &[(&str, &str)]| parse_search(&q(pairs), 0).unwrap_err().to_string();
        assert!(err(&[("minDuration", "fast")]).contains("minDuration"));
        assert!(err(&[("tags", "http.status=500")]).contains("JSON object"));
        assert!(err(&[("limit", "-1")]).contains("limit"));
        assert!(err(&[("start", "10"), ("end", "5")]).contains("start is after end"));
        assert!(err(&[("minDuration", "2s"), ("maxDuration", "1s")]).contains("minDuration"));
    }
}
