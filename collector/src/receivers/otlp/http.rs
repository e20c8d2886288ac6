//! OTLP/HTTP: `POST /v1/traces|metrics|logs`, protobuf or JSON, optionally gzip/deflate.
// Handlers build their error responses up front; boxing them would only add noise.
#![allow(clippy::result_large_err)]

use std::io::Read;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use tokio::sync::watch;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::rpc_status::{REFUSED_RETRY_DELAY, RpcStatus};

use super::{
    HttpConfig, IngestError, SignalConsumers, ingest, ingest_encoded, no_validation, validate_logs,
    validate_spans,
};
use crate::pipeline::wire::scan_traces;

#[derive(Clone)]
struct AppState {
    consumers: SignalConsumers,
    max_body: usize,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Proto,
    Json,
}

/// The OTLP/HTTP error body: a `google.rpc.Status`, protobuf for protobuf requests, its JSON
/// mapping (`{"code", "message", "details"}`) for JSON ones.
fn status_response(enc: Encoding, status: StatusCode, body: RpcStatus) -> Response {
    match enc {
        Encoding::Proto => (
            status,
            [(header::CONTENT_TYPE, "application/x-protobuf")],
            body.encode_to_vec(),
        )
            .into_response(),
        Encoding::Json => (status, axum::Json(body.to_json())).into_response(),
    }
}

fn error(enc: Encoding, status: StatusCode, grpc_code: i32, message: String) -> Response {
    status_response(
        enc,
        status,
        RpcStatus {
            code: grpc_code,
            message,
            details: Vec::new(),
        },
    )
}

fn ingest_error(enc: Encoding, e: IngestError) -> Response {
    match e {
        IngestError::NotEnabled(s) => error(
            enc,
            StatusCode::NOT_FOUND,
            12,
            format!("this collector has no {s} pipeline using this receiver"),
        ),
        // 503 + Retry-After: retryable for every OTLP/HTTP client; the body says the same
        // (UNAVAILABLE with a RetryInfo detail).
        IngestError::Refused(m) => {
            let mut r = status_response(
                enc,
                StatusCode::SERVICE_UNAVAILABLE,
                RpcStatus::retryable(tonic::Code::Unavailable as i32, m, REFUSED_RETRY_DELAY),
            );
            r.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(REFUSED_RETRY_DELAY.as_secs().max(1)),
            );
            r
        }
        IngestError::Failed(m) => error(enc, StatusCode::INTERNAL_SERVER_ERROR, 13, m),
    }
}

/// Content type, body size and compression checks; returns the decoded payload.
async fn read_body(
    headers: &HeaderMap,
    req: Request,
    max: usize,
) -> Result<(Encoding, Bytes), Response> {
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let enc = if ctype.starts_with("application/x-protobuf")
        || ctype.starts_with("application/protobuf")
    {
        Encoding::Proto
    } else if ctype.starts_with("application/json") {
        Encoding::Json
    } else {
        return Err(error(
            Encoding::Json,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            3,
            format!(
                "unsupported Content-Type `{ctype}`; expected application/x-protobuf or application/json"
            ),
        ));
    };
    let too_large = |enc| {
        error(
            enc,
            StatusCode::PAYLOAD_TOO_LARGE,
            8,
            format!("request body exceeds max_request_body_size ({max} bytes)"),
        )
    };
    if let Some(len) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
        && len > max
    {
        return Err(too_large(enc));
    }
    let raw = axum::body::to_bytes(req.into_body(), max)
        .await
        .map_err(|_| too_large(enc))?;
    let content_encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let decoded = match content_encoding.as_str() {
        "" | "identity" => raw,
        "gzip" | "deflate" => {
            let mut out = Vec::new();
            let limit = max as u64 + 1;
            let res = if content_encoding == "gzip" {
                flate2::read::MultiGzDecoder::new(&raw[..])
                    .take(limit)
                    .read_to_end(&mut out)
            } else {
                flate2::read::ZlibDecoder::new(&raw[..])
                    .take(limit)
                    .read_to_end(&mut out)
            };
            if let Err(e) = res {
                return Err(error(
                    enc,
                    StatusCode::BAD_REQUEST,
                    3,
                    format!("cannot decompress the {content_encoding} body: {e}"),
                ));
            }
            if out.len() > max {
                return Err(too_large(enc));
            }
            Bytes::from(out)
        }
        other => {
            return Err(error(
                enc,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                3,
                format!("unsupported Content-Encoding `{other}`; expected gzip, deflate or none"),
            ));
        }
    };
    Ok((enc, decoded))
}

fn decode<T: Message + Default + serde::de::DeserializeOwned>(
    enc: Encoding,
    body: &[u8],
) -> Result<T, Response> {
    let r = match enc {
        Encoding::Proto => T::decode(body).map_err(|e| format!("invalid OTLP protobuf: {e}")),
        Encoding::Json => super::json::decode::<T>(body),
    };
    r.map_err(|m| error(enc, StatusCode::BAD_REQUEST, 3, m))
}

fn respond<T: Message + serde::Serialize>(enc: Encoding, resp: T) -> Response {
    match enc {
        Encoding::Proto => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/x-protobuf")],
            resp.encode_to_vec(),
        )
            .into_response(),
        Encoding::Json => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            serde_json::to_vec(&resp).unwrap_or_else(|_| b"{}".to_vec()),
        )
            .into_response(),
    }
}

