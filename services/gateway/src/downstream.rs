//! The call to order-service: instrumented client (CLIENT span, traceparent + baggage injected), a
//! timeout, and pass-through of order-service's status and JSON body (402, 409, 422, 504 ...).

use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use contracts::payments::IDEMPOTENCY_KEY_HEADER;
use reqwest_middleware::ClientWithMiddleware;

use crate::error::ApiError;

/// Header telling order-service which user placed the order (authenticated here, trusted there).
pub const USER_HEADER: &str = "x-tracelab-user";

/// order-service's answer header marking a replayed Idempotency-Key answer; relayed to the client.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";

pub struct OrderService {
    client: ClientWithMiddleware,
    base_url: String,
    timeout: Duration,
}

impl OrderService {
    pub fn new(base_url: &str, timeout: Duration) -> Self {
        Self {
            client: telemetry::http::client(),
            base_url: base_url.trim_end_matches('/').to_owned(),
            timeout,
        }
    }

    /// Sends the request and relays the answer unchanged (status, JSON body, and whether it is an
    /// idempotent replay). `idempotency_key` is the client's `Idempotency-Key`, passed through as it
    /// came: order-service owns its syntax and its storage.
    pub async fn forward(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        user_id: &str,
        idempotency_key: Option<&HeaderValue>,
    ) -> Result<Response, ApiError> {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base_url))
            .timeout(self.timeout)
            .header(USER_HEADER, user_id);
        if let Some(key) = idempotency_key {
            request = request.header(IDEMPOTENCY_KEY_HEADER, key.clone());
        }
        if let Some(body) = body {
            request = request
                .header(header::CONTENT_TYPE, "application/json")
                .body(body);
        }
        let response = request.send().await.map_err(|e| {
            if e.is_timeout() {
                self.timeout_error()
            } else {
                ApiError::Upstream(e.to_string())
            }
        })?;
        let status =
            StatusCode::from_u16(response.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
        let replayed = response.headers().contains_key(REPLAYED_HEADER);
        let bytes = response.bytes().await.map_err(|e| {
            if e.is_timeout() {
                self.timeout_error()
            } else {
                ApiError::Upstream(e.to_string())
            }
        })?;
        let mut relayed = Response::new(Body::from(bytes));
        *relayed.status_mut() = status;
        relayed.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if replayed {
            relayed
                .headers_mut()
                .insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
        }
        Ok(relayed)
    }

    fn timeout_error(&self) -> ApiError {
        ApiError::UpstreamTimeout(self.timeout.as_millis() as u64)
    }
}
