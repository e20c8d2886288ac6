//! The query API on 16686: the Jaeger HTTP JSON API (so Grafana's Jaeger data source and Jaeger
//! tooling work against the embedded store) plus tracelab's `/api/v1` (sampling statistics,
//! the service map, windowed span reads of huge traces and their tree-aware windows (`tree`), trace
//! summaries, logs of a span, the collector's stores and trace lookups in any of them, the sampling
//! dashboard's timeline and sampling-lab result).
//!
//! Each `tracelab[/NAME]` exporter has its own query API, serving its own store. Every one of them
//! also knows all the stores ([`StoreRegistry`]: `/api/v1/stores`, `/api/v1/traces/lookup?store=`)
//! and all the sampling processors ([`SamplingRegistry`]: `/api/v1/sampling`) and the spanmetrics
//! connectors' RED time series ([`RedRegistry`]: `/api/v1/metrics/red`).
//!
//! Jaeger routes answer errors in Jaeger's shape (`{"data": null, "errors": [{"code", "msg"}]}`);
//! `/api/v1` routes answer `{"error": {"code", "message"}}`.

mod dependencies;
mod params;
mod red;
mod sampling;
#[cfg(test)]
mod tests;
mod tree;

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use axum::extract::DefaultBodyLimit;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use collector_api::jaeger::{DependencyLink, JaegerResponse, Operation, Trace};
use collector_api::sampling::MAX_LAB_RESULT_BYTES;
use collector_api::v1::{
    ApiError, DecisionsResponse, LogsResponse, MAX_LOOKUP_TRACE_IDS, SamplingStatsResponse,
    SpanWindow, StoreInfo, StoresResponse, TraceLookupRequest, TraceLookupResponse, TraceSummaries,
};
use serde::Deserialize;

use crate::component::FieldError;
use crate::connectors::spanmetrics::red::RedRegistry;
use crate::sampling::SamplingRegistry;
use crate::store::{StoreError, TraceStore};

pub use params::{parse_search, parse_span_id, parse_trace_id};

/// `exporters.tracelab.query`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueryConfig {
    /// Listen address of the query API.
    pub endpoint: String,
}

impl Default for QueryConfig {
    fn default() -> Self {
        Self {
            endpoint: "0.0.0.0:16686".into(),
        }
    }
}

impl QueryConfig {
    pub fn validate(&self) -> Result<(), FieldError> {
        self.endpoint
            .parse::<std::net::SocketAddr>()
            .map(|_| ())
            .map_err(|_| {
                FieldError::new(
                    "endpoint",
                    format!(
                        "{:?} is not a host:port address (e.g. 0.0.0.0:16686)",
                        self.endpoint
                    ),
                )
            })
    }
}

/// Why a query failed.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    TooLarge(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl QueryError {
    fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn log(&self) {
        if let Self::Store(e) = self {
            tracing::error!(error = %e, "query API: store read failed");
        }
    }
}

/// Error in Jaeger's shape (Jaeger routes).
struct JaegerFailure(QueryError);

impl<E: Into<QueryError>> From<E> for JaegerFailure {
    fn from(e: E) -> Self {
        Self(e.into())
    }
}

impl IntoResponse for JaegerFailure {
    fn into_response(self) -> Response {
        self.0.log();
        let status = self.0.status();
        (
            status,
            Json(JaegerResponse::error(status.as_u16(), self.0.to_string())),
        )
            .into_response()
    }
}

/// Error as `{"error": {"code", "message"}}` (`/api/v1` routes).
struct V1Failure(QueryError);

impl<E: Into<QueryError>> From<E> for V1Failure {
    fn from(e: E) -> Self {
        Self(e.into())
    }
}

impl IntoResponse for V1Failure {
    fn into_response(self) -> Response {
        self.0.log();
        let code = match &self.0 {
            QueryError::BadRequest(_) => "bad_request",
            QueryError::NotFound(_) => "not_found",
            QueryError::TooLarge(_) => "too_large",
            QueryError::Store(_) => "internal",
        };
        (
            self.0.status(),
            Json(ApiError::new(code, self.0.to_string())),
        )
            .into_response()
    }
}

/// One registered store and the address its query API is bound to (set once bound).
#[derive(Debug)]
struct RegisteredStore {
    store: Arc<TraceStore>,
    query_endpoint: OnceLock<SocketAddr>,
}

/// Every trace store of the collector by exporter id (`tracelab`, `tracelab/head`, …). Filled
/// when the stores open, before any query API is bound; addresses are set as each one binds.
#[derive(Debug, Default)]
pub struct StoreRegistry {
    stores: BTreeMap<String, RegisteredStore>,
}

