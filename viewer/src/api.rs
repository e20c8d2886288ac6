//! Server functions: the only way the viewer reads data. On the server they call the collector's
//! query API (`QUERY_API_URL`, Jaeger routes and `/api/v1`); in the browser the same functions are
//! HTTP calls to the viewer's server under `/_viewer/`, so the browser never needs to reach the
//! collector itself (no CORS, one origin, works behind any single port-forward).

use collector_api::v1::{SamplingDecision, SpanWindow, TraceSummaries, TraceSummary};
use leptos::prelude::*;
use leptos::server_fn::codec::Json;

use crate::search::SearchForm;

/// Most spans one window asks for; the collector allows 10,000.
pub const WINDOW: u64 = 5_000;

#[server(prefix = "/_viewer", input = Json)]
pub async fn list_services() -> Result<Vec<String>, ServerFnError> {
    let r: collector_api::JaegerResponse<Vec<String>> =
        backend::get(&["api", "services"], &[]).await?;
    let mut v = r.data;
    v.sort();
    Ok(v)
}

#[server(prefix = "/_viewer", input = Json)]
pub async fn list_operations(service: String) -> Result<Vec<String>, ServerFnError> {
    if service.is_empty() {
        return Ok(Vec::new());
    }
    let r: collector_api::JaegerResponse<Vec<String>> =
        backend::get(&["api", "services", &service, "operations"], &[]).await?;
    let mut v = r.data;
    v.sort();
    Ok(v)
}

#[server(prefix = "/_viewer", input = Json)]
pub async fn search_traces(form: SearchForm) -> Result<TraceSummaries, ServerFnError> {
    let params = form.api_params().map_err(ServerFnError::new)?;
    backend::get(&["api", "v1", "traces"], &params).await
}

/// Traces with a span starting in `[start, end]` (µs): candidates for the other half of a trace
/// whose context was dropped.
#[server(prefix = "/_viewer", input = Json)]
pub async fn traces_between(start: u64, end: u64) -> Result<Vec<TraceSummary>, ServerFnError> {
    let params = vec![
        ("start".to_string(), start.to_string()),
        ("end".to_string(), end.to_string()),
        ("limit".to_string(), "100".to_string()),
    ];
    let r: TraceSummaries = backend::get(&["api", "v1", "traces"], &params).await?;
    Ok(r.data)
}

#[server(prefix = "/_viewer", input = Json)]
pub async fn load_span_window(
    trace_id: String,
    offset: u64,
    limit: u64,
) -> Result<SpanWindow, ServerFnError> {
    let id = collector_api::normalize_trace_id(&trace_id)
        .map_err(|e| ServerFnError::new(format!("{trace_id:?} is not a trace id: {e}")))?;
    let params = vec![
        ("offset".to_string(), offset.to_string()),
        ("limit".to_string(), limit.min(10_000).to_string()),
    ];
    backend::get(&["api", "v1", "traces", &id, "spans"], &params).await
}

/// The tail-sampling decision recorded for a trace, if the collector made one.
#[server(prefix = "/_viewer", input = Json)]
pub async fn find_sampling_decision(
    trace_id: String,
) -> Result<Option<SamplingDecision>, ServerFnError> {
    let params = vec![
        ("traceID".to_string(), trace_id),
        ("limit".to_string(), "1".to_string()),
    ];
    let r: collector_api::v1::DecisionsResponse =
        backend::get(&["api", "v1", "sampling", "decisions"], &params).await?;
    Ok(r.data.into_iter().next())
}

#[cfg(feature = "ssr")]
pub mod backend {
    //! The HTTP client towards the collector's query API.
    use std::sync::OnceLock;

    use leptos::prelude::ServerFnError;
    use serde::de::DeserializeOwned;

    static BASE: OnceLock<String> = OnceLock::new();
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();

    /// Sets the query API's base URL (once, at start-up).
    pub fn configure(base: &str) {
        let _ = BASE.set(base.trim_end_matches('/').to_string());
    }

    pub fn base() -> &'static str {
        BASE.get().map_or("http://127.0.0.1:16686", String::as_str)
    }

    /// GET `base/seg1/seg2…?params` on the query API, each segment and parameter percent-encoded.
    pub async fn get<T: DeserializeOwned>(
        segments: &[&str],
        params: &[(String, String)],
    ) -> Result<T, ServerFnError> {
        fetch(segments, params, false)
            .await?
            .ok_or_else(|| ServerFnError::new("query API answered 404"))
    }

    /// As [`get`], but a 404 answer (e.g. "no sampling-lab result yet") is `None`.
    pub async fn get_optional<T: DeserializeOwned>(
        segments: &[&str],
        params: &[(String, String)],
    ) -> Result<Option<T>, ServerFnError> {
        fetch(segments, params, true).await
    }

    async fn fetch<T: DeserializeOwned>(
        segments: &[&str],
        params: &[(String, String)],
        missing_is_none: bool,
    ) -> Result<Option<T>, ServerFnError> {
        let client = CLIENT.get_or_init(|| {
            reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(30))
                .build()
                .expect("reqwest client")
        });
        let mut url = reqwest::Url::parse(base())
            .map_err(|e| ServerFnError::new(format!("QUERY_API_URL {}: {e}", base())))?;
        url.path_segments_mut()
            .map_err(|_| ServerFnError::new(format!("QUERY_API_URL {} takes no path", base())))?
            .pop_if_empty()
            .extend(segments);
        if !params.is_empty() {
            url.query_pairs_mut().extend_pairs(params);
        }
        let path = url.path().to_string();
        let resp =
            client.get(url.clone()).send().await.map_err(|e| {
                ServerFnError::new(format!("query API at {} unreachable: {e}", base()))
            })?;
        let status = resp.status();
        if missing_is_none && status == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let body = resp
            .bytes()
            .await
            .map_err(|e| ServerFnError::new(format!("reading {url}: {e}")))?;
        if !status.is_success() {
            return Err(ServerFnError::new(error_message(status.as_u16(), &body)));
        }
        serde_json::from_slice(&body)
            .map(Some)
            .map_err(|e| ServerFnError::new(format!("unexpected answer from {path}: {e}")))
    }

    /// The message of a Jaeger (`errors[].msg`) or `/api/v1` (`error.message`) error body.
    pub(crate) fn error_message(status: u16, body: &[u8]) -> String {
        let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
        let msg = v["error"]["message"]
            .as_str()
            .or_else(|| v["errors"][0]["msg"].as_str())
            .map(str::to_string)
            .unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(200).collect());
        format!("{msg} (HTTP {status})")
    }
}