async fn traces(State(s): State<Arc<AppState>>, headers: HeaderMap, req: Request) -> Response {
    let (enc, body) = match read_body(&headers, req, s.max_body).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    // Fast path: a protobuf request the scan accepts goes on still encoded (pipeline::wire).
    if enc == Encoding::Proto
        && let Ok(scan) = scan_traces(&body)
    {
        return match ingest_encoded(&s.consumers.traces, body, scan.spans).await {
            Ok(()) => respond(
                enc,
                ExportTraceServiceResponse {
                    partial_success: None,
                },
            ),
            Err(e) => ingest_error(enc, e),
        };
    }
    let msg: ExportTraceServiceRequest = match decode(enc, &body) {
        Ok(m) => m,
        Err(r) => return r,
    };
    match ingest(&s.consumers.traces, msg.resource_spans, validate_spans).await {
        Ok(a) => respond(
            enc,
            ExportTraceServiceResponse {
                partial_success: (a.rejected > 0).then_some(ExportTracePartialSuccess {
                    rejected_spans: a.rejected,
                    error_message: a.message,
                }),
            },
        ),
        Err(e) => ingest_error(enc, e),
    }
}

async fn metrics(State(s): State<Arc<AppState>>, headers: HeaderMap, req: Request) -> Response {
    let (enc, body) = match read_body(&headers, req, s.max_body).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let msg: ExportMetricsServiceRequest = match decode(enc, &body) {
        Ok(m) => m,
        Err(r) => return r,
    };
    match ingest(&s.consumers.metrics, msg.resource_metrics, no_validation).await {
        Ok(_) => respond(
            enc,
            ExportMetricsServiceResponse {
                partial_success: None,
            },
        ),
        Err(e) => ingest_error(enc, e),
    }
}

async fn logs(State(s): State<Arc<AppState>>, headers: HeaderMap, req: Request) -> Response {
    let (enc, body) = match read_body(&headers, req, s.max_body).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let msg: ExportLogsServiceRequest = match decode(enc, &body) {
        Ok(m) => m,
        Err(r) => return r,
    };
    match ingest(&s.consumers.logs, msg.resource_logs, validate_logs).await {
        Ok(a) => respond(
            enc,
            ExportLogsServiceResponse {
                partial_success: (a.rejected > 0).then_some(ExportLogsPartialSuccess {
                    rejected_log_records: a.rejected,
                    error_message: a.message,
                }),
            },
        ),
        Err(e) => ingest_error(enc, e),
    }
}

/// One `*` in an allowed origin matches any run of characters (`https://*.example.com`).
fn glob_match(pattern: &str, s: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == s,
        Some((head, tail)) => {
            s.len() >= head.len() + tail.len() && s.starts_with(head) && s.ends_with(tail)
        }
    }
}

fn cors_layer(c: &super::CorsConfig) -> CorsLayer {
    let origins = c.allowed_origins.clone();
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::predicate(move |origin: &HeaderValue, _| {
            origin
                .to_str()
                .map(|o| origins.iter().any(|p| glob_match(p, o)))
                .unwrap_or(false)
        })
    };
    let mut headers: Vec<header::HeaderName> = vec![
        header::CONTENT_TYPE,
        header::CONTENT_ENCODING,
        header::HeaderName::from_static("x-requested-with"),
        header::HeaderName::from_static("traceparent"),
        header::HeaderName::from_static("tracestate"),
    ];
    headers.extend(
        c.allowed_headers
            .iter()
            .filter_map(|h| header::HeaderName::try_from(h.as_str()).ok()),
    );
    let mut layer = CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([axum::http::Method::POST, axum::http::Method::OPTIONS])
        .allow_headers(headers);
    if let Some(s) = c.max_age {
        layer = layer.max_age(Duration::from_secs(s));
    }
    layer
}

pub(super) async fn serve(
    id: &str,
    cfg: &HttpConfig,
    consumers: SignalConsumers,
    stop: watch::Receiver<bool>,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = super::bind(&cfg.endpoint).await?;
    let addr = listener.local_addr()?;
    let state = Arc::new(AppState {
        consumers,
        max_body: cfg.max_request_body_size,
    });
    let mut app = Router::new()
        .route(&cfg.traces_url_path, post(traces))
        .route(&cfg.metrics_url_path, post(metrics))
        .route(&cfg.logs_url_path, post(logs))
        .with_state(state);
    if let Some(c) = &cfg.cors
        && !c.allowed_origins.is_empty()
    {
        app = app.layer(cors_layer(c));
    }
    let id = id.to_string();
    tracing::info!(receiver = %id, %addr, "OTLP/HTTP receiver listening");
    let task = tokio::spawn(async move {
        let serve = axum::serve(listener, app).with_graceful_shutdown(super::stopped(stop));
        if let Err(e) = serve.await {
            tracing::error!(receiver = %id, error = %e, "OTLP/HTTP server failed");
        }
    });
    Ok((addr, task))
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn origin_globs() {
        assert!(glob_match(
            "https://*.example.com",
            "https://app.example.com"
        ));
        assert!(!glob_match("https://*.example.com", "https://example.org"));
        assert!(glob_match("http://localhost:3000", "http://localhost:3000"));
    }
}