impl StoreRegistry {
    pub fn insert(&mut self, id: impl Into<String>, store: Arc<TraceStore>) {
        self.stores.insert(
            id.into(),
            RegisteredStore {
                store,
                query_endpoint: OnceLock::new(),
            },
        );
    }

    /// Records where store `id`'s query API listens (the first address set stays).
    pub fn set_query_endpoint(&self, id: &str, addr: SocketAddr) {
        if let Some(s) = self.stores.get(id) {
            let _ = s.query_endpoint.set(addr);
        }
    }

    pub fn get(&self, id: &str) -> Option<Arc<TraceStore>> {
        self.stores.get(id).map(|s| s.store.clone())
    }

    /// Store ids, in order.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.stores.keys().map(String::as_str)
    }

    /// The store named `id`, or a not-found error naming the known ids.
    fn resolve(&self, id: &str) -> Result<Arc<TraceStore>, QueryError> {
        self.get(id).ok_or_else(|| {
            let known: Vec<&str> = self.ids().collect();
            QueryError::NotFound(format!(
                "no store {id:?}; the stores are: {}",
                known.join(", ")
            ))
        })
    }

    /// `/api/v1/stores`: every store in id order with its query address, counts and sizes.
    pub async fn infos(&self) -> Result<Vec<StoreInfo>, StoreError> {
        let mut out = Vec::with_capacity(self.stores.len());
        for (id, s) in &self.stores {
            let st = s.store.stats().await?;
            out.push(StoreInfo {
                id: id.clone(),
                query_endpoint: s
                    .query_endpoint
                    .get()
                    .map(ToString::to_string)
                    .unwrap_or_default(),
                traces: st.traces,
                spans: st.spans,
                logs: st.logs,
                used_bytes: st.used_bytes,
                file_bytes: st.file_bytes,
            });
        }
        Ok(out)
    }
}

/// `own` is not in the registry the router was given.
#[derive(Debug, thiserror::Error)]
#[error("query API of {own}: no such store (registered: {known})")]
pub struct UnknownStore {
    pub own: String,
    pub known: String,
}

#[derive(Clone)]
struct AppState {
    /// This query API's own store (Jaeger routes, summaries, windows, logs, decisions).
    store: Arc<TraceStore>,
    own_id: Arc<str>,
    stores: Arc<StoreRegistry>,
    sampling: Arc<SamplingRegistry>,
    /// Built trace trees for `/api/v1/traces/{id}/tree` and `…/overview`.
    trees: Arc<tree::TreeCache>,
    red: Arc<RedRegistry>,
}

type Pairs = Query<Vec<(String, String)>>;

/// The routes of store `own`'s query API. `stores` must hold `own`.
pub fn router(
    own: &str,
    registry: Arc<StoreRegistry>,
    samplers: Arc<SamplingRegistry>,
    red: Arc<RedRegistry>,
) -> Result<Router, UnknownStore> {
    let store = registry.get(own).ok_or_else(|| UnknownStore {
        own: own.to_string(),
        known: registry.ids().collect::<Vec<_>>().join(", "),
    })?;
    let state = AppState {
        store,
        own_id: own.into(),
        stores: registry,
        sampling: samplers,
        trees: Arc::new(tree::TreeCache::default()),
        red,
    };
    Ok(Router::new()
        .route("/api/services", get(services))
        .route(
            "/api/services/{service}/operations",
            get(service_operations),
        )
        .route("/api/operations", get(operations))
        .route("/api/traces", get(search))
        .route("/api/traces/{trace_id}", get(trace))
        .route("/api/dependencies", get(dependencies))
        .route("/api/v1/dependencies", get(dependencies::service_map))
        .route("/api/v1/sampling", get(sampling))
        .route("/api/v1/sampling/decisions", get(decisions))
        .route("/api/v1/sampling/timeline", get(sampling::timeline))
        .route(
            "/api/v1/sampling/lab",
            get(sampling::get_lab)
                .put(sampling::put_lab)
                .layer(DefaultBodyLimit::max(MAX_LAB_RESULT_BYTES)),
        )
        .route("/api/v1/stores", get(stores))
        .route("/api/v1/traces", get(search_summaries))
        .route("/api/v1/traces/lookup", post(lookup))
        .route("/api/v1/traces/{trace_id}/spans", get(span_window))
        .route("/api/v1/traces/{trace_id}/logs", get(logs))
        .route(
            "/api/v1/traces/{trace_id}/tree",
            get(tree::tree_window_get).post(tree::tree_window_post),
        )
        .route(
            "/api/v1/traces/{trace_id}/tree/spans",
            get(tree::tree_spans),
        )
        .route("/api/v1/traces/{trace_id}/overview", get(tree::overview))
        .route("/api/v1/metrics/red", get(red::red))
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                Json(ApiError::new(
                    "not_found",
                    "no such route; see /api/services, /api/traces, /api/v1/…",
                )),
            )
        })
        // Any origin may call it (the viewer and Grafana run on other ports). It changes nothing but
        // the stored sampling-lab result, which is a measurement anyone may re-run.
        .layer(tower_http::cors::CorsLayer::permissive())
        .with_state(state))
}

