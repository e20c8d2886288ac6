//! `GET /api/v1/metrics/red?service=&operation=&spanKind=&lookback=&step=&connector=`: RED time
//! series with exemplars from a spanmetrics connector's [`RedStore`] (see
//! `collector_api::metrics` for the answer). 404 when no connector keeps time series.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::extract::{Query, State};
use collector_api::metrics::RedResponse;
use collector_api::parse_go_duration;

use super::{AppState, Pairs, QueryError, V1Failure, params};
use crate::connectors::spanmetrics::red::{RedQuery, RedStore};

/// `lookback` when none is given (or the window kept, when shorter): the viewer's shortest choice.
const DEFAULT_LOOKBACK: Duration = Duration::from_secs(15 * 60);

fn duration(q: &[(String, String)], key: &str) -> Result<Option<Duration>, QueryError> {
    match params::get(q, key).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => match parse_go_duration(v) {
            Ok(d) if !d.is_zero() => Ok(Some(d)),
            Ok(_) => Err(QueryError::BadRequest(format!(
                "parameter '{key}' must be greater than 0"
            ))),
            Err(e) => Err(QueryError::BadRequest(format!("parameter '{key}': {e}"))),
        },
    }
}

/// The selection of a request, checked against the store's window.
pub(super) fn parse(q: &[(String, String)], store: &RedStore) -> Result<RedQuery, QueryError> {
    let text = |key| {
        params::get(q, key)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    let service = text("service");
    let operation = text("operation");
    if operation.is_some() && service.is_none() {
        return Err(QueryError::BadRequest(
            "parameter 'operation' needs 'service'".into(),
        ));
    }
    let span_kind = match params::get(q, "spanKind").filter(|v| !v.is_empty()) {
        None => None,
        Some(k) => Some(crate::store::kind_from_name(k).ok_or_else(|| {
            QueryError::BadRequest(format!(
                "unsupported spanKind {k:?}: expected server, client, producer, consumer, internal or unspecified"
            ))
        })?),
    };
    let window = store.window();
    let lookback = duration(q, "lookback")?.unwrap_or(DEFAULT_LOOKBACK.min(window));
    if lookback > window {
        return Err(QueryError::BadRequest(format!(
            "lookback {lookback:?} is longer than the {window:?} the connector keeps \
             (time_series.bucket_width × time_series.buckets)"
        )));
    }
    let step = duration(q, "step")?.unwrap_or(Duration::from_millis(store.bucket_ms()));
    Ok(RedQuery {
        service,
        operation,
        span_kind,
        lookback,
        step,
    })
}

pub(super) async fn red(
    State(s): State<AppState>,
    Query(q): Pairs,
) -> Result<Json<RedResponse>, V1Failure> {
    let (id, store) = s
        .red
        .resolve(params::get(&q, "connector").filter(|v| !v.is_empty()))
        .map_err(QueryError::NotFound)?;
    let query = parse(&q, store)?;
    let now_ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    Ok(Json(store.query(id, &query, now_ns)))
}
