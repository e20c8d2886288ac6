//! `GET /api/v1/dependencies?endTs=&lookback=` (ms, as Jaeger's `/api/dependencies`): the service
//! map from the store's per-minute aggregate ([`TraceStore::service_map`]).

use axum::Json;
use axum::extract::{Query, State};
use collector_api::dependencies::DependenciesResponse;

use super::{AppState, Pairs, QueryError, V1Failure, params};

/// The window of `endTs` (ms since the epoch, default now) and `lookback` (ms, default 1 h), in µs.
pub(super) fn window(q: &[(String, String)]) -> Result<(u64, u64), QueryError> {
    let end_ms = params::opt_u64(q, "endTs")?.unwrap_or(params::now_us() / 1000);
    let lookback_ms = params::opt_u64(q, "lookback")?.unwrap_or(3600 * 1000);
    if lookback_ms == 0 {
        return Err(QueryError::BadRequest(
            "parameter 'lookback' must be at least 1 (milliseconds)".into(),
        ));
    }
    let end_us = end_ms.checked_mul(1000).ok_or_else(|| {
        QueryError::BadRequest(format!("parameter 'endTs' is out of range: {end_ms}"))
    })?;
    Ok((end_us, lookback_ms.saturating_mul(1000)))
}

pub(super) async fn service_map(
    State(s): State<AppState>,
    Query(q): Pairs,
) -> Result<Json<DependenciesResponse>, V1Failure> {
    let (end_us, lookback_us) = window(&q)?;
    Ok(Json(s.store.service_map(end_us, lookback_us).await?))
}