/// Serves store `own`'s query API on `listener` until `shutdown` resolves, recording the bound
/// address in `stores`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    own: &str,
    stores: Arc<StoreRegistry>,
    sampling: Arc<SamplingRegistry>,
    red: Arc<RedRegistry>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let r = router(own, stores.clone(), sampling, red).map_err(std::io::Error::other)?;
    stores.set_query_endpoint(own, listener.local_addr()?);
    axum::serve(listener, r)
        .with_graceful_shutdown(shutdown)
        .await
}

async fn services(
    State(s): State<AppState>,
) -> Result<Json<JaegerResponse<Vec<String>>>, JaegerFailure> {
    let v = s.store.services().await?;
    let n = v.len();
    Ok(Json(JaegerResponse::ok(v, n)))
}

async fn service_operations(
    State(s): State<AppState>,
    Path(service): Path<String>,
) -> Result<Json<JaegerResponse<Vec<String>>>, JaegerFailure> {
    let mut names: Vec<String> = s
        .store
        .operations(&service, None)
        .await?
        .into_iter()
        .map(|o| o.name)
        .collect();
    names.dedup();
    let n = names.len();
    Ok(Json(JaegerResponse::ok(names, n)))
}

async fn operations(
    State(s): State<AppState>,
    Query(q): Pairs,
) -> Result<Json<JaegerResponse<Vec<Operation>>>, JaegerFailure> {
    let service = params::get(&q, "service")
        .filter(|v| !v.is_empty())
        .ok_or_else(|| QueryError::BadRequest("parameter 'service' is required".into()))?;
    let kind = match params::get(&q, "spanKind").filter(|v| !v.is_empty()) {
        None => None,
        Some(k) => Some(crate::store::kind_from_name(k).ok_or_else(|| {
            QueryError::BadRequest(format!(
                "unsupported spanKind {k:?}: expected server, client, producer, consumer, internal or unspecified"
            ))
        })?),
    };
    let ops = s.store.operations(service, kind).await?;
    let n = ops.len();
    Ok(Json(JaegerResponse::ok(ops, n)))
}

async fn search(
    State(s): State<AppState>,
    Query(q): Pairs,
) -> Result<Json<JaegerResponse<Vec<Trace>>>, JaegerFailure> {
    // Jaeger's multi-get: /api/traces?traceID=a&traceID=b
    let ids: Vec<&String> = q
        .iter()
        .filter(|(k, _)| k == "traceID")
        .map(|(_, v)| v)
        .collect();
    let (mut traces, warnings) = if !ids.is_empty() {
        let mut out = Vec::new();
        for id in ids {
            if let Some(t) = s.store.get_trace(&parse_trace_id(id)?).await? {
                out.push(t);
            }
        }
        (out, Vec::new())
    } else {
        s.store
            .search_traces(&parse_search(&q, params::now_us())?)
            .await?
    };
    // A search cut short by the scan bound says so: in every trace's `warnings` (what Jaeger's UI
    // shows) and in the answer's own `warnings` (also when nothing was found).
    for t in &mut traces {
        t.warnings.extend(warnings.iter().cloned());
    }
    let n = traces.len();
    let mut resp = JaegerResponse::ok(traces, n);
    resp.warnings = (!warnings.is_empty()).then_some(warnings);
    Ok(Json(resp))
}

async fn trace(
    State(s): State<AppState>,
    Path(trace_id): Path<String>,
) -> Result<Json<JaegerResponse<Vec<Trace>>>, JaegerFailure> {
    let id = parse_trace_id(&trace_id)?;
    let t = s
        .store
        .get_trace(&id)
        .await?
        .ok_or_else(|| QueryError::NotFound("trace not found".into()))?;
    Ok(Json(JaegerResponse::ok(vec![t], 1)))
}

async fn dependencies(
    State(s): State<AppState>,
    Query(q): Pairs,
) -> Result<Json<JaegerResponse<Vec<DependencyLink>>>, JaegerFailure> {
    let (end_us, _) = dependencies::window(&q)?;
    // Jaeger's default lookback is a day.
    let lookback_us = params::opt_u64(&q, "lookback")?.map_or(24 * 3_600_000_000, |ms| ms * 1000);
    let deps = s.store.dependencies(end_us, lookback_us).await?;
    let n = deps.len();
    Ok(Json(JaegerResponse::ok(deps, n)))
}

async fn sampling(
    State(s): State<AppState>,
    Query(q): Pairs,
) -> Result<Json<SamplingStatsResponse>, V1Failure> {
    let limit = params::opt_u64(&q, "limit")?.unwrap_or(100).min(10_000) as usize;
    Ok(Json(s.sampling.snapshot(limit)))
}

async fn stores(State(s): State<AppState>) -> Result<Json<StoresResponse>, V1Failure> {
    Ok(Json(StoresResponse {
        stores: s.stores.infos().await?,
    }))
}

/// The trace ids of a lookup body, parsed; a body over [`MAX_LOOKUP_TRACE_IDS`] ids is refused.
fn lookup_ids(req: &TraceLookupRequest) -> Result<Vec<crate::store::TraceId>, QueryError> {
    if req.trace_ids.len() > MAX_LOOKUP_TRACE_IDS {
        return Err(QueryError::TooLarge(format!(
            "{} trace ids in one lookup; at most {MAX_LOOKUP_TRACE_IDS} (send several requests)",
            req.trace_ids.len()
        )));
    }
    req.trace_ids.iter().map(|t| parse_trace_id(t)).collect()
}

async fn lookup(
    State(s): State<AppState>,
    Query(q): Pairs,
    body: Result<Json<TraceLookupRequest>, JsonRejection>,
) -> Result<Json<TraceLookupResponse>, V1Failure> {
    let store = match params::get(&q, "store").filter(|v| !v.is_empty()) {
        Some(id) if id != &*s.own_id => s.stores.resolve(id)?,
        _ => s.store.clone(),
    };
    let Json(req) = body.map_err(|e| {
        QueryError::BadRequest(format!(
            "expected a JSON body {{\"trace_ids\": [\"<32 hex>\", ...]}}: {}",
            e.body_text()
        ))
    })?;
    let ids = lookup_ids(&req)?;
    let (traces, missing) = store.trace_facts(&ids).await?;
    Ok(Json(TraceLookupResponse {
        traces,
        missing: missing
            .iter()
            .map(|t| collector_api::ids::hex_id(t))
            .collect(),
    }))
}

async fn decisions(
    State(s): State<AppState>,
    Query(q): Pairs,
) -> Result<Json<DecisionsResponse>, V1Failure> {
    let limit = params::opt_u64(&q, "limit")?.unwrap_or(100).min(10_000) as usize;
    let trace = match params::get(&q, "traceID") {
        Some(t) => Some(collector_api::ids::hex_id(&parse_trace_id(t)?)),
        None => None,
    };
    Ok(Json(DecisionsResponse {
        data: s.store.decisions(trace.as_deref(), limit).await?,
    }))
}

async fn search_summaries(
    State(s): State<AppState>,
    Query(q): Pairs,
) -> Result<Json<TraceSummaries>, V1Failure> {
    let query = parse_search(&q, params::now_us())?;
    let (data, warnings) = s.store.search_trace_summaries(&query).await?;
    Ok(Json(TraceSummaries {
        total: data.len() as u64,
        limit: query.limit as u64,
        data,
        warnings,
    }))
}

/// Most spans one window returns.
const MAX_WINDOW: u64 = 10_000;

async fn span_window(
    State(s): State<AppState>,
    Path(trace_id): Path<String>,
    Query(q): Pairs,
) -> Result<Json<SpanWindow>, V1Failure> {
    let id = parse_trace_id(&trace_id)?;
    let offset = params::opt_u64(&q, "offset")?.unwrap_or(0);
    let limit = params::opt_u64(&q, "limit")?.unwrap_or(1000);
    if limit == 0 || limit > MAX_WINDOW {
        return Err(
            QueryError::BadRequest(format!("limit must be between 1 and {MAX_WINDOW}")).into(),
        );
    }
    let w = s
        .store
        .get_span_window(&id, offset, limit)
        .await?
        .ok_or_else(|| QueryError::NotFound(format!("trace {trace_id} not found")))?;
    Ok(Json(w))
}

async fn logs(
    State(s): State<AppState>,
    Path(trace_id): Path<String>,
    Query(q): Pairs,
) -> Result<Json<LogsResponse>, V1Failure> {
    let id = parse_trace_id(&trace_id)?;
    let span = match params::get(&q, "spanID").filter(|v| !v.is_empty()) {
        Some(v) => Some(parse_span_id(v)?),
        None => None,
    };
    let data = s.store.logs(&id, span.as_ref()).await?;
    Ok(Json(LogsResponse {
        total: data.len() as u64,
        data,
    }))
}
